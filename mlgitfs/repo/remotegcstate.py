"""Remote gc's records on the remote: the lease, each gc's record, condemned lists, the
expired-metadata list; what pushes read of them (docs/design.md, "gc (remote)").

    gc/lease            {"gc", "who", "time_ns", "ttl_ns"}: one gc at a time. Taken with
                        If-None-Match: *, renewed with If-Match, taken over (If-Match on the
                        ETag read) once older than its ttl (the holder's grace period).
    gc/<id>             {"gc", "who", "started_ns", "phase"}: a gc's progress, for people
                        and for the next gc (which removes records of dead gcs)
    gc/<id>.condemned   {"gc", "t1_ns", "grace_ns", "packs": [[kind, pack hex], ...]}: the
                        packs this gc will delete at t1 + grace. A push treats an id found
                        only in a condemned pack as absent and uploads it again.
    gc/expired          32-byte ids + BLAKE3 trailer: trees, tree indexes and manifests the
                        last gc kept for their names only (expired versions). Some of their
                        files' chunks are gone, so a push never stops at them.

Pushes never wait for any of these: they read them (one LIST, a few GETs) and go on.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from mlgitfs.errors import CorruptObject, PreconditionFailed, RemoteGcRunning, RemoteKeyMissing
from mlgitfs.model.ids import ID_LEN, from_hex, hash_bytes, to_hex
from mlgitfs.store import packs
from mlgitfs.store.packs import KINDS
from mlgitfs.store.remote import RemoteTransport

PREFIX = "gc/"
LEASE_KEY = "gc/lease"
EXPIRED_KEY = "gc/expired"
CONDEMNED = ".condemned"
LIST_CAP = 256 << 20  # a condemned or expired list: far above what a gc writes


def new_gc_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:8]}"


def who() -> str:
    return os.environ.get("MLGITFS_AUTHOR") or f"{os.getpid()}@{socket.gethostname()}"


def record_key(gc_id: str) -> str:
    return f"{PREFIX}{gc_id}"


def condemned_key(gc_id: str) -> str:
    return f"{PREFIX}{gc_id}{CONDEMNED}"


def _json(data: bytes, key: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptObject(key, "not a remote gc record") from exc
    if not isinstance(value, dict):
        raise CorruptObject(key, "not a remote gc record")
    return value


def _dump(value: dict[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True).encode()


# --- the lease --------------------------------------------------------------------------------


@dataclass
class Lease:
    """The lease this gc holds: renewed by compare-and-swap on its ETag."""

    t: RemoteTransport
    gc_id: str
    ttl_ns: int
    etag: str = ""
    renewed_ns: int = 0

    def _body(self) -> bytes:
        self.renewed_ns = time.time_ns()
        return _dump({"gc": self.gc_id, "who": who(), "time_ns": self.renewed_ns,
                      "ttl_ns": self.ttl_ns})  # fmt: skip

    def take(self) -> None:
        """Take the lease, or take it over from a gc whose lease is older than its ttl;
        RemoteGcRunning when a live gc holds it."""
        try:
            self.etag = self.t.put_if_absent(LEASE_KEY, self._body())
            return
        except PreconditionFailed:
            pass
        got = packs.get_capped_with_etag(self.t, LEASE_KEY, packs.RECORD_CAP)
        if got is None:  # released meanwhile: one more try
            self.etag = self.t.put_if_absent(LEASE_KEY, self._body())
            return
        data, etag = got
        try:
            held = _json(data, LEASE_KEY)
            age = time.time_ns() - int(held["time_ns"])
            stale = age > int(held["ttl_ns"])
            holder = f"gc {held['gc']} of {held.get('who', '?')}, renewed {age / 1e9:.0f} s ago"
        except (CorruptObject, KeyError, TypeError, ValueError):
            stale, holder = True, "a damaged lease"
        if not stale:
            raise RemoteGcRunning(
                f"another gc holds the remote's lease ({holder}); nothing was changed"
            )
        try:
            self.etag = self.t.put_if_match(LEASE_KEY, self._body(), etag)
        except PreconditionFailed as exc:
            raise RemoteGcRunning(
                "another gc took the remote's lease first; nothing was changed"
            ) from exc

    def renew(self, force: bool = False) -> None:
        """Renew when a third of the ttl passed (or `force`); RemoteGcRunning if another gc
        took it over (this one was too slow): the caller stops before deleting anything."""
        if not force and time.time_ns() - self.renewed_ns < self.ttl_ns // 3:
            return
        try:
            self.etag = self.t.put_if_match(LEASE_KEY, self._body(), self.etag)
        except PreconditionFailed as exc:
            raise RemoteGcRunning(
                f"gc {self.gc_id} lost the remote's lease to another gc; it deleted nothing more"
            ) from exc

    def release(self) -> None:
        """Delete the lease if it is still ours (S3 has no conditional delete: a takeover
        between the read and the delete loses that gc its lease, and it stops at its next
        renewal, before deleting anything)."""
        got = packs.get_capped_with_etag(self.t, LEASE_KEY, packs.RECORD_CAP)
        if got is not None and got[1] == self.etag:
            self.t.delete(LEASE_KEY)


def lease_holder(t: RemoteTransport) -> dict[str, Any] | None:
    got = packs.get_capped_with_etag(t, LEASE_KEY, packs.RECORD_CAP)
    return None if got is None else _json(got[0], LEASE_KEY)


# --- records and condemned lists -------------------------------------------------------------


def write_record(t: RemoteTransport, gc_id: str, started_ns: int, phase: str) -> None:
    t.put(record_key(gc_id), _dump({"gc": gc_id, "who": who(), "started_ns": started_ns,
                                   "phase": phase}))  # fmt: skip


def write_condemned(
    t: RemoteTransport, gc_id: str, t1_ns: int, grace_ns: int, doomed: set[tuple[str, bytes]]
) -> None:
    body = {"gc": gc_id, "t1_ns": t1_ns, "grace_ns": grace_ns,
            "packs": sorted([kind, to_hex(p)] for kind, p in doomed)}  # fmt: skip
    t.put(condemned_key(gc_id), _dump(body))


@dataclass
class Condemned:
    """What running (or dead) gcs condemned, as a push sees it at one moment."""

    packs: set[tuple[str, bytes]] = field(default_factory=set)
    lists: set[str] = field(default_factory=set)  # the keys of the condemned lists read
    expired: frozenset[bytes] = frozenset()  # gc/expired: never stop a push walk at these

    def holds(self, kind: str, pack: bytes) -> bool:
        return (kind, pack) in self.packs


def parse_condemned(data: bytes, key: str) -> set[tuple[str, bytes]]:
    value = _json(data, key)
    try:
        return {(str(k), from_hex(str(h))) for k, h in value["packs"] if k in KINDS}
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptObject(key, "not a condemned list") from exc


def read_condemned(t: RemoteTransport, with_expired: bool = True) -> Condemned:
    """Every condemned list on the remote (one LIST of `gc/`, one GET each) and, with
    `with_expired`, the expired-metadata list. A list that vanished since the LIST was
    deleted with its packs' deletion done: skipped."""
    out = Condemned()
    keys = sorted(t.list(PREFIX))
    for key in keys:
        if not key.endswith(CONDEMNED):
            continue
        try:
            out.packs |= parse_condemned(packs.get_capped(t, key, LIST_CAP), key)
        except RemoteKeyMissing:
            continue
        out.lists.add(key)
    if with_expired and EXPIRED_KEY in keys:
        out.expired = read_expired(t)
    return out


def encode_ids(ids: set[bytes]) -> bytes:
    body = b"".join(sorted(ids))
    return body + hash_bytes(body)


def read_expired(t: RemoteTransport) -> frozenset[bytes]:
    try:
        data = packs.get_capped(t, EXPIRED_KEY, LIST_CAP)
    except RemoteKeyMissing:
        return frozenset()
    body, trailer = data[:-ID_LEN], data[-ID_LEN:]
    if len(data) < ID_LEN or len(body) % ID_LEN or hash_bytes(body) != trailer:
        raise CorruptObject(EXPIRED_KEY, "the expired-metadata list is damaged")
    return frozenset(body[i : i + ID_LEN] for i in range(0, len(body), ID_LEN))


def gc_records(t: RemoteTransport) -> list[str]:
    """Keys under `gc/` other than the lease and the expired list: records and lists."""
    return sorted(k for k in t.list(PREFIX) if k not in (LEASE_KEY, EXPIRED_KEY))
