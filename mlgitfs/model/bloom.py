"""Changed-path Bloom filters: which paths a commit may have changed, in a few bytes.

As git's commit-graph keeps them (gitformat-commit-graph(5), BIDX/BDAT): the keys are every
changed path and each of its parent directories, 10 bits per key and 7 probes, so about one
path in 120 that a commit did not change tests as "maybe" (a false positive, which the
caller settles with a real diff); a path that was changed always tests as "maybe". A
commit that changed more than MAX_KEYS keys gets no bits at all but the marker "too many"
(every path maybe), like git's 512-path limit; ours is higher because one ML commit often
relabels thousands of files, and a filter of at most 5 KiB is still one small LMDB value.

A path's two base hashes come from one BLAKE2b of its bytes; probe i is bit
(h0 + i * h1) mod (8 * length), counted from the least significant bit of the first byte.
The hash is fixed by the format: filters are stored, so changing it needs a new version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

BITS_PER_KEY = 10
PROBES = 7
MAX_KEYS = 4096
_MASK64 = (1 << 64) - 1


def path_hash(path: bytes) -> tuple[int, int]:
    """The two base hashes of a path ("a/b/c", no leading or trailing slash)."""
    d = hashlib.blake2b(path, digest_size=16).digest()
    return int.from_bytes(d[:8], "little"), int.from_bytes(d[8:], "little") | 1


def add_with_parents(keys: set[bytes], path: bytes) -> None:
    """Add `path` and every directory above it (not the root) to `keys`, stopping at the
    first already there (its parents are too): linear in the depth of a deep tree."""
    while path and path not in keys:
        keys.add(path)
        cut = path.rfind(b"/")
        path = path[:cut] if cut > 0 else b""


def build(keys: Iterable[bytes]) -> bytes:
    """A filter holding `keys` (already closed under parents, see `add_with_parents`); an empty
    set gives one zero byte (a commit that changed nothing)."""
    ks = list(keys)
    nbytes = max(1, (len(ks) * BITS_PER_KEY + 7) // 8)
    nbits = nbytes * 8
    bits = bytearray(nbytes)
    for k in ks:
        h0, h1 = path_hash(k)
        for i in range(PROBES):
            b = ((h0 + i * h1) & _MASK64) % nbits
            bits[b >> 3] |= 1 << (b & 7)
    return bytes(bits)


def may_contain(bits: bytes, h: tuple[int, int]) -> bool:
    """False only when the key hashed to `h` is surely not in the filter."""
    nbits = len(bits) * 8
    if not nbits:
        return True  # not a filter we wrote: say nothing
    h0, h1 = h
    for i in range(PROBES):
        b = ((h0 + i * h1) & _MASK64) % nbits
        if not bits[b >> 3] >> (b & 7) & 1:
            return False
    return True
