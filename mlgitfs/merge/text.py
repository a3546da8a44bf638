"""Text tables (CSV, TSV, JSON Lines): encodings, hunks against the base, merged bytes.

The file's bytes are worked on as they are when they are UTF-8 (with or without a BOM) or,
when they are not valid UTF-8, as Latin-1 (every byte a character, so nothing is lost);
UTF-16 and UTF-32 files with a BOM are transcoded to UTF-8 first and back at the end. Both
working encodings keep ASCII bytes as they are, so a newline, a delimiter or a quote is the
same byte wherever it is found.

Only the records in a hunk (`mlgitfs.merge.align`) are decoded; the merged file is ours'
bytes with the edited records replaced, so what no side changed is copied byte for byte.
A format subclass says how a record becomes a row and a row a record.
"""

from __future__ import annotations

import bisect
import codecs
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from mlgitfs.errors import TableParseError
from mlgitfs.merge.align import Hunk, Sync, hunks, hunks_near, record_end
from mlgitfs.merge.table import Cell, Decoded, Edit, Record, Row, SideDiff

_BOMS = (  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
NEWLINE = b"\n"
_SEARCH_LIMIT = 64  # values looked for one scan each before reading every row instead
_CANDIDATE_LIMIT = 10_000  # candidate lines for a key search before reading every row


@dataclass(slots=True)
class TextTable:
    path: str
    side: str
    data: bytes  # the working bytes: the file itself, or its UTF-8 transcoding
    work_encoding: str  # how ``data`` decodes: utf-8 or latin-1
    encoding: str  # the file's own encoding, written back
    bom: bytes  # written before a transcoded file's text
    start: int  # where the header (or the first record) begins in ``data``
    data_start: int  # where the first data record begins
    columns: tuple[str, ...] | None
    newline: bytes  # b"\n" or b"\r\n": what ours' new records end with
    final_newline: bool
    quoted: bool  # a newline may sit inside a quoted field (CSV with quote characters)
    dialect: object  # the format's own settings (delimiter and quoting, JSON separators)


def read_text(data: bytes, side: str, path: str) -> tuple[bytes, str, str, bytes, int]:
    """(working bytes, working encoding, file encoding, BOM to write, start of the text)."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            if name == "utf-8-sig":
                return data, "utf-8", name, b"", len(bom)
            try:
                text = data[len(bom) :].decode(name)
            except UnicodeDecodeError as exc:
                raise TableParseError(f"{path} ({side}): not valid {name}: {exc}") from exc
            return text.encode("utf-8", "surrogatepass"), "utf-8", name, bom, 0
    if data.isascii():
        return data, "utf-8", "utf-8", b"", 0
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return data, "latin-1", "latin-1", b"", 0
    return data, "utf-8", "utf-8", b"", 0


class TextCodec:
    """Hunks, record parsing and merged bytes for a line-oriented table format."""

    name = "text"

    # --- what a format says ------------------------------------------------------------

    def read_header(
        self, data: bytes, start: int, work_encoding: str, side: str, path: str
    ) -> tuple[int, tuple[str, ...] | None, object]:
        """(data start, columns, dialect) of a file whose text begins at ``start``."""
        raise NotImplementedError

    def parse(self, table: TextTable, texts: list[str], refs: list[int]) -> list[Row]:
        raise NotImplementedError

    def format_row(self, table: TextTable, columns: tuple[str, ...] | None, row: Row) -> str:
        raise NotImplementedError

    def format_header(self, table: TextTable, columns: tuple[str, ...]) -> str:
        raise NotImplementedError

    def needle(self, table: TextTable, cell: Cell) -> bytes | None:
        """Bytes every record holding ``cell`` contains (None: no such bytes are known)."""
        return None

    def show(self, cell: Cell) -> str:
        return str(cell)

    def bounds(self, table: TextTable) -> bytes | None:
        """Bytes that end a field on both sides (None: a needle is found anywhere)."""
        return None

    def signature(self, table: TextTable) -> tuple[object, ...]:
        """Two tables of one signature: equal record bytes are equal rows."""
        return (table.work_encoding, table.data[table.start : table.data_start], table.columns)

    # --- shared ------------------------------------------------------------------------

    def decode(self, data: bytes, side: str, path: str) -> TextTable:
        work, work_encoding, encoding, bom, start = read_text(data, side, path)
        quoted = self.name != "jsonl" and b'"' in work
        data_start, columns, dialect = self.read_header(work, start, work_encoding, side, path)
        first_end = record_end(work, start, quoted)
        newline = b"\r\n" if work[start:first_end].endswith(b"\r\n") else b"\n"
        return TextTable(
            path=path,
            side=side,
            data=work,
            work_encoding=work_encoding,
            encoding=encoding,
            bom=bom,
            start=start,
            data_start=data_start,
            columns=columns,
            newline=newline,
            final_newline=len(work) == start or work.endswith(b"\n"),
            quoted=quoted,
            dialect=dialect,
        )

    def where(self, table: Decoded, ref: int) -> str:
        assert isinstance(table, TextTable)
        return f"line {table.data.count(NEWLINE, 0, ref) + 1}"

    def records(self, table: TextTable, spans: Sequence[tuple[int, int]]) -> list[Record]:
        """The rows of the records in the spans ``data[start:end]``; blank lines are not rows."""
        data = table.data
        quoted = table.quoted
        refs: list[int] = []
        ends: list[int] = []
        texts: list[str] = []
        decode = table.work_encoding
        for start, end in spans:
            s = start
            while s < end:
                e = record_end(data, s, quoted)
                raw = data[s:e]
                if raw.strip(b"\r\n"):
                    refs.append(s)
                    ends.append(e)
                    texts.append(raw.decode(decode))
                s = e
        rows = self.parse(table, texts, refs)
        return [Record(r, e, row) for r, e, row in zip(refs, ends, rows, strict=True)]

    def diff(self, base: Decoded | None, side: Decoded) -> SideDiff:
        assert isinstance(side, TextTable)
        if base is None:
            return SideDiff([], self.records(side, [(side.data_start, len(side.data))]))
        assert isinstance(base, TextTable)
        if self.signature(base) != self.signature(side):  # every record is a change
            whole = (base.data_start, len(base.data), side.data_start, len(side.data))
            return self._diff(base, side, [whole], [(base.data_start, side.data_start)])
        quoted = base.quoted or side.quoted
        found = hunks(base.data, base.data_start, side.data, side.data_start, quoted)
        sync = [(base.data_start, side.data_start)] + [(h[1], h[3]) for h in found]
        return self._diff(base, side, found, sync)

    def _diff(
        self, base: TextTable, side: TextTable, found: list[Hunk], sync: list[Sync]
    ) -> SideDiff:
        return SideDiff(
            self.records(base, [(h[0], h[1]) for h in found]),
            self.records(side, [(h[2], h[3]) for h in found]),
            found,
            sync=sync,
        )

    def diff_near(self, base: Decoded | None, side: Decoded, near: SideDiff) -> SideDiff:
        """The side against the base only where ``near`` (the other side's diff) changed
        the base; the full diff when that cannot be done."""
        assert isinstance(side, TextTable)
        if base is None:
            return self.diff(base, side)
        assert isinstance(base, TextTable)
        if self.signature(base) != self.signature(side):
            return self.diff(base, side)
        quoted = base.quoted or side.quoted
        ranges = [(h[0], h[1]) for h in near.hunks]
        got = hunks_near(base.data, base.data_start, side.data, side.data_start, ranges, quoted)
        if got is None:
            return self.diff(base, side)
        out = self._diff(base, side, *got)
        out.complete = False
        return out

    def locate(self, base: Decoded, ours: Decoded, ours_diff: SideDiff, ref: int) -> int:
        assert isinstance(base, TextTable) and isinstance(ours, TextTable)
        sync = ours_diff.sync
        i = bisect.bisect_right(sync, (ref, len(ours.data) + 1)) - 1
        return ref - sync[i][0] + sync[i][1]

    def records_with(
        self, table: Decoded, column: str, cells: Collection[Cell]
    ) -> Sequence[Record] | None:
        assert isinstance(table, TextTable)
        data = table.data
        if table.quoted or len(cells) > _SEARCH_LIMIT:
            return None
        bounds = self.bounds(table)
        lines: set[int] = set()
        for cell in cells:
            needle = self.needle(table, cell)
            if not needle:
                return None
            at = data.find(needle, table.data_start)
            while at >= 0:
                after = at + len(needle)
                if bounds is None or (
                    (at == 0 or data[at - 1] in bounds)
                    and (after == len(data) or data[after] in bounds)
                ):
                    lines.add(data.rfind(b"\n", 0, at) + 1)
                    if len(lines) > _CANDIDATE_LIMIT:
                        return None
                at = data.find(needle, after)
        spans = [
            (start, record_end(data, start, False))
            for start in sorted(lines)
            if start >= table.data_start
        ]
        return self.records(table, spans)

    def all_rows(self, table: Decoded) -> Sequence[Row]:
        assert isinstance(table, TextTable)
        return [r.row for r in self.records(table, [(table.data_start, len(table.data))])]

    def encode(
        self,
        ours: Decoded,
        theirs: Decoded,
        columns: tuple[str, ...] | None,
        edits: Sequence[Edit],
        appended: Sequence[Row],
    ) -> bytes:
        assert isinstance(ours, TextTable)
        data, nl = ours.data, ours.newline
        parts: list[bytes] = [data[: ours.data_start]]
        if columns is not None and columns != ours.columns:
            # a column added or dropped: every record is written again, header first
            parts = [data[: ours.start], self._text(ours, self.format_header(ours, columns)) + nl]
            by_ref = {e.ref: e for e in edits}
            for rec in self.records(ours, [(ours.data_start, len(data))]):
                edit = by_ref.get(rec.ref)
                row = rec.row if edit is None else edit.row
                if row is not None:
                    parts.append(self._text(ours, self.format_row(ours, columns, row)) + nl)
        else:
            at = ours.data_start
            for edit in sorted(edits, key=lambda e: e.ref):
                parts.append(data[at : edit.ref])
                if edit.row is not None:
                    parts.append(self._text(ours, self.format_row(ours, columns, edit.row)) + nl)
                at = edit.end
            parts.append(data[at:])
        body = b"".join(parts)
        if appended:
            if body and not body.endswith(b"\n"):
                body += nl
            body += b"".join(
                self._text(ours, self.format_row(ours, columns, row)) + nl for row in appended
            )
        if not ours.final_newline and body.endswith(nl) and len(body) > len(data[: ours.start]):
            body = body[: -len(nl)]
        if ours.encoding.startswith(("utf-16", "utf-32")):
            return ours.bom + body.decode("utf-8", "surrogatepass").encode(ours.encoding)
        return body

    def _text(self, table: TextTable, text: str) -> bytes:
        try:
            return text.encode(table.work_encoding)
        except UnicodeEncodeError as exc:
            raise TableParseError(
                f"{table.path}: a merged value cannot be written in ours' encoding "
                f"({table.encoding}): {exc}"
            ) from exc
