"""Which rows of a text table (CSV, TSV, JSON Lines) differ between two versions, found from
the versions' chunk lists, so that the cost follows the change, not the file.

Two versions of a large table share most of their content-defined chunks. The chunk lists
(from the manifests) are matched in order by id; the bytes of a matched run of chunks are
the same on both sides, and so are the records that lie wholly inside it, provided both
sides parse it from the same state. For CSV that state is the parity of the quote
characters before it (a newline starts a record only outside a quoted field, RFC 4180):
each chunk's quote parity is counted once when the chunk is read (repo/chunklayout.py: a
version as its chunks), and a run whose start has a different parity on the two sides counts
as changed. Each unmatched stretch is widened on
both sides to the nearest record start inside the matched runs around it (a newline at even
parity: the resync point, the same on both sides because the bytes and the parity are), so
a quoted field holding newlines or commas is never cut. Only those spans are read; inside
them the records that differ are found by the row merge's memcmp alignment
(merge/align.py) and only they are parsed.

A version whose header differs, that is not UTF-8 (a UTF-16 or UTF-32 BOM), or whose
changed records do not parse, or hold a key twice, is not handled here (None): the caller
then decodes both versions whole, which gives the full checks and messages.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mlgitfs.errors import TableError
from mlgitfs.merge.align import hunks, record_end
from mlgitfs.merge.table import ABSENT, Cell, Row
from mlgitfs.merge.text import TextCodec, TextTable
from mlgitfs.model.objects import ChunkRef
from mlgitfs.repo.chunklayout import ChunkCache, Layout

Key = tuple[Cell, ...]
Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Block:
    """Chunks [a, a + n) of the older version equal chunks [b, b + n) of the newer one."""

    a: int
    b: int
    n: int


def match_chunks(old: Sequence[ChunkRef], new: Sequence[ChunkRef]) -> list[Block]:
    """Runs of equal chunks, in order on both sides (greedy: after a mismatch, the next new
    chunk the old list still has further on)."""
    a = [r.id for r in old]
    b = [r.id for r in new]
    where: dict[bytes, list[int]] = {}  # made on the first mismatch
    out: list[Block] = []
    i = j = 0
    na, nb = len(a), len(b)
    while i < na and j < nb:
        if a[i] == b[j]:
            k = 1
            while i + k < na and j + k < nb and a[i + k] == b[j + k]:
                k += 1
            out.append(Block(i, j, k))
            i, j = i + k, j + k
            continue
        if not where:
            for ii, cid in enumerate(a):
                where.setdefault(cid, []).append(ii)
        found = None  # the next new chunk that old still holds at or after i
        for jj in range(j, nb):
            for ii in where.get(b[jj], ()):
                if ii >= i:
                    found = (ii, jj)
                    break
            if found:
                break
        if found is None:
            break
        i, j = found
    return out


@dataclass(frozen=True, slots=True)
class RowChanges:
    """Rows by key that differ: key → (newer row, older row), None where a side has none."""

    rows: dict[Key, tuple[Row | None, Row | None]]
    read: int  # bytes of the two versions read to find them
    # where the tracked rows are in the older version (those it has), when asked
    old_at: dict[Key, Span] | None = None


def kept_records(old: Layout, new: Layout, bl: Block, quoted: bool) -> tuple[Span, Span] | None:
    """The records wholly inside a matched block, the same on both sides: (old, new) spans
    from the block's first resync point (a record start its own bytes and parity decide,
    so the same on both sides) to its last; None when it holds no whole record or its start
    is parsed from another state on each side."""
    odd = quoted and old.parity_at_chunk(bl.a)
    if quoted and odd != new.parity_at_chunk(bl.b):
        return None
    a0, a1 = old.starts[bl.a], old.starts[bl.a + bl.n]
    b0, b1 = new.starts[bl.b], new.starts[bl.b + bl.n]
    if a0 == 0 and b0 == 0:
        s: int | None = 0
    else:
        p = old.record_start_after(a0, a1, odd, quoted)
        s = None if p is None else p - a0
    if s is None:
        return None
    if a1 == old.size and b1 == new.size:
        e: int | None = a1 - a0
    else:
        end_odd = quoted and old.parity_at_chunk(bl.a + bl.n)
        p = old.record_start_before(a0, a1, end_odd, quoted)
        e = None if p is None else p - a0
    if e is None or e <= s:
        return None
    return (a0 + s, a0 + e), (b0 + s, b0 + e)


def resync(old: Layout, new: Layout, bl: Block, quoted: bool, last: bool) -> Span | None:
    """The first (with `last`, the last) record start inside a matched block as (old, new)
    offsets: found from the block's own bytes and parity, so the same on both sides; None
    when it has none or its start is parsed from another state on each side. Only the chunk
    at that end of the block is read (`kept_records` reads both ends)."""
    odd = quoted and old.parity_at_chunk(bl.a)
    if quoted and odd != new.parity_at_chunk(bl.b):
        return None
    a0, a1 = old.starts[bl.a], old.starts[bl.a + bl.n]
    b0, b1 = new.starts[bl.b], new.starts[bl.b + bl.n]
    if last:
        if a1 == old.size and b1 == new.size:
            return a1, b1
        end_odd = quoted and old.parity_at_chunk(bl.a + bl.n)
        p = old.record_start_before(a0, a1, end_odd, quoted)
    else:
        if a0 == 0 and b0 == 0:
            return 0, 0
        p = old.record_start_after(a0, a1, odd, quoted)
    return None if p is None else (p, p - a0 + b0)


def changed_spans(
    old: Layout, new: Layout, blocks: list[Block], quoted: bool
) -> tuple[list[tuple[Span, Span]], list[tuple[Span, Span]]]:
    """Pairs of spans (old, new), each starting and ending at a record start (or an end of
    the file), outside of which both versions hold the same records in the same order; and
    those outside parts, as pairs of spans too."""
    kept = [k for k in (kept_records(old, new, bl, quoted) for bl in blocks) if k is not None]
    out: list[tuple[Span, Span]] = []
    at_a = at_b = 0
    for ka, kb in [*kept, ((old.size, old.size), (new.size, new.size))]:
        if ka[0] > at_a or kb[0] > at_b:
            out.append(((at_a, ka[0]), (at_b, kb[0])))
        at_a, at_b = ka[1], kb[1]
    return out, kept


_WIDE = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")  # UTF-16/32 BOMs: transcoded whole


@dataclass(frozen=True, slots=True)
class _Header:
    raw: bytes  # the bytes before the first data record (a BOM, the header record)
    columns: tuple[str, ...] | None
    dialect: object


class TableVersions:
    """Changed rows between versions of one text table, for one blame."""

    def __init__(
        self, cache: ChunkCache, codec: TextCodec, path: str, key: tuple[str, ...], encoding: str
    ) -> None:
        self.cache = cache
        self.codec = codec
        self.path = path
        self.key = key
        self.encoding = encoding  # the blamed version's working encoding
        self.quoted = codec.name != "jsonl"
        self.headers: dict[bytes, _Header | None] = {}
        self.by_first: dict[bytes, object] = {}  # first chunk id → its file's header

    def layout(self, refs: Sequence[ChunkRef]) -> Layout:
        return Layout(refs, self.cache)

    def changes(
        self, old: Layout, new: Layout, track: Mapping[Key, Span] | None = None
    ) -> RowChanges | None:
        """The rows by key that differ from `old` to `new`; None when this cannot tell
        (the caller decodes both versions whole). With `track` (where some rows are in
        `new`), also where those rows are in `old`; when each lies inside a matched run of
        chunks, that is all that is looked at: nothing of theirs changed."""
        ha, hb = self._header(old), self._header(new)
        if ha is None or hb is None or ha.raw != hb.raw:
            return None
        blocks = match_chunks(old.refs, new.refs)
        start = len(ha.raw)
        if track is not None:
            moved, rest = self._follow(old, new, blocks, track)
            if not rest:
                return RowChanges({}, 0, moved)
            # the rows whose chunks changed: first the stretch around each alone
            spans = {self._around(old, new, blocks, r0, r1) for r0, r1 in rest.values()}
            got = self._compare(old, new, ha, hb, start, sorted(spans), rest)
            if got is not None and got.old_at is not None and set(got.old_at) == set(rest):
                return RowChanges(got.rows, got.read, {**moved, **got.old_at})
            # one is not in the stretch around it (moved far, or new here): all of them
        spans_all, kept = changed_spans(old, new, blocks, self.quoted)
        got = self._compare(old, new, ha, hb, start, spans_all, track)
        if got is None or track is None:
            return got
        mapped: dict[Key, Span] = {}
        for ka, kb in kept:
            for k, (r0, r1) in track.items():
                if kb[0] <= r0 and r1 <= kb[1]:
                    mapped[k] = (r0 - kb[0] + ka[0], r1 - kb[0] + ka[0])
        return RowChanges(got.rows, got.read, {**mapped, **(got.old_at or {})})

    def _compare(
        self,
        old: Layout,
        new: Layout,
        ha: _Header,
        hb: _Header,
        start: int,
        spans: Sequence[tuple[Span, Span]],
        track: Mapping[Key, Span] | None,
    ) -> RowChanges | None:
        """The rows that differ within the span pairs; with `track`, where those of the
        tracked rows that lie in the spans are in `old`."""
        plus: dict[Key, Row] = {}
        minus: dict[Key, Row] = {}
        minus_at: dict[Key, Span] = {}
        mapped: dict[Key, Span] = {}
        read = 0
        for (alo, ahi), (blo, bhi) in spans:
            alo, ahi, blo, bhi = max(alo, start), max(ahi, start), max(blo, start), max(bhi, start)
            a = old.read(alo, ahi)
            b = new.read(blo, bhi)
            read += len(a) + len(b)
            found = hunks(a, 0, b, 0, self.quoted)
            if not (
                self._rows(ha, a, [(h[0], h[1]) for h in found], minus, minus_at, alo)
                and self._rows(hb, b, [(h[2], h[3]) for h in found], plus, None, 0)
            ):
                return None
            for k, (r0, r1) in (track or {}).items():
                if blo <= r0 < bhi:
                    # between hunks the two sides hold the same records: shift by the last
                    # hunk's difference in length
                    shift, inside = alo - blo, False
                    for h in found:
                        if h[2] <= r0 - blo < h[3]:
                            inside = True
                        if h[3] <= r0 - blo:
                            shift = alo + h[1] - (blo + h[3])
                    if not inside:
                        mapped[k] = (r0 + shift, r1 + shift)
        rows = {
            k: (plus.get(k), minus.get(k))
            for k in plus.keys() | minus.keys()
            if plus.get(k) != minus.get(k)
        }
        old_at = None
        if track is not None:
            both = {**mapped, **minus_at}
            old_at = {k: both[k] for k in track if k in both}
        return RowChanges(rows, read, old_at)

    def _follow(
        self, old: Layout, new: Layout, blocks: list[Block], track: Mapping[Key, Span]
    ) -> tuple[dict[Key, Span], dict[Key, Span]]:
        """Where the tracked rows are in `old`, for those that lie (with the newline before
        them) inside a run of chunks both versions hold, parsed from the same state on both
        sides: the same bytes are the same record there; and the others. Only chunk ids
        and recorded quote parities are looked at, no bytes."""
        starts = [new.starts[bl.b] for bl in blocks]
        out: dict[Key, Span] = {}
        rest: dict[Key, Span] = {}
        for k, (r0, r1) in track.items():
            i = bisect.bisect_right(starts, r0) - 1
            bl = blocks[i] if i >= 0 else None
            if bl is None:
                rest[k] = (r0, r1)
                continue
            a0, b0 = old.starts[bl.a], new.starts[bl.b]
            if (
                r1 > new.starts[bl.b + bl.n]
                or (r0 == b0 and not a0 == b0 == 0)
                or (self.quoted and old.parity_at_chunk(bl.a) != new.parity_at_chunk(bl.b))
            ):
                rest[k] = (r0, r1)
                continue
            out[k] = (r0 - b0 + a0, r1 - b0 + a0)
        return out, rest

    def _around(
        self, old: Layout, new: Layout, blocks: list[Block], r0: int, r1: int
    ) -> tuple[Span, Span]:
        """The span pair from the last record start in the nearest matched block before
        [r0, r1) of `new` to the first one in the nearest block after it (any record start
        of a matched block is one on both sides)."""
        starts = [new.starts[bl.b] for bl in blocks]
        i = bisect.bisect_right(starts, r0) - 1
        lo: Span | None = None
        for j in range(i, -1, -1):
            p = resync(old, new, blocks[j], self.quoted, last=True)
            if p is not None and p[1] <= r0:
                lo = p
                break
        hi: Span | None = None
        for j in range(max(i, 0), len(blocks)):
            p = resync(old, new, blocks[j], self.quoted, last=False)
            if p is not None and p[1] >= r1:
                hi = p
                break
        a0, b0 = lo or (0, 0)
        a1, b1 = hi or (old.size, new.size)
        return (a0, a1), (b0, b1)

    def _rows(
        self,
        head: _Header,
        data: bytes,
        spans: list[Span],
        into: dict[Key, Row],
        at: dict[Key, Span] | None,
        base: int,
    ) -> bool:
        """Parse the records of `spans` into `into` by key (and where each is, `data` being
        the file's bytes from `base`, into `at`); False when they do not parse or hold a key
        twice."""
        table = TextTable(
            path=self.path,
            side="blamed",
            data=data,
            work_encoding=self.encoding,
            encoding=self.encoding,
            bom=b"",
            start=0,
            data_start=0,
            columns=head.columns,
            newline=b"\n",
            final_newline=True,
            quoted=self.quoted,
            dialect=head.dialect,
        )
        try:
            records = self.codec.records(table, spans)
        except (TableError, UnicodeDecodeError):
            return False
        for rec in records:
            k = tuple(rec.row.get(c, ABSENT) for c in self.key)
            if k in into:
                return False
            into[k] = rec.row
            if at is not None:
                at[k] = (base + rec.ref, base + rec.end)
        return True

    def _header(self, layout: Layout) -> _Header | None:
        first_id = bytes(layout.refs[0].id) if layout.refs else b""
        known = self.by_first.get(first_id, ABSENT)
        if known is not ABSENT:
            assert known is None or isinstance(known, _Header)
            return known
        first = layout.cache.get(layout.refs[0]) if layout.refs else b""
        if first.startswith(_WIDE):
            return None
        hi = min(max(len(first), 1), 1 << 16)
        while True:
            data = layout.read(0, hi)
            start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
            end = record_end(data, start, self.quoted)
            if end < len(data) or hi >= layout.size:
                break
            hi *= 2
        first_record = data[:end]
        got = self.headers.get(first_record, ABSENT)
        if got is ABSENT:
            try:
                # the header record alone: the dialect's quoting sample is not needed to parse
                data_start, columns, dialect = self.codec.read_header(
                    first_record, start, self.encoding, "blamed", self.path
                )
                got = _Header(data[:data_start], columns, dialect)
            except (TableError, UnicodeDecodeError):
                got = None
            self.headers[first_record] = got
        assert got is None or isinstance(got, _Header)
        if end <= len(first) and data[end - 1 : end] == b"\n":
            # the header ends inside the first chunk: that chunk's id decides it
            self.by_first[first_id] = got
        return got
