"""The quote parity of chunks, kept for row blame (repo/chunklayout.py): whether a chunk holds
an odd number of `"` bytes. A CSV record starts only after a newline at an even count, so
comparing two versions of a table by their chunks needs the parity of the chunks that
changed; kept here, a later blame of the same history reads none of them again.

Derived data keyed by content: a chunk's parity never changes, so a record is never stale;
a chunk gc removes may leave its record (a few bytes) until the database is cleared.
Dropping records only costs reading those chunks again.
"""

from __future__ import annotations

from collections.abc import Iterable

from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import CHUNK_QUOTES


def get_many(txn: ReadTxn, ids: Iterable[bytes]) -> dict[bytes, bool]:
    """The parities known among `ids` (True: odd)."""
    out = {}
    for cid in ids:
        raw = txn.get(CHUNK_QUOTES, cid)
        if raw is not None and raw in (b"\x00", b"\x01"):  # anything else: unknown
            out[cid] = raw == b"\x01"
    return out


def put_many(txn: WriteTxn, items: Iterable[tuple[bytes, bool]]) -> None:
    for cid, odd in items:
        txn.put(CHUNK_QUOTES, cid, b"\x01" if odd else b"\x00")


def recorded(txn: ReadTxn) -> dict[bytes, bool]:
    """Every record (fsck, tests)."""
    return {k: v == b"\x01" for k, v in txn.scan(CHUNK_QUOTES)}


def clear(txn: WriteTxn) -> None:
    txn.clear(CHUNK_QUOTES)
