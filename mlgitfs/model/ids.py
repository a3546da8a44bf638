"""Ids: BLAKE3-256 of canonical bytes, their hex form, and the NewTypes that cross modules.

The only importer of blake3.
"""

from __future__ import annotations

from typing import NewType

import blake3

from mlgitfs.errors import CorruptObject

ObjectId = NewType("ObjectId", bytes)  # 32 raw bytes: a manifest, tree, tree index or commit
ChunkId = NewType("ChunkId", bytes)  # 32 raw bytes: BLAKE3 of a chunk's raw content
InodeNo = NewType("InodeNo", int)
RefName = NewType("RefName", str)  # "heads/main" or "tags/v1"

ID_LEN = 32
HEX_LEN = 64
SHORT_HEX = 12


def hash_bytes(data: bytes | bytearray | memoryview) -> bytes:
    """BLAKE3-256 digest on the calling thread: callers hash from pools that already use every
    core, where blake3's own threads only add contention (futex and sched_yield storms)."""
    return bytes(blake3.blake3(data).digest())


def to_hex(raw: bytes) -> str:
    return raw.hex()


def short_hex(raw: bytes) -> str:
    return raw.hex()[:SHORT_HEX]


def is_hex_prefix(text: str) -> bool:
    return 0 < len(text) <= HEX_LEN and all(c in "0123456789abcdef" for c in text)


def from_hex(text: str) -> bytes:
    """A full hex id to raw bytes; anything else is refused before it becomes a key or a path."""
    if len(text) != HEX_LEN or not is_hex_prefix(text):
        raise CorruptObject(text[:80], "not a 64-character lowercase hex id")
    return bytes.fromhex(text)


def check_raw_id(raw: bytes) -> bytes:
    if not isinstance(raw, bytes) or len(raw) != ID_LEN:
        raise CorruptObject(repr(raw)[:80], "an id must be 32 bytes")
    return raw


class Hasher:
    """BLAKE3-256 over bytes given piece by piece (a bundle's checksum)."""

    def __init__(self) -> None:
        self._h = blake3.blake3()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return bytes(self._h.digest())
