"""Where a few tracked rows of a text table's newer version are in the older one, decided
from the two versions' encoded manifests alone (model/manifestraw.py): row blame's step for
the many versions whose changes miss the rows it follows, with no manifest decoded and no
chunk read.

A row [r0, r1) of the newer version, with the newline before it, lies in its chunks i..j.
When the older version holds the same entries (ids and lengths) from a chunk k on, and the
quote parity before chunk i of the newer version is the one before chunk k of the older,
the older version holds the same bytes parsed from the same state there: the same record,
so the same row under that key (repo/chunkrows.py gives the reasoning). A row that starts
the file, or ends it, must start (or end) the older one too.

The parities before the run differ only by the chunks in which the two prefixes differ:
those an odd number of times in both together, their common head and tail left out. A
table that parses has an even count of quotes in all, so the parts after the runs tell as
well: the side whose chunks have fewer parities not known is used (recorded when the chunks
were stored, meta/chunkquotes.py; counted from the chunk when not).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Mapping

from mlgitfs.model.ids import ChunkId
from mlgitfs.model.manifestraw import RawManifest
from mlgitfs.model.objects import ChunkRef
from mlgitfs.repo.chunklayout import ChunkCache
from mlgitfs.repo.chunkrows import Key, Span


def place(
    new: RawManifest,
    old: RawManifest,
    track: Mapping[Key, Span],
    cache: ChunkCache,
    quoted: bool,
) -> dict[Key, Span] | None:
    """Where each tracked row of `new` is in `old` when every one lies in a run both hold,
    parsed from the same state (unchanged, then); None when one does not (the caller
    compares the versions' bytes)."""
    out: dict[Key, Span] = {}
    for k, (r0, r1) in track.items():
        i = bisect.bisect_right(new.starts, max(r0 - 1, 0)) - 1
        j = bisect.bisect_right(new.starts, max(r1 - 1, 0)) - 1
        at = old.find(new.entries(i, j + 1))
        if at is None:
            return None
        end = at + j - i
        if (r0 == 0 and at != 0) or (r1 == new.size and end != old.n - 1):
            return None  # no newline before (or after) it here: the records may differ
        if quoted and _parity_differs(new, i, j, old, at, end, cache):
            return None
        shift = old.starts[at] - new.starts[i]
        out[k] = (r0 + shift, r1 + shift)
    return out


def _parity_differs(
    new: RawManifest, i: int, j: int, old: RawManifest, at: int, end: int, cache: ChunkCache
) -> bool:
    """Whether the quote parity before chunk i of `new` differs from the one before chunk
    `at` of `old` (chunks i..j and at..end being the same run)."""
    before = _odd_chunks(new, 0, i, old, 0, at)
    if not before:
        return False
    cache.preload(before)
    known = cache.odd
    unknown = sum(r.id not in known for r in before)
    if unknown:  # the side after the run, if fewer of its chunks need reading
        after = _odd_chunks(new, j + 1, new.n, old, end + 1, old.n)
        cache.preload(after)
        if sum(r.id not in known for r in after) < unknown:
            before = after
    odd = False
    for r in before:
        odd ^= cache.odd_quotes(r)
    return odd


def _odd_chunks(
    a: RawManifest, a0: int, a1: int, b: RawManifest, b0: int, b1: int
) -> list[ChunkRef]:
    """The chunks found an odd number of times in a's chunks [a0, a1) and b's [b0, b1)
    together: the quote parities of the two ranges differ by theirs. Equal heads and tails
    of the ranges are compared as bytes and left out."""
    most = min(a1 - a0, b1 - b0)
    lo, hi = 0, most  # the longest equal head: the largest h with equal spans
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a.entries(a0, a0 + mid) == b.entries(b0, b0 + mid):
            lo = mid
        else:
            hi = mid - 1
    head = lo
    lo, hi = 0, most - head
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a.entries(a1 - mid, a1) == b.entries(b1 - mid, b1):
            lo = mid
        else:
            hi = mid - 1
    tail = lo
    count: Counter[tuple[bytes, int]] = Counter()
    for m, lo_, hi_ in ((a, a0 + head, a1 - tail), (b, b0 + head, b1 - tail)):
        for x in range(lo_, hi_):
            count[(m.chunk_id(x), m.length(x))] += 1
    return [ChunkRef(ChunkId(cid), n) for (cid, n), c in count.items() if c % 2]
