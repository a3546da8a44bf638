"""Row-level diff of two versions of a table (CSV, TSV, JSONL, Parquet) by key: rows added,
removed and changed, each changed cell with its before and after.

The table codecs' own diff (`mlgitfs.merge.table.Codec.diff`) finds the records that differ:
for text tables the common runs of bytes are skipped at memcmp speed and only the records
in a hunk are parsed, so the cost follows the bytes compared and the changes, not the rows;
a Parquet file is decoded whole. Those records are matched by key: a key on both sides is a
changed row (or a moved one, which is no change), on one side an added or removed row. A key
outside the hunks is the same row on both sides. Duplicate keys among the records that
differ, and an added (removed) key that the other side also holds unchanged, are a
DuplicateKey; a key column missing from a header, or a JSONL row without a key field, is a
MissingKeyColumn. Columns added or removed from a header are reported as such, and cells are
compared over the columns both sides have (JSONL rows carry their own fields: a field one
side lacks is a cell changed from or to nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mlgitfs.errors import DuplicateKey, MissingKeyColumn
from mlgitfs.merge.rows import codec_for
from mlgitfs.merge.table import ABSENT, Cell, Codec, Decoded, Record, Row

Key = tuple[Cell, ...]


@dataclass(frozen=True, slots=True)
class CellChange:
    column: str
    before: Cell  # ABSENT: no such cell
    after: Cell


@dataclass(frozen=True, slots=True)
class RowChange:
    change: str  # added, removed, changed
    key: Key
    cells: tuple[CellChange, ...]  # added/removed: the row's cells; changed: those that differ


@dataclass(frozen=True, slots=True)
class RowsDiffed:
    key_columns: tuple[str, ...]
    columns_added: tuple[str, ...]
    columns_removed: tuple[str, ...]
    rows: list[RowChange]  # the new side's order (added, changed), then removed in the old's
    show: Callable[[Cell], str]  # the codec's cell formatter, for rendering


class _Side:
    def __init__(self, codec: Codec, path: str, name: str, table: Decoded, key: tuple[str, ...]):
        self.codec, self.path, self.name, self.table, self.key = codec, path, name, table, key
        cols = table.columns
        if cols is not None:
            missing = [c for c in key if c not in cols]
            if missing:
                raise MissingKeyColumn(
                    f"{path}: no key column {', '.join(missing)} in {name}'s header"
                )

    def key_of(self, rec: Record) -> Key:
        k = tuple(rec.row.get(c, ABSENT) for c in self.key)
        if ABSENT in k:
            missing = next(c for c, v in zip(self.key, k, strict=True) if v is ABSENT)
            where = self.codec.where(self.table, rec.ref)
            raise MissingKeyColumn(f"{self.path}: {where} of {self.name} has no key {missing!r}")
        return k

    def index(self, recs: Sequence[Record]) -> dict[Key, Record]:
        out: dict[Key, Record] = {}
        for rec in recs:
            k = self.key_of(rec)
            if k in out:
                self.twice(k, f"{self.codec.where(self.table, out[k].ref)} and "
                           f"{self.codec.where(self.table, rec.ref)}")  # fmt: skip
            out[k] = rec
        return out

    def twice(self, k: Key, where: str) -> None:
        shown = ", ".join(self.codec.show(v) for v in k)
        raise DuplicateKey(f"{self.path}: key ({shown}) twice in {self.name} ({where})")

    def holds(self, keys: set[Key], other: _Side) -> None:
        """A DuplicateKey when this side holds one of `keys`, keys the other side has in a
        record that differs and this side has in none that differs: this side's record is
        then one the other side holds unchanged, beside the one that differs."""
        if not keys:
            return
        found = self.codec.records_with(self.table, self.key[0], {k[0] for k in keys})
        if found is None:  # no needle to look for: every row is read
            found = self.codec.diff(None, self.table).plus
        for rec in found:
            k = tuple(rec.row.get(c, ABSENT) for c in self.key)
            if k in keys:
                other.twice(k, f"one of them also in {self.name}, unchanged")


def diff_table(
    path: str, old: bytes | None, new: bytes | None, key: Sequence[str], names: tuple[str, str]
) -> RowsDiffed:
    """The rows of table `path` that differ from `old` to `new` (None: no such file on that
    side), matched by the `key` columns; `names` name the sides in messages."""
    codec = codec_for(path)
    keys = tuple(key)
    a = _Side(codec, path, names[0], codec.decode(old, names[0], path), keys) if old else None
    b = _Side(codec, path, names[1], codec.decode(new, names[1], path), keys) if new else None
    if a is not None and b is not None:
        d = codec.diff(a.table, b.table)
        minus, plus = a.index(d.minus), b.index(d.plus)
    else:
        minus = a.index(codec.diff(None, a.table).plus) if a is not None else {}
        plus = b.index(codec.diff(None, b.table).plus) if b is not None else {}
    ca = a.table.columns if a is not None else None
    cb = b.table.columns if b is not None else None
    common: tuple[str, ...] | None = None
    if ca is not None and cb is not None:
        common = tuple(c for c in cb if c in ca)
    if a is not None and b is not None:
        b.holds({k for k in minus if k not in plus}, a)
        a.holds({k for k in plus if k not in minus}, b)
    out: list[RowChange] = []
    for k, rec in plus.items():
        was = minus.get(k)
        if was is None:
            out.append(RowChange("added", k, _cells({}, rec.row, None)))
            continue
        cells = _cells(was.row, rec.row, common)
        if cells:
            out.append(RowChange("changed", k, cells))
    out += [
        RowChange("removed", k, _cells(r.row, {}, None)) for k, r in minus.items() if k not in plus
    ]
    return RowsDiffed(
        keys,
        tuple(c for c in cb or () if c not in (ca or ())) if ca is not None else (),
        tuple(c for c in ca or () if c not in (cb or ())) if cb is not None else (),
        out,
        codec.show,
    )


def _cells(before: Row, after: Row, columns: tuple[str, ...] | None) -> tuple[CellChange, ...]:
    names = columns
    if names is None:
        names = tuple(after) + tuple(c for c in before if c not in after)
    return tuple(
        CellChange(c, before.get(c, ABSENT), after.get(c, ABSENT))
        for c in names
        if before.get(c, ABSENT) != after.get(c, ABSENT)
    )
