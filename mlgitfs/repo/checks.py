"""Built-in checks declared in `.mlgitfs/hooks.toml`: they read only what changed.

- max-size: no changed file larger than `size`;
- paths: every added or changed path matches an `allow` glob and no `forbid` glob;
- table: changed CSV/TSV, JSON Lines and Parquet tables keep the declared columns and types,
  and their key is unique and never empty. Only the changed rows are checked (the table
  codecs of mlgitfs/merge/ find them); the rows kept from the base passed when the base
  was checked. A new key is looked up in the rest of the table by a byte search, and only
  when that cannot be done (too many new keys, quoted CSV) is every key read;
- image: changed images decode (with Pillow; without it the check says it was skipped).

A check returns its verdict; it never raises for bad content (only for a store that fails).
"""

from __future__ import annotations

import importlib
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlgitfs.errors import TableError
from mlgitfs.merge.rows import codec_for
from mlgitfs.merge.table import ABSENT, Cell, Codec, Decoded, Row
from mlgitfs.model.changes import ChangeKind
from mlgitfs.model.ids import ChunkId
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.repo.diff import DiffEntry
from mlgitfs.repo.hooks import ContentReader, Hook
from mlgitfs.repo.mergerules import glob_pattern
from mlgitfs.repo.trees import file_chunks


def _pillow() -> Any | None:
    """PIL.Image, or None where Pillow is not installed (the image check then says it was
    skipped). Imported by name so mypy sees one type whether Pillow is installed or not."""
    try:
        return importlib.import_module("PIL.Image")
    except ImportError:  # pragma: no cover - depends on the environment
        return None


MAX_FINDINGS = 10  # problems listed per check; the count says how many more
_SEARCH_BATCH = 64  # new keys looked up by one byte search each (merge/text.py's limit)
_INT = re.compile(r"[-+]?\d+")
_BOOLS = {"true", "false", "0", "1", "yes", "no", "t", "f", "y", "n"}


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    output: str  # what failed, one finding a line (or why the check was skipped)
    looked_at: int = 0  # changed files the check read


def _matches(globs: Sequence[str], path: str) -> bool:
    return any(glob_pattern(g).match(path) for g in globs)


def _new_files(changes: Sequence[DiffEntry]) -> list[DiffEntry]:
    return [
        c
        for c in changes
        if c.change is not ChangeKind.DELETED
        and c.new is not None
        and c.new.kind in (EntryKind.FILE, EntryKind.CHUNKED)
    ]


def _verdict(findings: list[str], looked_at: int) -> Verdict:
    more = len(findings) - MAX_FINDINGS
    lines = findings[:MAX_FINDINGS] + ([f"... and {more} more"] if more > 0 else [])
    return Verdict(not findings, "\n".join(lines), looked_at)


def file_bytes(reader: ContentReader, entry: TreeEntry) -> bytes:
    return b"".join(reader.read_chunk(ChunkId(c.id)) for c in file_chunks(reader, entry))


def run_check(hook: Hook, reader: ContentReader, changes: Sequence[DiffEntry]) -> Verdict:
    files = _new_files(changes)
    o = hook.options
    if hook.check == "max-size":
        limit = int(o["size"])  # type: ignore[call-overload]
        globs: Sequence[str] = o["paths"]  # type: ignore[assignment]
        big = [
            f"{c.path}: {c.new_size} bytes, more than {limit}"
            for c in files
            if c.new_size > limit and _matches(globs, c.path)
        ]
        return _verdict(big, len(files))
    if hook.check == "paths":
        allow: Sequence[str] = o["allow"]  # type: ignore[assignment]
        forbid: Sequence[str] = o["forbid"]  # type: ignore[assignment]
        bad = []
        for c in changes:
            if c.change is ChangeKind.DELETED:
                continue
            if _matches(forbid, c.path):
                bad.append(f"{c.path}: matches a forbidden glob")
            elif allow and not _matches(allow, c.path):
                bad.append(f"{c.path}: matches no allowed glob")
        return _verdict(bad, 0)
    if hook.check == "table":
        return _tables(hook, reader, files, changes)
    return _images(o["paths"], reader, files)  # type: ignore[arg-type]


def _images(globs: Sequence[str], reader: ContentReader, files: list[DiffEntry]) -> Verdict:
    files = [c for c in files if _matches(globs, c.path)]
    image = _pillow()
    if image is None:
        return Verdict(True, f"skipped: Pillow is not installed ({len(files)} image(s) unchecked)")
    bad = []
    for c in files:
        assert c.new is not None
        try:
            with image.open(io.BytesIO(file_bytes(reader, c.new))) as im:
                im.load()
        except Exception as exc:  # Pillow raises many kinds for a broken image
            bad.append(f"{c.path}: does not decode as an image ({type(exc).__name__}: {exc})")
    return _verdict(bad, len(files))


# --- tables -----------------------------------------------------------------------------


def _type_ok(fmt: str, cell: Cell, want: str) -> bool:
    """Whether a non-empty cell holds a value of type `want` (cells as the codec gives them:
    text for CSV, canonical JSON for JSON Lines, Python values for Parquet)."""
    value: Any = cell
    if fmt == "jsonl":
        value = json.loads(str(cell))
    if fmt == "csv":  # text: the value is what the text parses as
        if want == "int":
            return _INT.fullmatch(value.strip()) is not None
        if want == "float":
            try:
                float(value)
            except ValueError:
                return False
            return True
        if want == "bool":
            return value.strip().lower() in _BOOLS
        return True
    if want == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if want == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if want == "bool":
        return isinstance(value, bool)
    return isinstance(value, str)


def _empty(fmt: str, cell: Cell) -> bool:
    return cell is ABSENT or cell is None or cell == "" or (fmt == "jsonl" and cell == "null")


def _table_findings(
    hook: Hook, codec: Codec, path: str, old: Decoded | None, new: Decoded
) -> list[str]:
    fmt = getattr(codec, "name", "")
    columns: dict[str, str] = hook.options["columns"]  # type: ignore[assignment]
    key: tuple[str, ...] = hook.options["key"]  # type: ignore[assignment]
    out: list[str] = []
    have = new.columns
    if have is not None:
        missing = [c for c in (*columns, *key) if c not in have]
        if missing:
            return [f"{path}: no column {', '.join(dict.fromkeys(missing))}"]
        extra = [c for c in have if c not in columns and c not in key]
        if hook.options["strict"] and extra:
            out.append(f"{path}: columns not in the schema: {', '.join(extra)}")
    diff = codec.diff(old, new)
    plus: list[Row] = [r.row for r in diff.plus]
    for rec in diff.plus:
        bad: list[str] = []
        for col, want in columns.items():
            cell = rec.row.get(col, ABSENT)
            if cell is ABSENT and have is None:
                bad.append(f"no field {col!r}")
            elif not _empty(fmt, cell) and not _type_ok(fmt, cell, want):
                bad.append(f"{col} = {codec.show(cell)!r} is not {want}")
        for col in key:
            if _empty(fmt, rec.row.get(col, ABSENT)):
                bad.append(f"empty key column {col!r}")
        if bad:  # where() counts lines from the top: only for a row that is reported
            where = f"{path} {codec.where(new, rec.ref)}"
            out.extend(f"{where}: {b}" for b in bad)
            if len(out) > MAX_FINDINGS:
                break
    if key:
        out.extend(_duplicates(codec, path, new, key, plus, [r.row for r in diff.minus], old))
    return out


def _key(row: Row, key: tuple[str, ...]) -> tuple[Cell, ...]:
    return tuple(row.get(c, ABSENT) for c in key)


def _duplicates(
    codec: Codec,
    path: str,
    new: Decoded,
    key: tuple[str, ...],
    plus: list[Row],
    minus: list[Row],
    old: Decoded | None,
) -> list[str]:
    """Keys of the changed rows found twice in the new table. A changed row that keeps a
    removed row's key replaces it; any other key is looked for in the whole table."""
    counts: dict[tuple[Cell, ...], int] = {}
    for row in plus:
        k = _key(row, key)
        counts[k] = counts.get(k, 0) + 1
    dup = {k for k, n in counts.items() if n > 1}
    freed: dict[tuple[Cell, ...], int] = {}
    for row in minus:
        k = _key(row, key)
        freed[k] = freed.get(k, 0) + 1
    # A key a removed row held, taken by as many changed rows: unique if it was in the base.
    fresh = [k for k in counts if k not in dup and freed.get(k, 0) < counts[k]]
    if old is None:
        fresh = []  # a new table: every row is a changed row, counted above
    found = _count_keys(codec, new, key, fresh)
    dup.update(k for k, n in found.items() if n > 1)
    show = [", ".join(codec.show(c) for c in k) for k in sorted(dup, key=repr)]
    return [f"{path}: key ({', '.join(key)}) = ({s}) is not unique" for s in show]


def _count_keys(
    codec: Codec, table: Decoded, key: tuple[str, ...], keys: list[tuple[Cell, ...]]
) -> dict[tuple[Cell, ...], int]:
    """How many rows of `table` hold each of `keys` (a byte search per key where the codec
    can do one, else one pass over every row)."""
    if not keys:
        return {}
    want = set(keys)
    counts = dict.fromkeys(keys, 0)
    found: dict[int, Row] | None = {}  # by the record's place: batches may find it twice
    for i in range(0, len(keys), _SEARCH_BATCH):
        batch = list({k[0] for k in keys[i : i + _SEARCH_BATCH]})
        recs = codec.records_with(table, key[0], batch)
        if recs is None:
            found = None
            break
        assert found is not None
        found.update((r.ref, r.row) for r in recs)
    rows = codec.all_rows(table) if found is None else list(found.values())
    for row in rows:
        k = _key(row, key)
        if k in want:
            counts[k] += 1
    return counts


def _tables(
    hook: Hook, reader: ContentReader, files: list[DiffEntry], changes: Sequence[DiffEntry]
) -> Verdict:
    globs: Sequence[str] = hook.options["path"]  # type: ignore[assignment]
    findings: list[str] = []
    looked = 0
    for c in files:
        if not _matches(globs, c.path):
            continue
        assert c.new is not None
        looked += 1
        try:
            codec = codec_for(c.path)
            new = codec.decode(file_bytes(reader, c.new), "candidate", c.path)
            old = None
            if c.old is not None and c.old.kind in (EntryKind.FILE, EntryKind.CHUNKED):
                try:
                    old = codec.decode(file_bytes(reader, c.old), "base", c.path)
                except TableError:
                    old = None  # a base that does not parse: check every row of the new one
            findings.extend(_table_findings(hook, codec, c.path, old, new))
        except TableError as exc:
            findings.append(exc.message)
    return _verdict(findings, looked)
