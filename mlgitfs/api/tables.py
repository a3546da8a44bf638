"""The row-level table merge on plain files (`mlgitfs merge-table`), outside any store: for
a table someone holds in three versions, or as a merge driver of another tool (git's
``merge.<driver>.driver = mlgitfs merge-table %O %A %B --key id -o %A``)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlgitfs.errors import SourceError
from mlgitfs.merge.rows import RowConflict, merge_table


@dataclass(frozen=True, slots=True)
class TableMergeFilesResult:
    merged: bool  # False: conflicts; nothing was written to the output
    output: str | None  # where the merged table was written
    conflicts_table: str | None  # where the conflicts table was written
    key_columns: tuple[str, ...]
    rows_changed: int
    conflicts: tuple[RowConflict, ...]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from exc


def _write(path: Path, data: bytes) -> None:
    """tmp + fsync + rename beside the target."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise SourceError(f"{path}: cannot write: {exc.strerror or exc}") from exc


def merge_table_files(
    base: Path | None,
    ours: Path,
    theirs: Path,
    key: Sequence[str],
    output: Path | None = None,
    conflicts_table: Path | None = None,
    name: str | None = None,
) -> TableMergeFilesResult:
    """Merge the tables OURS and THEIRS against BASE (None: no common version) row by row.

    The format comes from ``name`` (default: OURS' file name). A clean merge is written to
    ``output`` (when given); conflicts, to ``conflicts_table`` as CSV (key columns, column,
    base, ours, theirs, conflict). A table error raises and writes nothing."""
    got = merge_table(
        _read(base) if base is not None else None,
        _read(ours),
        _read(theirs),
        name or ours.name,
        key,
    )
    written = table = None
    if got.data is not None and output is not None:
        _write(output, got.data)
        written = str(output)
    if got.conflicts and conflicts_table is not None:
        _write(conflicts_table, got.conflicts_csv())
        table = str(conflicts_table)
    return TableMergeFilesResult(
        got.data is not None, written, table, got.key_columns, got.rows_changed, got.conflicts
    )
