"""What a merge reports for each path it could not merge: the kind and the three sides."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ConflictKind(enum.StrEnum):
    MODIFY_MODIFY = "modify/modify"
    MODIFY_DELETE = "modify/delete"
    ADD_ADD = "add/add"
    FILE_DIRECTORY = "file/directory"
    MODE = "mode"
    SYMLINK = "symlink"  # two different targets
    RENAME_RENAME = "rename/rename"  # one file renamed two ways
    ROWS = "rows"  # a row-level merge of a table found conflicting cells or rows


@dataclass(frozen=True, slots=True)
class SideInfo:
    """One side's entry at a conflicted path."""

    kind: str  # file, dir, symlink
    id: str  # content id in hex; a symlink's target
    size: int  # bytes; entries for a directory
    mode: int


@dataclass(frozen=True, slots=True)
class CellConflict:
    """One conflicting cell (or row) of a table merged row by row (strategy rows)."""

    key: str  # the row's key values, joined by ", "
    column: str
    base: str | None  # None: no such cell on that side
    ours: str | None
    theirs: str | None
    kind: str  # cell, delete/modify, modify/delete, key columns


@dataclass(frozen=True, slots=True)
class Conflict:
    path: str
    kind: ConflictKind
    base: SideInfo | None
    ours: SideInfo | None
    theirs: SideInfo | None
    detail: str = ""
    cells: tuple[CellConflict, ...] = ()  # a table's conflicting cells (kind rows)


@dataclass(frozen=True, slots=True)
class MountConflict:
    """A path a merge into a writable mount left unmerged (as status and the api show it)."""

    path: str
    kind: str  # a ConflictKind value
    detail: str
    base: SideInfo | None
    ours: SideInfo | None
    theirs: SideInfo | None
    cells: tuple[CellConflict, ...] = ()  # a table's conflicting cells (kind rows)
