"""A manifest's chunk list read from its encoded bytes, for comparing many versions of a large
file run by run without building a `Manifest` of each (row blame walks a thousand of them).

Each chunk is one entry: `92 c4 20`, the 32-byte id, the length as a msgpack uint in its
shortest form. A run of chunks is then a slice of the bytes, and two versions hold the same
run exactly when the slice of one is found, at an entry boundary, in the other. When every
chunk but the last is at least 64 KiB long (all the store's chunker cuts, but a file's
last), each entry but the last is the same 40 bytes (the length a uint32): the entries are
found with a few slices of the bytes, not one by one.

`parse` accepts only the canonical form `decode` (model/decode.py) accepts, with the same
checks (the id, the ranges, at least two chunks), and gives the same chunks; anything else
is None, and the caller decodes it in full (which names what is wrong).
"""

from __future__ import annotations

import bisect
import struct
from itertools import accumulate

from mlgitfs.model.ids import ID_LEN, hash_bytes
from mlgitfs.model.objects import FORMAT, MAX_CHUNK, MAX_CHUNKS, Manifest

ENTRY = 40  # 92 c4 20, id, ce, uint32
_HEAD = b"\x93" + bytes([0xA0 | len(Manifest.TAG)]) + Manifest.TAG.encode() + bytes([FORMAT])
_PREFIX = b"\x92\xc4" + bytes([ID_LEN])
_LENGTH = struct.Struct(">36xI")  # an entry's length, past its array, bin and uint32 markers
_U16 = 1 << 16
_UINT = {0xCC: (1, 0x80), 0xCD: (2, 0x100), 0xCE: (4, _U16)}  # marker: width, least value


class RawManifest:
    """The chunks of one manifest as slices of its bytes (see the module note)."""

    __slots__ = ("data", "offs", "n", "starts")

    def __init__(self, data: bytes, offs: list[int], starts: list[int]) -> None:
        self.data = data
        self.offs = offs  # where each chunk's entry starts in `data`, then len(data)
        self.n = len(offs) - 1  # chunks
        self.starts = starts  # byte offset of each chunk in the file, then the file's size

    @property
    def size(self) -> int:
        return self.starts[-1]

    def chunk_id(self, i: int) -> bytes:
        at = self.offs[i] + len(_PREFIX)
        return self.data[at : at + ID_LEN]

    def length(self, i: int) -> int:
        return self.starts[i + 1] - self.starts[i]

    def entries(self, i: int, j: int) -> bytes:
        """The encoded entries of chunks [i, j)."""
        return self.data[self.offs[i] : self.offs[j]]

    def find(self, run: bytes) -> int | None:
        """The first chunk from which this manifest holds the entries `run` (another
        manifest's `entries`), or None. From an entry boundary, equal bytes are equal
        entries: each is its id and its length in one canonical form."""
        at = self.data.find(run, self.offs[0])
        while at >= 0:
            k = bisect.bisect_left(self.offs, at)
            if k < self.n and self.offs[k] == at:
                return k
            at = self.data.find(run, at + 1)
        return None


def parse(data: bytes, oid: bytes) -> RawManifest | None:
    """`data` as a RawManifest when it is a manifest in canonical form that hashes to
    `oid`; None for anything else (the caller decodes it in full)."""
    if not data.startswith(_HEAD) or len(data) < len(_HEAD) + 1:
        return None
    at = len(_HEAD)
    mark = data[at]
    if 0x90 <= mark <= 0x9F:
        n, at = mark & 0x0F, at + 1
    elif mark == 0xDC and len(data) >= at + 3:
        n, at = int.from_bytes(data[at + 1 : at + 3], "big"), at + 3
        if n < 16:
            return None  # not canonical
    elif mark == 0xDD and len(data) >= at + 5:
        n, at = int.from_bytes(data[at + 1 : at + 5], "big"), at + 5
        if n < _U16:
            return None
    else:
        return None
    if not 2 <= n <= MAX_CHUNKS:
        return None
    got = _strided(data, at, n) or _entries(data, at, n)
    if got is None or hash_bytes(data) != oid:
        return None
    offs, lengths = got
    return RawManifest(data, offs, [0, *accumulate(lengths)])


def _strided(data: bytes, body: int, n: int) -> tuple[list[int], list[int]] | None:
    """Offsets and lengths when every entry but the last is 40 bytes (the usual case: read
    with a few slices, not entry by entry)."""
    k = n - 1
    last = body + ENTRY * k
    if (
        len(data) <= last + len(_PREFIX) + ID_LEN
        or data[body : last + 3 : ENTRY] != b"\x92" * n
        or data[body + 1 : last + 3 : ENTRY] != b"\xc4" * n
        or data[body + 2 : last + 3 : ENTRY] != bytes([ID_LEN]) * n
        or data[body + 35 : last : ENTRY] != b"\xce" * k
    ):
        return None
    lengths = [v for (v,) in _LENGTH.iter_unpack(memoryview(data)[body:last])]
    if min(lengths) < _U16 or max(lengths) > MAX_CHUNK:
        return None
    tail = _uint(data, last + len(_PREFIX) + ID_LEN)
    if tail is None or tail[1] != len(data):
        return None
    lengths.append(tail[0])
    return [*range(body, last + 1, ENTRY), len(data)], lengths


def _entries(data: bytes, at: int, n: int) -> tuple[list[int], list[int]] | None:
    """Offsets and lengths read entry by entry (chunks shorter than 64 KiB)."""
    offs, lengths = [], []
    for _ in range(n):
        if data[at : at + len(_PREFIX)] != _PREFIX:
            return None
        offs.append(at)
        got = _uint(data, at + len(_PREFIX) + ID_LEN)
        if got is None:
            return None
        lengths.append(got[0])
        at = got[1]
    if at != len(data):
        return None
    offs.append(at)
    return offs, lengths


def _uint(data: bytes, at: int) -> tuple[int, int] | None:
    """The length at `at`, a canonical msgpack uint in [1, MAX_CHUNK], and where it ends."""
    if at >= len(data):
        return None
    mark = data[at]
    if 1 <= mark <= 0x7F:
        return mark, at + 1
    width, least = _UINT.get(mark, (0, 0))
    if not width or at + 1 + width > len(data):
        return None
    v = int.from_bytes(data[at + 1 : at + 1 + width], "big")
    return (v, at + 1 + width) if least <= v <= MAX_CHUNK else None
