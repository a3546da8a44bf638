"""The reflog: every move of every ref, with old id, new id, who, when and why.

An entry is keyed `repo NUL refname NUL time_ns` (8 bytes big-endian, made unique within
the ref), so a ref's entries scan oldest first and a deleted ref's entries stay. An entry
is a gc root until it is older than the store's reflog expiry (`reflog_expiry_s`, default
30 days): that is how a deleted branch can be recreated from its reflog (`REPO@NAME@{1}`)
until then. Entries written before `who` was recorded decode with who "".
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from mlgitfs.errors import CorruptObject
from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import CONFIG, REFLOG
from mlgitfs.model import codec
from mlgitfs.model.ids import ObjectId

DEFAULT_EXPIRY_S = 30 * 86400
EXPIRY_KEY = "reflog.expiry_s"  # in the config database, a msgpack int


@dataclass(frozen=True, slots=True)
class ReflogEntry:
    repo: str
    ref: str  # "heads/main", "tags/v1", "remotes/origin/heads/main"
    time_ns: int
    old: ObjectId | None
    new: ObjectId | None
    who: str
    why: str


def _prefix(repo: str, ref: str) -> bytes:
    return repo.encode() + b"\0" + ref.encode() + b"\0"


def append(
    txn: WriteTxn,
    repo: str,
    ref: str,
    old: ObjectId | None,
    new: ObjectId | None,
    who: str,
    why: str,
) -> None:
    prefix = _prefix(repo, ref)
    t = time.time_ns()
    # Two moves within one clock tick (one transaction may move a ref twice) keep both.
    while txn.has(REFLOG, prefix + t.to_bytes(8, "big")):
        t += 1
    txn.put(REFLOG, prefix + t.to_bytes(8, "big"), codec.pack([old or b"", new or b"", why, who]))


def _decode(repo: str, key: bytes, value: bytes) -> ReflogEntry:
    rest = key[len(repo.encode()) + 1 :]
    ref, seq = rest[:-9], rest[-8:]  # the time may hold NUL bytes: split by length
    v = codec.unpack(value, "reflog entry")
    try:
        old, new, why = v[0], v[1], v[2]
        who = v[3] if len(v) > 3 else ""
        return ReflogEntry(
            repo,
            ref.decode(),
            int.from_bytes(seq, "big"),
            ObjectId(bytes(old)) if old else None,
            ObjectId(bytes(new)) if new else None,
            str(who),
            str(why),
        )
    except (TypeError, IndexError, UnicodeDecodeError) as exc:
        raise CorruptObject("reflog entry", "malformed") from exc


def entries(txn: ReadTxn, repo: str, ref: str | None = None) -> Iterator[ReflogEntry]:
    """The entries of one ref of `repo` (or of all its refs), oldest first per ref."""
    prefix = repo.encode() + b"\0" if ref is None else _prefix(repo, ref)
    for key, value in txn.scan(REFLOG, prefix):
        yield _decode(repo, key, value)


def expiry_s(txn: ReadTxn) -> int:
    data = txn.get(CONFIG, EXPIRY_KEY.encode())
    value = None if data is None else codec.unpack(data, "config " + EXPIRY_KEY)
    return value if isinstance(value, int) and value >= 0 else DEFAULT_EXPIRY_S


def set_expiry_s(txn: WriteTxn, seconds: int) -> None:
    txn.put(CONFIG, EXPIRY_KEY.encode(), codec.pack(int(seconds)))


def live_cutoff_ns(txn: ReadTxn, now_ns: int) -> int:
    """Entries at or after this time are live (gc roots); older ones have expired."""
    return now_ns - expiry_s(txn) * 1_000_000_000


def live_commits(txn: ReadTxn, repo: str, now_ns: int | None = None) -> set[bytes]:
    """Every commit a live (not expired) reflog entry of `repo` names, old or new."""
    cutoff = live_cutoff_ns(txn, time.time_ns() if now_ns is None else now_ns)
    out: set[bytes] = set()
    for e in entries(txn, repo):
        if e.time_ns >= cutoff:
            out.update(bytes(v) for v in (e.old, e.new) if v)
    return out


def prune(txn: WriteTxn, now_ns: int) -> int:
    """Delete the expired entries of every repo; returns how many went."""
    cutoff = live_cutoff_ns(txn, now_ns)
    dead = [k for k, _ in txn.scan(REFLOG) if int.from_bytes(k[-8:], "big") < cutoff]
    for k in dead:
        txn.delete(REFLOG, k)
    return len(dead)
