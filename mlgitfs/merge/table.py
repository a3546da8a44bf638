"""What a table format gives the row-level merge: decoded sides, their differences from the
base, and the edits that write the merged table in ours' format.

A *record* is one row's stored form (a CSV record, a JSON line, a Parquet row) and a *ref*
is where it sits in its side (a byte offset for text, a row index for Parquet). A codec
never decides the merge: `mlgitfs.merge.rows` does, over rows as dicts keyed by column.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class _Absent:
    """The value of a cell whose column a row does not have (or of a row that is not there)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = _Absent()

Cell = object  # str (CSV), canonical JSON text (JSON Lines), a hashable Python value (Parquet)
Row = dict[str, Cell]


@dataclass(frozen=True, slots=True)
class Record:
    ref: int  # where the record starts in its side (byte offset, or row index)
    end: int  # where it ends (the next record's ref for text; ref + 1 for Parquet)
    row: Row


@dataclass(slots=True)
class SideDiff:
    """One side against the base: what it removed and what it added (changed rows are both)."""

    minus: list[Record] = field(default_factory=list)  # base records this side does not have
    plus: list[Record] = field(default_factory=list)  # this side's records the base does not have
    hunks: list[tuple[int, int, int, int]] = field(default_factory=list)  # text: where they are
    sync: list[tuple[int, int]] = field(default_factory=list)  # text: base -> side positions
    complete: bool = True  # False: only the side's changes near another diff's were looked for
    kept: dict[int, int] = field(default_factory=dict)  # Parquet: base row -> this side's row


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace ours' record [ref, end) by ``row`` (None: delete it)."""

    ref: int
    end: int
    row: Row | None


class Decoded(Protocol):
    """One side of the merge, decoded as far as its format needs without reading every row."""

    @property
    def columns(self) -> tuple[str, ...] | None: ...  # None: rows carry their own fields (JSONL)


class Codec(Protocol):
    def decode(self, data: bytes, side: str, path: str) -> Decoded: ...

    def diff(self, base: Decoded | None, side: Decoded) -> SideDiff: ...

    def diff_near(self, base: Decoded | None, side: Decoded, near: SideDiff) -> SideDiff:
        """The side's changes where ``near`` changed the base (and any others it finds)."""
        ...

    def locate(self, base: Decoded, ours: Decoded, ours_diff: SideDiff, ref: int) -> int:
        """Where a base record that ours kept unchanged sits in ours."""
        ...

    def records_with(
        self, table: Decoded, column: str, cells: Collection[Cell]
    ) -> Sequence[Record] | None:
        """A superset of the records whose ``column`` holds one of ``cells`` (None: unknown,
        or too many to look for one by one)."""
        ...

    def all_rows(self, table: Decoded) -> Sequence[Row]: ...

    def encode(
        self,
        ours: Decoded,
        theirs: Decoded,
        columns: tuple[str, ...] | None,
        edits: Sequence[Edit],
        appended: Sequence[Row],
    ) -> bytes: ...

    def show(self, cell: Cell) -> str:
        """A cell as a person reads it in the conflicts table."""
        ...

    def where(self, table: Decoded, ref: int) -> str:
        """A record's place for messages: ``line 17``, ``row 16``."""
        ...


def project(row: Mapping[str, Cell], columns: Sequence[str]) -> Row:
    return {c: row.get(c, ABSENT) for c in columns}


def spreadsheet_csv(header: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    """A CSV table for a spreadsheet: UTF-8 with a BOM (spreadsheets read that as UTF-8),
    CRLF lines."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(rows)
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")
