"""One version of a file as its chunks, for row blame (repo/chunkrows.py): where each chunk
starts, the bytes of any range read on demand, each chunk's quote parity, and the record
starts (a newline at even quote parity) near a position, through a cache of chunk bytes that
one blame shares between the versions it compares.

A chunk's quote parity (whether it holds an odd number of `"`) is kept in the store
(meta/chunkquotes.py) once counted, so that the next blame of the table reads no bytes to
know where a run of chunks starts parsing from.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from itertools import accumulate

from mlgitfs.errors import MlgitError
from mlgitfs.meta import chunkquotes
from mlgitfs.model.objects import ChunkRef
from mlgitfs.repo.trees import chunk_bytes
from mlgitfs.store.facade import Store

log = logging.getLogger(__name__)

CACHE_BYTES = 256 << 20  # chunk bytes kept between versions (the next older version's reuse)


class ChunkCache:
    """Chunk bytes by id (least recently used dropped past `budget`), and each chunk's quote
    parity: from the store's `chunk_quotes` records, else counted when the chunk is read
    (and recorded by `save`)."""

    def __init__(self, store: Store, budget: int = CACHE_BYTES) -> None:
        self.store = store
        self.budget = budget
        self.held: OrderedDict[bytes, bytes] = OrderedDict()
        self.size = 0
        self.odd: dict[bytes, bool] = {}
        self.counted: dict[bytes, bool] = {}  # parities counted here, not yet recorded
        self.reads = 0  # chunks read from the store (bench, tests)

    def preload(self, refs: Sequence[ChunkRef]) -> None:
        """The recorded parities of those of `refs` not known yet (one read transaction)."""
        want = {r.id for r in refs if r.id not in self.odd}
        if want:
            with self.store.env.read() as txn:
                self.odd.update(chunkquotes.get_many(txn, want))

    def save(self) -> None:
        """Record the parities counted here. Best effort: a blame that cannot write (a full
        map, a read-only store) only leaves the next one to count them again."""
        if not self.counted:
            return
        try:
            with self.store.env.write() as txn:
                chunkquotes.put_many(txn, self.counted.items())
        except MlgitError as exc:
            log.info("quote parities of %d chunks not kept: %s", len(self.counted), exc)
        self.counted = {}

    def get(self, ref: ChunkRef) -> bytes:
        key = bytes(ref.id)
        data = self.held.get(key)
        if data is not None:
            self.held.move_to_end(key)
            return data
        data = chunk_bytes(self.store, ref)
        self.reads += 1
        if key not in self.odd:
            self.odd[key] = self.counted[key] = data.count(b'"') % 2 == 1
        self.held[key] = data
        self.size += len(data)
        while self.size > self.budget and len(self.held) > 1:
            _, old = self.held.popitem(last=False)
            self.size -= len(old)
        return data

    def odd_quotes(self, ref: ChunkRef) -> bool:
        got = self.odd.get(bytes(ref.id))
        if got is None:
            self.get(ref)
            got = self.odd[bytes(ref.id)]
        return got


class Layout:
    """One version of a file as its chunks: offsets, and bytes of any range on demand."""

    def __init__(self, refs: Sequence[ChunkRef], cache: ChunkCache) -> None:
        self.refs = tuple(refs)
        self.cache = cache
        cache.preload(self.refs)
        self.starts = [0, *accumulate(r.length for r in self.refs)]
        self.size = self.starts[-1]
        self._parity: dict[int, bool] = {}
        self._prefix: list[bool] | None = None  # every chunk's, once all are known

    def read(self, lo: int, hi: int) -> bytes:
        """Bytes [lo, hi)."""
        if lo >= hi:
            return b""
        i = self._index(lo)
        parts = []
        while i < len(self.refs) and self.starts[i] < hi:
            a = self.starts[i]
            data = self.cache.get(self.refs[i])
            parts.append(data[max(lo - a, 0) : hi - a])
            i += 1
        return b"".join(parts)

    def parity_at_chunk(self, i: int) -> bool:
        """Whether an odd number of quotes come before chunk i. A table that parses has an
        even number in all (each record closes its quotes), so the chunks after i tell as
        well as those before: whichever side has fewer chunks not read yet is read."""
        got = self._parity.get(i)
        if got is None and self._prefix is None:
            odd = self.cache.odd
            try:
                prefix = [False]
                for r in self.refs:
                    prefix.append(prefix[-1] ^ odd[r.id])
                self._prefix = prefix
            except KeyError:  # some not known yet
                pass
        if self._prefix is not None:
            return self._prefix[i]
        if got is None:
            odd = self.cache.odd
            before, after = self.refs[:i], self.refs[i:]
            unknown_before = sum(1 for r in before if bytes(r.id) not in odd)
            unknown_after = sum(1 for r in after if bytes(r.id) not in odd)
            side = before if unknown_before <= unknown_after else after
            got = False
            for r in side:
                got ^= self.cache.odd_quotes(r)
            self._parity[i] = got
        return got

    def _index(self, pos: int) -> int:
        """The chunk holding byte `pos`."""
        lo, hi = 0, len(self.refs)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.starts[mid] <= pos:
                lo = mid
            else:
                hi = mid
        return lo

    def record_start_after(self, lo: int, hi: int, odd: bool, quoted: bool) -> int | None:
        """The first record start p with lo < p <= hi (a newline at even quote parity in
        [lo, hi), `odd` the parity at lo), or None."""
        at = lo
        step = 1 << 16
        while at < hi:
            end = min(at + step, hi)
            data = self.read(at, end)
            i = data.find(b"\n")
            while i >= 0:
                if not quoted or not (odd ^ (data.count(b'"', 0, i) % 2 == 1)):
                    return at + i + 1
                i = data.find(b"\n", i + 1)
            if quoted:
                odd ^= data.count(b'"') % 2 == 1
            at = end
            step *= 2
        return None

    def record_start_before(self, lo: int, hi: int, odd: bool, quoted: bool) -> int | None:
        """The last record start p with lo < p <= hi (a newline at even quote parity in
        [lo, hi), `odd` the parity at hi), or None."""
        at = hi
        step = 1 << 16
        while at > lo:
            start = max(at - step, lo)
            data = self.read(start, at)
            i = data.rfind(b"\n")
            while i >= 0:
                if not quoted or not (odd ^ (data.count(b'"', i) % 2 == 1)):
                    return start + i + 1
                i = data.rfind(b"\n", 0, i)
            if quoted:
                odd ^= data.count(b'"') % 2 == 1
            at = start
            step *= 2
        return None
