"""Chunk locations in the local cache and pins (chunks on no remote yet), by chunk id.

A location's bytes are the chunk cache's own format (store/cache.py's `Location`); this
module only keeps them. A pinned chunk is never evicted; pushing it unpins it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import CHUNKS, PINS


def get_location(txn: ReadTxn, cid: bytes) -> bytes | None:
    return txn.get(CHUNKS, cid)


def has_chunk(txn: ReadTxn, cid: bytes) -> bool:
    return txn.has(CHUNKS, cid)


def put_location_new(txn: WriteTxn, cid: bytes, location: bytes) -> bool:
    """Record where the chunk is unless it is recorded already; True if it was new."""
    return txn.put_new(CHUNKS, cid, location)


def delete_location(txn: WriteTxn, cid: bytes) -> bool:
    return txn.delete(CHUNKS, cid)


def pin(txn: WriteTxn, cid: bytes) -> None:
    txn.put(PINS, cid, b"")


def unpin(txn: WriteTxn, cids: Iterable[bytes]) -> int:
    return sum(1 for cid in cids if txn.delete(PINS, cid))


def is_pinned(txn: ReadTxn, cid: bytes) -> bool:
    return txn.has(PINS, cid)


def pinned(txn: ReadTxn) -> list[bytes]:
    """Every pinned chunk (gc roots)."""
    return [k for k, _ in txn.scan(PINS)]


def count(txn: ReadTxn) -> int:
    """How many chunks the local cache holds."""
    return txn.count(CHUNKS)


def set_location(txn: WriteTxn, cid: bytes, location: bytes) -> None:
    """Move a recorded chunk (gc's rewrite of a segment)."""
    txn.put(CHUNKS, cid, location)


def locations(txn: ReadTxn) -> Iterator[tuple[bytes, bytes]]:
    """(chunk id, location) of every chunk in the local cache, in id order."""
    return txn.scan(CHUNKS)
