"""The quote parity of chunks, kept for row blame (repo/chunklayout.py): whether a chunk holds
an odd number of `"` bytes. A CSV record starts only after a newline at an even count, so
comparing two versions of a table by their chunks needs the parity of the chunks that
changed; kept here, a later blame of the same history reads none of them again.

Recorded when a CSV or TSV file's new chunks are stored (import, commit, a mount's commit, a
path write, a row merge, a prefetch: the bytes are in hand, and the records go in the
transaction that records the chunks, store/cache.py), and for other chunks when a blame
first reads them (fetched on demand, stored before this, or of a file named otherwise).

Derived data keyed by content: a chunk's parity never changes, so a record is never stale;
a chunk gc removes may leave its record (a few bytes) until the database is cleared.
Dropping records only costs reading those chunks again.
"""

from __future__ import annotations

from collections.abc import Iterable
from os import PathLike

from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import CHUNK_QUOTES

QUOTED = (".csv", ".tsv")  # the tables whose records a quote decides (merge/rows.codec_for)


def for_path(name: str | bytes | PathLike[str]) -> bool:
    """Whether a file by this name is a CSV or TSV table, whose chunks' parities are
    recorded as they are stored."""
    text = name.decode("utf-8", "surrogateescape") if isinstance(name, bytes) else str(name)
    return text.lower().endswith(QUOTED)


def odd(data: bytes | memoryview) -> bool:
    """The parity of `data`: whether it holds an odd number of `"` bytes (a view is copied
    first, at memcpy speed: memoryview has no count)."""
    return (data if isinstance(data, bytes) else bytes(data)).count(b'"') % 2 == 1


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
