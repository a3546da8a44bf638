"""Parquet tables through pyarrow (the ``tables`` extra): the only module that imports it.

Every row is read (Parquet has no record bytes to compare); a cell is the column's Python
value made hashable (lists as tuples, structs and maps as sorted item tuples, NaN as one
value). The merged file keeps ours' schema, field types and metadata, and ours' compression;
a column added by theirs keeps theirs' type.
"""

from __future__ import annotations

import io
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from mlgitfs.errors import TableError, TableParseError
from mlgitfs.merge.table import ABSENT, Cell, Decoded, Edit, Record, Row, SideDiff

try:  # the optional "tables" extra
    import pyarrow as pa
    import pyarrow.parquet as pq
except ImportError:  # pragma: no cover - depends on the installation
    pa = None
    pq = None


class _NaN:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NaN"


NAN = _NaN()


class Items(tuple[tuple[str, Any], ...]):
    """A struct or map value made hashable; written back as a dict."""


def _freeze(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return NAN
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return Items(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


def _thaw(v: Any) -> Any:
    if v is NAN:
        return math.nan
    if v is ABSENT:
        return None
    if isinstance(v, Items):
        return {k: _thaw(x) for k, x in v}
    if isinstance(v, tuple):
        return [_thaw(x) for x in v]
    return v


@dataclass(slots=True)
class ParquetTable:
    path: str
    side: str
    columns: tuple[str, ...] | None
    rows: list[tuple[Any, ...]]
    schema: Any  # pyarrow.Schema
    compression: str


class ParquetCodec:
    name = "parquet"

    def decode(self, data: bytes, side: str, path: str) -> ParquetTable:
        if pa is None or pq is None:
            raise TableError(
                f"{path}: merging Parquet needs pyarrow (pip install 'mlgitfs[tables]')"
            )
        try:
            table = pq.read_table(pa.BufferReader(data))
            meta = pq.ParquetFile(pa.BufferReader(data)).metadata
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise TableParseError(f"{path} ({side}): not a Parquet file: {exc}") from exc
        names = tuple(table.column_names)
        if len(set(names)) != len(names):
            raise TableParseError(f"{path} ({side}): a column named twice: {names}")
        compression = "snappy"
        if meta.num_row_groups and meta.num_columns:
            compression = str(meta.row_group(0).column(0).compression).lower()
        cols = [[_freeze(v) for v in c.to_pylist()] for c in table.columns]
        rows = list(zip(*cols, strict=True)) if cols else [() for _ in range(table.num_rows)]
        return ParquetTable(path, side, names, rows, table.schema, compression)

    def _records(self, t: ParquetTable, refs: Sequence[int]) -> list[Record]:
        cols = t.columns or ()
        return [Record(i, i + 1, dict(zip(cols, t.rows[i], strict=True))) for i in refs]

    def diff(self, base: Decoded | None, side: Decoded) -> SideDiff:
        assert isinstance(side, ParquetTable)
        if base is None:
            return SideDiff([], self._records(side, range(len(side.rows))))
        assert isinstance(base, ParquetTable)
        if base.columns != side.columns:
            return SideDiff(
                self._records(base, range(len(base.rows))),
                self._records(side, range(len(side.rows))),
            )
        waiting: dict[tuple[Any, ...], list[int]] = {}
        for i, row in enumerate(base.rows):
            waiting.setdefault(row, []).append(i)
        kept: dict[int, int] = {}
        plus: list[int] = []
        for i, row in enumerate(side.rows):
            there = waiting.get(row)
            if there:
                kept[there.pop(0)] = i
            else:
                plus.append(i)
        minus = [i for i in range(len(base.rows)) if i not in kept]
        out = SideDiff(self._records(base, minus), self._records(side, plus))
        out.kept = kept
        return out

    def locate(self, base: Decoded, ours: Decoded, ours_diff: SideDiff, ref: int) -> int:
        return ours_diff.kept[ref]

    def diff_near(self, base: Decoded | None, side: Decoded, near: SideDiff) -> SideDiff:
        return self.diff(base, side)

    def records_with(
        self, table: Decoded, column: str, cells: Collection[Cell]
    ) -> Sequence[Record] | None:
        return None

    def all_rows(self, table: Decoded) -> Sequence[Row]:
        assert isinstance(table, ParquetTable)
        return [r.row for r in self._records(table, range(len(table.rows)))]

    def encode(
        self,
        ours: Decoded,
        theirs: Decoded,
        columns: tuple[str, ...] | None,
        edits: Sequence[Edit],
        appended: Sequence[Row],
    ) -> bytes:
        assert isinstance(ours, ParquetTable) and isinstance(theirs, ParquetTable)
        assert pa is not None and pq is not None
        cols = columns if columns is not None else ours.columns or ()
        by_ref = {e.ref: e.row for e in edits}
        own = ours.columns or ()
        rows: list[Row] = []
        for i, values in enumerate(ours.rows):
            if i in by_ref:
                row = by_ref[i]
                if row is not None:
                    rows.append(row)
            else:
                rows.append(dict(zip(own, values, strict=True)))
        rows.extend(appended)
        fields = []
        for c in cols:
            schema = ours.schema if c in own else theirs.schema
            fields.append(schema.field(c))
        schema = pa.schema(fields, metadata=ours.schema.metadata)
        if len(rows) != len(ours.rows) and schema.metadata and b"pandas" in schema.metadata:
            # pandas' metadata describes ours' index, which no longer fits the rows
            schema = schema.remove_metadata().with_metadata(
                {k: v for k, v in schema.metadata.items() if k != b"pandas"}
            )
        try:
            arrays = [
                pa.array([_thaw(r.get(c, ABSENT)) for r in rows], type=f.type)
                for c, f in zip(cols, fields, strict=True)
            ]
            table = pa.Table.from_arrays(arrays, schema=schema)
            buf = io.BytesIO()
            pq.write_table(table, buf, compression=ours.compression)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            raise TableParseError(
                f"{ours.path}: the merged rows do not fit ours' schema: {exc}"
            ) from exc
        return buf.getvalue()

    def show(self, cell: Cell) -> str:
        v = _thaw(cell)
        return "" if v is None else str(v)

    def where(self, table: Decoded, ref: int) -> str:
        return f"row {ref + 1}"


def write_rows(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> bytes:
    """A Parquet file of string columns (None: null) from rows, for tests and examples."""
    if pa is None or pq is None:
        raise TableError("writing Parquet needs pyarrow (pip install 'mlgitfs[tables]')")
    arrays = [pa.array([r.get(c) for r in rows], type=pa.string()) for c in columns]
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_arrays(arrays, names=list(columns)), buf)
    return buf.getvalue()


def read_rows(data: bytes) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """(columns, rows as dicts) of a Parquet file."""
    if pa is None or pq is None:
        raise TableError("reading Parquet needs pyarrow (pip install 'mlgitfs[tables]')")
    table = pq.read_table(pa.BufferReader(data))
    return tuple(table.column_names), table.to_pylist()
