"""CSV and TSV tables with a header row: dialect found from ours, records parsed with `csv`.

The dialect is what the merged file keeps of ours: the delimiter (a tab for ``.tsv``; for
``.csv`` the most frequent of ``, ; | TAB`` in the header line), the quoting (minimal, all,
or non-numeric: whichever writes ours' first records back byte for byte) and the line ending
(the header's). Quotes are ``"`` and doubled inside a field, as in RFC 4180. A row with more
or fewer fields than the header does not parse.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mlgitfs.errors import TableParseError

if TYPE_CHECKING:
    import _csv
from mlgitfs.merge.align import record_end
from mlgitfs.merge.table import ABSENT, Cell, Row
from mlgitfs.merge.text import TextCodec, TextTable

_DELIMITERS = (",", ";", "\t", "|")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_SAMPLE = 20  # records of ours checked to choose the quoting


@dataclass(frozen=True, slots=True)
class CsvDialect:
    delimiter: str
    quoting: str  # minimal, all, nonnumeric


def _field(value: str, d: CsvDialect, alone: bool) -> str:
    quote = d.quoting == "all"
    if not quote:
        special = d.delimiter in value or '"' in value or "\n" in value or "\r" in value
        if d.quoting == "nonnumeric":
            quote = special or (value != "" and _NUMBER.fullmatch(value) is None)
        else:
            quote = special or (alone and value == "")
    if quote:
        return '"' + value.replace('"', '""') + '"'
    return value


def format_fields(values: list[str], d: CsvDialect) -> str:
    alone = len(values) == 1
    return d.delimiter.join(_field(v, d, alone) for v in values)


class CsvCodec(TextCodec):
    name = "csv"

    def __init__(self, tsv: bool) -> None:
        self.tsv = tsv

    def _reader(self, texts: list[str], delimiter: str) -> _csv.Reader:
        return csv.reader(texts, delimiter=delimiter, quotechar='"', doublequote=True, strict=True)

    def read_header(
        self, data: bytes, start: int, work_encoding: str, side: str, path: str
    ) -> tuple[int, tuple[str, ...] | None, object]:
        quoted = b'"' in data
        end = record_end(data, start, quoted)
        line = data[start:end].decode(work_encoding)
        delimiter = self._delimiter(line)
        if not line.strip("\r\n"):
            return end, (), CsvDialect(delimiter, "minimal")
        try:
            header = next(self._reader([line], delimiter))
        except (csv.Error, StopIteration) as exc:
            raise TableParseError(f"{path} ({side}): the header does not parse: {exc}") from exc
        if len(set(header)) != len(header):
            dup = sorted({h for h in header if header.count(h) > 1})
            raise TableParseError(f"{path} ({side}): column named twice in the header: {dup}")
        sample = [line]
        at = end
        while at < len(data) and len(sample) <= _SAMPLE:
            nxt = record_end(data, at, quoted)
            sample.append(data[at:nxt].decode(work_encoding))
            at = nxt
        return end, tuple(header), CsvDialect(delimiter, self._quoting(sample, delimiter))

    def _delimiter(self, header: str) -> str:
        if self.tsv:
            return "\t"
        bare = re.sub(r'"[^"]*"', "", header)
        counts = [(bare.count(c), -i, c) for i, c in enumerate(_DELIMITERS)]
        return max(counts)[2] if max(counts)[0] else ","

    def _quoting(self, sample: list[str], delimiter: str) -> str:
        """The quoting that writes the header and ours' first records back as they are."""
        texts = [t.rstrip("\r\n") for t in sample if t.strip("\r\n")]
        try:
            parsed = [next(self._reader([t], delimiter)) for t in texts]
        except (csv.Error, StopIteration):
            return "minimal"
        for quoting in ("minimal", "all", "nonnumeric"):
            d = CsvDialect(delimiter, quoting)
            if all(format_fields(f, d) == t for f, t in zip(parsed, texts, strict=True)):
                return quoting
        return "minimal"

    def parse(self, table: TextTable, texts: list[str], refs: list[int]) -> list[Row]:
        assert isinstance(table.dialect, CsvDialect) and table.columns is not None
        columns = table.columns
        width = len(columns)
        reader = self._reader(texts, table.dialect.delimiter)
        rows: list[Row] = []
        try:
            for fields in reader:
                if reader.line_num != len(rows) + 1:  # a record the quotes did not close
                    raise csv.Error("a quoted field runs into the next record")
                if len(fields) != width:
                    raise TableParseError(
                        f"{table.path} ({table.side}): {self.where(table, refs[len(rows)])} has "
                        f"{len(fields)} fields, the header has {width}"
                    )
                rows.append(dict(zip(columns, fields, strict=True)))
        except csv.Error as exc:
            ref = refs[min(len(rows), len(refs) - 1)]
            raise TableParseError(
                f"{table.path} ({table.side}): {self.where(table, ref)} does not parse: {exc}"
            ) from exc
        if len(rows) != len(texts):
            raise TableParseError(f"{table.path} ({table.side}): a record does not parse")
        return rows

    def signature(self, table: TextTable) -> tuple[object, ...]:
        assert isinstance(table.dialect, CsvDialect)
        return (*super().signature(table), table.dialect.delimiter)

    def format_row(self, table: TextTable, columns: tuple[str, ...] | None, row: Row) -> str:
        assert isinstance(table.dialect, CsvDialect)
        cols = columns if columns is not None else table.columns or ()
        return format_fields([_text(row.get(c, ABSENT)) for c in cols], table.dialect)

    def format_header(self, table: TextTable, columns: tuple[str, ...]) -> str:
        assert isinstance(table.dialect, CsvDialect)
        return format_fields(list(columns), table.dialect)

    def bounds(self, table: TextTable) -> bytes | None:
        assert isinstance(table.dialect, CsvDialect)
        return table.dialect.delimiter.encode() + b"\r\n"

    def needle(self, table: TextTable, cell: Cell) -> bytes | None:
        text = _text(cell)
        if not text:
            return None
        try:
            return text.encode(table.work_encoding)
        except UnicodeEncodeError:
            return None


def _text(cell: Cell) -> str:
    return "" if cell is ABSENT else str(cell)
