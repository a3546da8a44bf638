"""The results the verbs return: frozen dataclasses the CLI renders (and `--json` dumps)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlgitfs.merge.table import spreadsheet_csv

if TYPE_CHECKING:  # types only: a verb's result should not import other verbs' machinery
    from mlgitfs.repo import lineage
    from mlgitfs.repo.gate import HookResult

# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RepoResult:
    name: str
    kind: str
    mutability: str
    categories: tuple[str, ...]
    created_ns: int
    branches: int
    tags: int


@dataclass(frozen=True, slots=True)
class CommitInfo:
    id: str
    tree: str
    parents: tuple[str, ...]
    author: str
    time_ns: int
    message: str
    meta: dict[str, str]
    inputs: tuple[tuple[str, str], ...]
    refs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportResult:
    repo: str
    branch: str
    commit: CommitInfo
    files: int
    dirs: int
    symlinks: int
    bytes: int
    files_read: int
    bytes_read: int
    bytes_stored: int
    seconds: float
    changed: bool = True  # False: nothing changed, the branch did not move
    hooks: tuple[HookResult, ...] = ()  # the hooks and checks that ran, cached or not


@dataclass(frozen=True, slots=True)
class ExportResult:
    files: int
    dirs: int
    symlinks: int
    bytes: int


@dataclass(frozen=True, slots=True)
class LsEntry:
    path: str
    kind: str
    mode: int
    size: int  # bytes of a file, length of a symlink's target; 0 for a directory
    mtime_ns: int
    id: str  # chunk, manifest or tree id in hex; the target for symlinks
    entries: int | None = None  # a directory's number of entries; None for files, symlinks


@dataclass(frozen=True, slots=True)
class BlameItem:
    """One entry of a directory and the commit that last changed it."""

    name: str
    kind: str  # file, dir, symlink
    commit: str  # the commit's id in hex
    author: str
    time_ns: int
    subject: str  # the first line of the commit's message
    path: str  # where the entry was in that commit (another path after a rename)


@dataclass(frozen=True, slots=True)
class RowBlameItem:
    """One row of a table, by key, and the commit that last set it."""

    key: tuple[str, ...]  # the key's cells as text
    commit: str
    author: str
    time_ns: int
    subject: str
    path: str  # where the file was in that commit (another path after a rename)
    cells: tuple[BlameCell, ...] = ()  # with --cells


@dataclass(frozen=True, slots=True)
class BlameCell:
    """One cell of a row and the commit that last set it."""

    column: str
    commit: str
    author: str
    time_ns: int
    path: str


@dataclass(frozen=True, slots=True)
class ChunkBlameItem:
    """One content-defined chunk of a file (a byte range) and the commit that introduced it."""

    start: int  # byte offset in the blamed version
    end: int  # start + length
    chunk: str  # the chunk's id in hex
    commit: str
    author: str
    time_ns: int
    subject: str
    path: str  # where the file was in that commit (another path after a rename)


@dataclass(frozen=True, slots=True)
class BlameResult:
    """A directory's entries (`entries`), a table's rows by key (`rows`) or a file's chunks
    (`chunks`)."""

    kind: str  # "dir", "rows" or "chunks"
    path: str  # the directory or file blamed, inside the version ("" for the root)
    entries: tuple[BlameItem, ...] = ()
    key_columns: tuple[str, ...] = ()
    rows: tuple[RowBlameItem, ...] = ()
    chunks: tuple[ChunkBlameItem, ...] = ()


@dataclass(frozen=True, slots=True)
class CellDiff:
    column: str
    before: str | None  # None: no such cell (no row, or no field)
    after: str | None


@dataclass(frozen=True, slots=True)
class RowDiffItem:
    change: str  # added, removed, changed
    key: tuple[str, ...]  # the key's values as text
    cells: tuple[CellDiff, ...]  # changed: the cells that differ; added/removed: every cell


@dataclass(frozen=True, slots=True)
class TableDiffItem:
    path: str  # in B (in A for a deleted table)
    change: str  # the file's change: added, modified, renamed, deleted
    old_path: str  # renamed: where it was in A
    key_columns: tuple[str, ...]
    columns_added: tuple[str, ...]
    columns_removed: tuple[str, ...]
    rows: tuple[RowDiffItem, ...]

    @property
    def added(self) -> int:
        return sum(1 for r in self.rows if r.change == "added")

    @property
    def removed(self) -> int:
        return sum(1 for r in self.rows if r.change == "removed")

    @property
    def changed(self) -> int:
        return sum(1 for r in self.rows if r.change == "changed")


@dataclass(frozen=True, slots=True)
class RowDiffResult:
    a: str
    b: str
    tables: tuple[TableDiffItem, ...]

    def to_csv(self) -> bytes:
        """One line per cell: table, key, change, column, before, after (a spreadsheet's
        table; a compound key's values joined by "; ")."""
        return spreadsheet_csv(
            ("table", "key", "change", "column", "before", "after"),
            [
                (t.path, "; ".join(r.key), r.change, c.column, c.before or "", c.after or "")
                for t in self.tables
                for r in t.rows
                for c in r.cells
            ],
        )


@dataclass(frozen=True, slots=True)
class DiffItem:
    change: str  # added, modified, renamed, deleted (model/changes.py)
    path: str
    old_size: int
    new_size: int
    old_path: str = ""  # renamed: where it was


@dataclass(frozen=True, slots=True)
class DiffResult:
    a: str
    b: str
    items: tuple[DiffItem, ...]

    @property
    def added(self) -> int:
        return sum(1 for i in self.items if i.change == "added")

    @property
    def deleted(self) -> int:
        return sum(1 for i in self.items if i.change == "deleted")

    @property
    def renamed(self) -> int:
        return sum(1 for i in self.items if i.change == "renamed")

    @property
    def modified(self) -> int:
        return sum(1 for i in self.items if i.change == "modified")


@dataclass(frozen=True, slots=True)
class RefResult:
    name: str
    commit: str


@dataclass(frozen=True, slots=True)
class LineageResult:
    root: lineage.LineageNode
    direction: str
