"""Reading chunks and metadata objects from remotes: index refresh, ranged GETs, verification.

The store's fallback when something is not local (`Store.read_chunk`, `Store.get_object`) and
the download half of fetch and prefetch. Locations come from the pack indexes cached in LMDB
(store/remotedb.py); an id no index knows triggers one refresh of the remotes' indexes.

Trust boundary: every byte range read from a remote is checked against its id
(`packs.open_entry`), and objects are also decoded (names, types, canonical form) before they
are written to the store. A bad entry raises CorruptObject naming it, is not cached, and
nothing else changes. Fetched chunks go to a long-lived SegmentWriter: appended, fsynced, then
their locations recorded in LMDB, so a location never names bytes that are not durable.

Thread-safe: network reads run in parallel; appends to the cache are serialized by a lock.
Single flight (two readers of one missing chunk, one GET) is the daemon's business.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mlgitfs.errors import MissingObject, RemoteKeyMissing
from mlgitfs.meta.env import MetaEnv
from mlgitfs.model.ids import ChunkId, short_hex
from mlgitfs.model.objects import Object, decode
from mlgitfs.store import remotedb
from mlgitfs.store.cache import ChunkCache, SegmentWriter
from mlgitfs.store.packs import (
    CHUNKS,
    META,
    PackLocation,
    decode_index,
    index_key,
    open_entry,
    parse_index_key,
)
from mlgitfs.store.remote import RemoteTransport, open_transport
from mlgitfs.store.remotedb import RemoteRecord

log = logging.getLogger(__name__)

PARALLEL = 16  # concurrent GETs: S3 latency, not bandwidth, bounds one connection
GAP = 256 << 10  # neighbouring ranges closer than this are read in one request
MAX_REQUEST = 16 << 20

Progress = Callable[[int, int], None]


@dataclass
class _Request:
    rec: RemoteRecord
    key: str
    start: int
    end: int
    items: list[tuple[bytes, PackLocation]] = field(default_factory=list)


@dataclass
class FetchStats:
    items: int = 0
    bytes: int = 0
    requests: int = 0


class RemoteFetcher:
    """Downloads from the store's configured remotes into its LMDB and chunk cache."""

    def __init__(self, env: MetaEnv, cache: ChunkCache) -> None:
        self.env = env
        self.cache = cache
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._writer: SegmentWriter | None = None
        self._transports: dict[str, tuple[RemoteRecord, RemoteTransport]] = {}
        self._refreshed: dict[tuple[str, str], float] = {}
        self._pid = os.getpid()

    # --- transports and indexes ---------------------------------------------------------

    def transport(self, rec: RemoteRecord) -> RemoteTransport:
        with self._lock:
            if self._pid != os.getpid():  # connection pools do not survive a fork
                self._transports.clear()
                self._pid = os.getpid()
            cached = self._transports.get(rec.name)
            if cached is not None and cached[0] == rec:
                return cached[1]
            t = open_transport(rec.url, rec.endpoint_url)
            self._transports[rec.name] = (rec, t)
            return t

    def remotes(self) -> list[RemoteRecord]:
        with self.env.read() as txn:
            return remotedb.list_remotes(txn)

    def refresh(self, rec: RemoteRecord, kind: str) -> int:
        """Read and cache every index of `kind` on the remote not read yet; how many were new."""
        t = self.transport(rec)
        started = time.monotonic()
        with self.env.read() as txn:
            known = remotedb.known_packs(txn, rec.name, kind)
        new = {p for p in map(lambda k: parse_index_key(kind, k), t.list(kind + "/")) if p}
        new -= known

        def one(pack: bytes) -> None:
            try:
                data = t.get(index_key(kind, pack))
            except RemoteKeyMissing:
                return  # removed since the listing
            index = decode_index(kind, pack, data)
            with self.env.write() as txn:
                remotedb.record_index(txn, rec.name, index)

        with ThreadPoolExecutor(PARALLEL, thread_name_prefix="mlgitfs-idx") as pool:
            list(pool.map(one, sorted(new)))
        with self._lock:
            self._refreshed[(rec.name, kind)] = started
        if new:
            log.debug("read %d new %s indexes of %s", len(new), kind, rec.name)
        return len(new)

    def _locate(
        self, kind: str, oids: Iterable[bytes]
    ) -> dict[bytes, list[tuple[str, PackLocation]]]:
        with self.env.read() as txn:
            return {oid: remotedb.locate(txn, kind, oid) for oid in oids}

    def locate(
        self, kind: str, oids: Iterable[bytes]
    ) -> dict[bytes, tuple[RemoteRecord, PackLocation]]:
        """One location per id, refreshing the indexes for ids no cached index knows (unless
        another thread's refresh began after we looked); MissingObject for an id no remote has."""
        wanted = list(dict.fromkeys(oids))
        looked = time.monotonic()
        found = self._locate(kind, wanted)
        missing = [o for o, locs in found.items() if not locs]
        if missing:
            for rec in self.remotes():
                with self._lock:
                    last = self._refreshed.get((rec.name, kind))
                if last is None or last < looked:
                    self.refresh(rec, kind)
            found.update(self._locate(kind, missing))
        recs = {r.name: r for r in self.remotes()}
        out: dict[bytes, tuple[RemoteRecord, PackLocation]] = {}
        for oid, locs in found.items():
            usable = [(recs[name], loc) for name, loc in locs if name in recs]
            if not usable:
                what = "chunk" if kind == CHUNKS else "object"
                raise MissingObject(short_hex(oid), f"{what} not in the store nor on any remote")
            out[oid] = usable[0]
        return out

    # --- reading ------------------------------------------------------------------------

    def _plan(self, located: dict[bytes, tuple[RemoteRecord, PackLocation]]) -> list[_Request]:
        by_pack: dict[tuple[str, str], list[tuple[bytes, RemoteRecord, PackLocation]]] = {}
        for oid, (rec, loc) in located.items():
            by_pack.setdefault((rec.name, loc.key), []).append((oid, rec, loc))
        out: list[_Request] = []
        for (_, key), items in by_pack.items():
            items.sort(key=lambda i: i[2].offset)
            cur: _Request | None = None
            for oid, rec, loc in items:
                end = loc.offset + loc.length
                if (
                    cur is None
                    or loc.offset - cur.end > GAP
                    or end - cur.start > MAX_REQUEST
                    or loc.offset < cur.end  # the same range twice cannot happen; be safe
                ):
                    cur = _Request(rec, key, loc.offset, end)
                    out.append(cur)
                cur.end = max(cur.end, end)
                cur.items.append((oid, loc))
        return out

    def _get(self, req: _Request) -> list[tuple[bytes, PackLocation, bytes]]:
        """The stored bytes of each item of one ranged GET (lengths checked by open_entry)."""
        t = self.transport(req.rec)
        try:
            data = t.get_range(req.key, req.start, req.end - req.start)
        except RemoteKeyMissing as exc:
            oid = req.items[0][0]
            raise MissingObject(
                short_hex(oid), f"pack {req.key} is missing on remote {req.rec.name}"
            ) from exc
        return [
            (oid, loc, data[loc.offset - req.start : loc.offset - req.start + loc.length])
            for oid, loc in req.items
        ]

    def _run(
        self,
        requests: list[_Request],
        each: Callable[[list[tuple[bytes, PackLocation, bytes]]], None],
    ) -> None:
        if len(requests) == 1:
            each(self._get(requests[0]))
            return
        with ThreadPoolExecutor(PARALLEL, thread_name_prefix="mlgitfs-get") as pool:
            for got in pool.map(self._get, requests):
                each(got)

    def fetch_chunks(self, cids: Iterable[bytes], progress: Progress | None = None) -> FetchStats:
        """Download chunks into the local cache, neighbours in one request, many in parallel."""
        stats = FetchStats()
        wanted = list(dict.fromkeys(cids))
        if not wanted:
            return stats
        requests = self._plan(self.locate(CHUNKS, wanted))

        def each(got: list[tuple[bytes, PackLocation, bytes]]) -> None:
            items = []
            for oid, loc, stored in got:
                raw = open_entry(oid, loc, stored)
                items.append((oid, loc.codec, stored, len(raw)))
                stats.bytes += len(raw)
            self._cache_chunks(items)
            stats.items += len(items)
            stats.requests += 1
            if progress is not None:
                progress(stats.items, stats.bytes)

        self._run(requests, each)
        return stats

    def fetch_chunk(self, cid: bytes) -> bytes:
        """One chunk's raw bytes, verified and written into the local cache."""
        ((rec, loc),) = self.locate(CHUNKS, [cid]).values()
        ((_, _, stored),) = self._get(
            _Request(rec, loc.key, loc.offset, loc.offset + loc.length, [(cid, loc)])
        )
        raw = open_entry(cid, loc, stored)
        self._cache_chunks([(cid, loc.codec, stored, len(raw))])
        return raw

    def fetch_objects(self, oids: Iterable[bytes]) -> dict[bytes, Object]:
        """Download, verify, decode and store metadata objects; neighbours in one request."""
        out: dict[bytes, Object] = {}
        wanted = list(dict.fromkeys(oids))
        if not wanted:
            return out

        def each(got: list[tuple[bytes, PackLocation, bytes]]) -> None:
            decoded = []
            for oid, loc, stored in got:
                raw = open_entry(oid, loc, stored)
                decoded.append((oid, raw, decode(raw, oid)))  # names, types, canonical form
            with self.env.write() as txn:
                for oid, raw, _ in decoded:
                    txn.put_new("objects", oid, raw)
            out.update((oid, obj) for oid, _, obj in decoded)

        self._run(self._plan(self.locate(META, wanted)), each)
        return out

    def fetch_object(self, oid: bytes) -> Object:
        return self.fetch_objects([oid])[oid]

    def _cache_chunks(self, items: list[tuple[bytes, int, bytes, int]]) -> None:
        with self._write_lock:
            if self._writer is None:
                self._writer = self.cache.writer()
            w = self._writer
            try:
                for cid, codec_, stored, raw_len in items:
                    w.add(ChunkId(cid), codec_, stored, raw_len)
                w.sync()
                with self.env.write() as txn:
                    w.record(txn)
            except BaseException:
                # the segment may be torn: drop what this batch created, never append again
                self._writer = None
                w.reset_files()
                raise
            w.forget_recorded()

    def close(self) -> None:
        with self._lock:
            for _, t in self._transports.values():
                t.close()
            self._transports.clear()
        with self._write_lock:
            if self._writer is not None:
                self._writer.reset()
                self._writer = None
