"""Row-level three-way merge of a table (merge strategy ``rows``): by key, cell by cell.

Rows are matched by the key columns (all of base's columns when the rule names none) and
each row is a dict of column to cell. Per key, with b, o, t the base, ours and theirs rows
(None where a side has no such row): o == t or b == t gives o, b == o gives t; otherwise
an added-on-both-sides or changed-on-both-sides row merges cell by cell the same way, and
a row deleted on one side and changed on the other is a conflict. A cell changed to two
values is a conflict, reported by key and column. Columns merge like cells (present or not
on each side): the merged table has ours' columns in ours' order, less those theirs dropped,
then those theirs added in theirs' order. A base key column that a side renamed or dropped
is a conflict. Duplicate keys (among the rows a side changed, added or removed, and a row
added with a key the base holds), a missing key column and a file that does not parse are
errors (`mlgitfs.errors.TableError`).

Output order: ours' rows in ours' order, then the rows only theirs added, in theirs' order.
What no side changed is copied from ours as it is (byte for byte for text formats).
A side whose bytes equal the base's (or the other side's) gives the other side's file whole.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from mlgitfs.errors import DuplicateKey, MissingKeyColumn, TableError
from mlgitfs.merge.table import (
    ABSENT,
    Cell,
    Codec,
    Decoded,
    Edit,
    Record,
    Row,
    project,
    spreadsheet_csv,
)
from mlgitfs.merge.threeway import three_way

Key = tuple[Cell, ...]

EXTENSIONS = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")


class RowConflictKind(enum.StrEnum):
    CELL = "cell"  # the same cell changed (or added) to two different values
    DELETE_MODIFY = "delete/modify"  # ours deleted the row, theirs changed this cell
    MODIFY_DELETE = "modify/delete"  # ours changed this cell, theirs deleted the row
    KEY_COLUMNS = "key columns"  # a side renamed or dropped a key column


@dataclass(frozen=True, slots=True)
class RowConflict:
    kind: RowConflictKind
    key: tuple[str, ...]  # the row's key values as text (empty for KEY_COLUMNS)
    column: str
    base: str | None  # None: no such cell (no row, or no column) on that side
    ours: str | None
    theirs: str | None

    def __str__(self) -> str:
        def v(x: str | None) -> str:
            return "(none)" if x is None else repr(x)

        where = f"key {', '.join(self.key)}, column {self.column!r}" if self.key else self.column
        sides = f"base {v(self.base)}, ours {v(self.ours)}, theirs {v(self.theirs)}"
        return f"{where}: {sides} ({self.kind})"


@dataclass(frozen=True, slots=True)
class TableMergeResult:
    data: bytes | None  # the merged table; None when it conflicted
    conflicts: tuple[RowConflict, ...]
    key_columns: tuple[str, ...]  # how conflicts' keys read; () when the whole row is the key
    rows_changed: int = 0  # ours' rows the merge replaced, deleted or appended
    # with conflicts: the merged table with ours' value in each conflicting cell (and ours'
    # row where a row was deleted on one side and changed on the other), for a merge into a
    # writable mount to leave for a person to edit; None when the columns conflicted
    partial: bytes | None = None

    def conflicts_csv(self) -> bytes:
        """The conflicts as a CSV table to review in a spreadsheet: key columns, then column,
        base, ours, theirs and the kind of conflict. UTF-8 with a BOM (spreadsheets read
        that as UTF-8), CRLF lines."""
        fixed = ("column", "base", "ours", "theirs", "conflict")
        names = [f"key:{k}" if k in fixed else k for k in self.key_columns] or ["key"]
        lines = []
        for c in self.conflicts:
            key = list(c.key) if self.key_columns else ["; ".join(c.key)]
            key += [""] * (len(names) - len(key))
            lines.append([*key, c.column, c.base or "", c.ours or "", c.theirs or "", c.kind.value])
        return spreadsheet_csv([*names, *fixed], lines)


def codec_for(path: str) -> Codec:
    """The table format a path's extension names (case-insensitive)."""
    low = path.lower()
    if low.endswith((".csv", ".tsv")):
        from mlgitfs.merge.csvtable import CsvCodec

        return CsvCodec(tsv=low.endswith(".tsv"))
    if low.endswith((".jsonl", ".ndjson")):
        from mlgitfs.merge.jsonl import JsonlCodec

        return JsonlCodec()
    if low.endswith(".parquet"):
        from mlgitfs.merge.parquet import ParquetCodec

        return ParquetCodec()
    raise TableError(f"{path}: no table format for this name (one of {', '.join(EXTENSIONS)})")


def merge_table(
    base: bytes | None, ours: bytes, theirs: bytes, path: str, key: Sequence[str]
) -> TableMergeResult:
    """Merge two versions of a table against their base (None: both sides added the file)."""
    keys = tuple(key)
    if ours == theirs or base == theirs:
        return TableMergeResult(ours, (), keys)
    if base == ours:
        return TableMergeResult(theirs, (), keys)
    codec = codec_for(path)
    b = codec.decode(base, "base", path) if base is not None else None
    o = codec.decode(ours, "ours", path)
    t = codec.decode(theirs, "theirs", path)
    return _Merge(codec, path, b, o, t, keys).run()


def _rank(key: Key) -> tuple[str, ...]:
    return tuple(str(k) for k in key)


class _Merge:
    def __init__(
        self,
        codec: Codec,
        path: str,
        base: Decoded | None,
        ours: Decoded,
        theirs: Decoded,
        key: tuple[str, ...],
    ) -> None:
        self.codec = codec
        self.path = path
        self.base = base
        self.ours = ours
        self.theirs = theirs
        self.key = key
        self.conflicts: list[RowConflict] = []

    # --- columns ------------------------------------------------------------------------

    def _columns(self) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
        """(key columns, merged columns); None for formats whose rows carry their fields."""
        oc, tc = self.ours.columns, self.theirs.columns
        if oc is None or tc is None:
            return (self.key or None), None
        bc = self.base.columns if self.base is not None else None
        sides = (("ours", oc), ("theirs", tc))
        if self.key:
            keycols = self.key
            for name in keycols:
                if bc is not None and name not in bc:
                    raise MissingKeyColumn(
                        f"{self.path}: key column {name!r} is not in base's header"
                    )
                for side, cols in sides:
                    if bc is None and name not in cols:
                        raise MissingKeyColumn(
                            f"{self.path}: key column {name!r} is not in {side}' header"
                        )
        else:
            keycols = bc if bc is not None else tuple(c for c in oc if c in tc)
            if not keycols:
                raise MissingKeyColumn(
                    f"{self.path}: no column common to the sides to match rows by"
                )
        for name in keycols:
            if name not in oc or name not in tc:
                self.conflicts.append(
                    RowConflict(
                        RowConflictKind.KEY_COLUMNS,
                        (),
                        name,
                        name,
                        name if name in oc else None,
                        name if name in tc else None,
                    )
                )
        bset = set(bc or ())

        def present(c: str) -> bool:
            return bool(three_way(c in bset, c in oc, c in tc)[1])

        merged = tuple(c for c in oc if present(c)) + tuple(
            c for c in tc if c not in oc and present(c)
        )
        return keycols, merged

    def _key(self, keycols: tuple[str, ...] | None, rec: Record, side: Decoded) -> Key:
        row = rec.row
        if keycols is None:
            return tuple(sorted((c, str(v)) for c, v in row.items()))
        k = tuple(row.get(c, ABSENT) for c in keycols)
        if ABSENT in k:
            missing = [c for c, v in zip(keycols, k, strict=True) if v is ABSENT]
            raise MissingKeyColumn(
                f"{self.path}: {self.codec.where(side, rec.ref)} has no key field {missing[0]!r}"
            )
        return k

    def _index(
        self, keycols: tuple[str, ...] | None, recs: list[Record], side: Decoded, name: str
    ) -> dict[Key, Record]:
        out: dict[Key, Record] = {}
        for rec in recs:
            k = self._key(keycols, rec, side)
            if k in out and out[k].ref != rec.ref:
                raise DuplicateKey(
                    f"{self.path}: key {self._show_key(keycols, k)} twice in {name} "
                    f"({self.codec.where(side, out[k].ref)} and {self.codec.where(side, rec.ref)})"
                )
            out[k] = rec
        return out

    def _show_key(self, keycols: tuple[str, ...] | None, k: Key) -> str:
        return ", ".join(self._key_text(keycols, k))

    def _key_text(self, keycols: tuple[str, ...] | None, k: Key) -> tuple[str, ...]:
        if keycols is None:
            return tuple(f"{pair[0]}={pair[1]}" for pair in k)  # type: ignore[index]
        return tuple(self.codec.show(v) for v in k)

    # --- rows ---------------------------------------------------------------------------

    def _cells(self, k: Key, keycols: tuple[str, ...] | None, b: Row, o: Row, t: Row) -> Row:
        """Cell-by-cell merge of a row both sides changed or added."""
        out: Row = {}
        names = list(o) + [c for c in t if c not in o] + [c for c in b if c not in o and c not in t]
        for c in names:
            bv, ov, tv = b.get(c, ABSENT), o.get(c, ABSENT), t.get(c, ABSENT)
            ok, v = three_way(bv, ov, tv)
            if not ok:
                self._conflict(RowConflictKind.CELL, k, keycols, c, bv, ov, tv)
            if v is not ABSENT:
                out[c] = v
        return out

    def _conflict(
        self,
        kind: RowConflictKind,
        k: Key,
        keycols: tuple[str, ...] | None,
        column: str,
        b: Cell,
        o: Cell,
        t: Cell,
    ) -> None:
        def show(v: Cell) -> str | None:
            return None if v is ABSENT else self.codec.show(v)

        self.conflicts.append(
            RowConflict(kind, self._key_text(keycols, k), column, show(b), show(o), show(t))
        )

    def _row(
        self, k: Key, keycols: tuple[str, ...] | None, b: Row | None, o: Row | None, t: Row | None
    ) -> Row | None:
        if o == t or b == t:
            return o
        if b == o:
            return t
        if b is None:
            assert o is not None and t is not None
            return self._cells(k, keycols, {}, o, t)
        if o is None or t is None:
            kind = RowConflictKind.DELETE_MODIFY if o is None else RowConflictKind.MODIFY_DELETE
            changed = t if o is None else o
            assert changed is not None
            for c in list(changed) + [c for c in b if c not in changed]:
                bv, cv = b.get(c, ABSENT), changed.get(c, ABSENT)
                if bv != cv:
                    ov, tv = (ABSENT, cv) if o is None else (cv, ABSENT)
                    self._conflict(kind, k, keycols, c, bv, ov, tv)
            return o
        return self._cells(k, keycols, b, o, t)

    # --- the merge ----------------------------------------------------------------------

    def run(self) -> TableMergeResult:
        keycols, columns = self._columns()
        key_names = self.key if keycols is None else keycols
        if self.conflicts:
            return TableMergeResult(None, tuple(self.conflicts), key_names)
        codec, base, ours, theirs = self.codec, self.base, self.ours, self.theirs
        # theirs is read where it changed the base, ours only around those places (the
        # cost follows theirs' change, however far ours has moved on)
        td = codec.diff(base, theirs)
        od = codec.diff_near(base, ours, td)
        bside = base if base is not None else ours
        t_minus = self._index(keycols, td.minus, bside, "base")
        t_plus = self._index(keycols, td.plus, theirs, "theirs")
        o_minus = self._index(keycols, od.minus, bside, "base")
        o_plus = self._index(keycols, od.plus, ours, "ours")
        if not od.complete:
            # theirs' keys ours does not have near theirs' changes: ours may have them
            # elsewhere (added, or moved)
            wanted = {
                k
                for k in (*t_minus, *t_plus)
                if k not in o_plus and (k in o_minus or k not in t_minus)
            }
            elsewhere = None
            if wanted and keycols is not None:
                elsewhere = codec.records_with(ours, keycols[0], {k[0] for k in wanted})
            if wanted and elsewhere is None:
                od = codec.diff(base, ours)
                o_minus = self._index(keycols, od.minus, bside, "base")
                o_plus = self._index(keycols, od.plus, ours, "ours")
            elif elsewhere:
                more = [r for r in elsewhere if self._key(keycols, r, ours) in wanted]
                for k, rec in self._index(keycols, more, ours, "ours").items():
                    if k in o_plus and o_plus[k].ref != rec.ref:
                        raise DuplicateKey(
                            f"{self.path}: key {self._show_key(keycols, k)} twice in ours "
                            f"({codec.where(ours, o_plus[k].ref)} and {codec.where(ours, rec.ref)})"
                        )
                    o_plus[k] = rec
        b_known: dict[Key, Record] = {**o_minus}
        for k, rec in t_minus.items():
            if k in b_known and b_known[k].ref != rec.ref:
                raise DuplicateKey(
                    f"{self.path}: key {self._show_key(keycols, k)} twice in base "
                    f"({codec.where(bside, b_known[k].ref)} and {codec.where(bside, rec.ref)})"
                )
            b_known[k] = rec
        self._added_keys(keycols, b_known, (("ours", o_plus, o_minus), ("theirs", t_plus, t_minus)))

        edits: list[Edit] = []
        appended: list[tuple[int, Row]] = []
        touched = {**o_minus, **o_plus, **t_minus, **t_plus}
        for k in sorted(touched, key=_rank):
            brec = b_known.get(k)
            b = brec.row if brec is not None else None
            o = o_plus[k].row if k in o_plus else None if k in o_minus else b
            t = t_plus[k].row if k in t_plus else None if k in t_minus else b
            merged = self._row(k, keycols, b, o, t)
            if columns is not None and merged is not None:
                merged = project(merged, columns)
            if k in o_plus:
                at: tuple[int, int] | None = (o_plus[k].ref, o_plus[k].end)
            elif k not in o_minus and brec is not None:
                assert base is not None
                ref = codec.locate(base, ours, od, brec.ref)
                at = (ref, ref + brec.end - brec.ref)
            else:
                at = None
            if at is None:
                if merged is not None:
                    appended.append((t_plus[k].ref, merged))
            else:
                mine = project(o, columns) if columns is not None and o is not None else o
                if merged != mine or columns is not None and columns != ours.columns:
                    edits.append(Edit(at[0], at[1], merged))
        appended.sort(key=lambda a: a[0])
        data = codec.encode(ours, theirs, columns, edits, [r for _, r in appended])
        if self.conflicts:
            order = {c: i for i, c in enumerate(columns or ())}
            found = sorted(
                self.conflicts, key=lambda c: (c.key, order.get(c.column, len(order)), c.column)
            )
            return TableMergeResult(None, tuple(found), key_names or (), partial=data)
        return TableMergeResult(data, (), key_names or (), len(edits) + len(appended))

    def _added_keys(
        self,
        keycols: tuple[str, ...] | None,
        b_known: dict[Key, Record],
        sides: tuple[tuple[str, dict[Key, Record], dict[Key, Record]], ...],
    ) -> None:
        """A row added with a key the base already holds duplicates that key on its side."""
        unknown: dict[Key, str] = {}
        for name, plus, minus in sides:
            for k in plus:
                if k in minus:
                    continue
                if k in b_known:
                    raise DuplicateKey(
                        f"{self.path}: key {self._show_key(keycols, k)} twice in {name} "
                        "(a row added with a key that is already there)"
                    )
                unknown.setdefault(k, name)
        if not unknown or self.base is None:
            return
        base = self.base
        found: Sequence[Row] | None = None
        if keycols is not None:
            first = keycols[0]
            recs = self.codec.records_with(base, first, {k[0] for k in unknown})
            found = [r.row for r in recs] if recs is not None else None
        if found is None:
            found = self.codec.all_rows(base)
        for row in found:
            k = (
                tuple(sorted((c, str(v)) for c, v in row.items()))
                if keycols is None
                else tuple(row.get(c, ABSENT) for c in keycols)
            )
            if k in unknown:
                raise DuplicateKey(
                    f"{self.path}: key {self._show_key(keycols, k)} twice in {unknown[k]} "
                    "(a row added with a key that is already there)"
                )
