"""Reading chunks and metadata objects from remotes: ranged GETs, verification, caching.

The store's fallback when something is not local (`Store.read_chunk`, `Store.get_object`) and
the download half of fetch and prefetch. Locations come from the pack indexes cached in LMDB
(store/remoteindex.py); an id no index knows triggers one refresh of the remotes' indexes.
Chunk locations come first from chunk locators (store/packs.py): fetching a tree page or a
manifest also fetches its locator section (one coalesced ranged GET), which locates the
chunks of its files, so reading one file of a fresh clone never reads every chunk index.

Trust boundary: every byte range read from a remote is checked against its id
(`packs.open_entry`), and objects are also decoded (names, types, canonical form) before they
are written to the store. A bad entry raises CorruptObject naming it, is not cached, and
nothing else changes. Fetched chunks go to a long-lived, unpinned SegmentWriter (direct:
store/segfile.py): appended, then their locations recorded in LMDB, without fsync: they
can be fetched again, and a chunk torn by a crash fails its hash check on read and is
fetched again (store/facade.py). An fsync per batch cost more than the GET on a cold
sequential read. After the writes, the cache is brought back under its byte budget when it
has grown past it (`enforce_budget`).

Thread-safe: network reads run in parallel; appends to the cache are serialized by a lock.
Single flight (two readers of one missing chunk, one GET) is the daemon's business.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mlgitfs.errors import CorruptObject, MissingObject, MlgitError, RemoteKeyMissing
from mlgitfs.meta import chunkquotes, db, erasures
from mlgitfs.meta.env import MetaEnv
from mlgitfs.meta.remotes import RemoteRecord
from mlgitfs.model.decode import decode
from mlgitfs.model.ids import ChunkId, ObjectId, short_hex
from mlgitfs.model.objects import EntryKind, Manifest, Object, Tree
from mlgitfs.store import packs, remotedb
from mlgitfs.store.cache import FETCH_SEGMENT_TARGET, ChunkCache, SegmentWriter
from mlgitfs.store.packs import (
    CHUNKS,
    META,
    PackLocation,
    open_entry,
)
from mlgitfs.store.remote import RemoteTransport
from mlgitfs.store.remoteindex import RemoteIndexes, TransportFactory
from mlgitfs.store.segfile import Buffer

log = logging.getLogger(__name__)

PARALLEL = 16  # concurrent GETs: S3 latency, not bandwidth, bounds one connection
GAP = 256 << 10  # neighbouring ranges closer than this are read in one request
MAX_REQUEST = 16 << 20
BACKLOG = 8  # batches of fetched chunks (≤ MAX_REQUEST each) waiting to be written

Progress = Callable[[int, int], None]
Deliver = Callable[[list[tuple[bytes, Buffer]]], None]  # (chunk id, raw bytes) of one request
# a fetched chunk to cache: id, codec, stored bytes, raw length, quote parity (None: not counted)
Fetched = tuple[bytes, int, Buffer, int, bool | None]


@dataclass
class _Request:
    rec: RemoteRecord
    key: str
    start: int
    end: int
    items: list[tuple[bytes, PackLocation]] = field(default_factory=list)
    sections: list[packs.Section] = field(default_factory=list)  # locator requests only


@dataclass
class FetchStats:
    items: int = 0
    bytes: int = 0
    requests: int = 0


class RemoteFetcher:
    """Downloads from the store's configured remotes into its LMDB and chunk cache."""

    def __init__(
        self,
        env: MetaEnv,
        cache: ChunkCache,
        budget: int | None = None,
        transport_factory: TransportFactory | None = None,
    ) -> None:
        self.env = env
        self.cache = cache
        # transports and the pack indexes cached in LMDB (store/remoteindex.py)
        self.indexes = RemoteIndexes(env, transport_factory)
        self.budget = budget  # bytes of chunk cache; None: unbounded
        self.skipped_batches = 0  # fetched batches not cached because the disk fell behind
        self._since_check = 0
        self._evicting = threading.Lock()
        # background cache writes (see fetch_chunks): one thread keeps segment order; at most
        # BACKLOG batches wait, so a slow disk slows the fetches instead of filling memory
        self._bg: ThreadPoolExecutor | None = None
        self._backlog = threading.BoundedSemaphore(BACKLOG)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._writer: SegmentWriter | None = None

    # --- the remotes' transports and indexes (store/remoteindex.py) ---------------------

    def transport(self, rec: RemoteRecord) -> RemoteTransport:
        return self.indexes.transport(rec)

    def warm_up(self) -> None:
        self.indexes.warm_up()

    def remotes(self) -> list[RemoteRecord]:
        return self.indexes.remotes()

    def refresh(self, rec: RemoteRecord, kind: str) -> int:
        return self.indexes.refresh(rec, kind)

    def locate(
        self, kind: str, oids: Iterable[bytes]
    ) -> dict[bytes, tuple[RemoteRecord, PackLocation]]:
        return self.indexes.locate(kind, oids)

    def _load_sections(self, objs: dict[bytes, Object]) -> None:
        """Fetch the locator sections of fetched trees and manifests; record their chunks'
        locations. Best effort: without them, a chunk miss reads the chunk indexes instead."""
        wanted: list[tuple[bytes, str, packs.Section]] = []
        with self.env.read() as txn:
            for oid, obj in objs.items():
                names_chunks = isinstance(obj, Manifest) or (
                    isinstance(obj, Tree) and any(e.kind is EntryKind.FILE for e in obj.entries)
                )
                if names_chunks:
                    wanted.extend((oid, name, sec) for name, sec in remotedb.sections(txn, oid))
        if not wanted:
            return
        recs = {r.name: r for r in self.remotes()}
        requests: list[_Request] = []
        done: set[bytes] = set()
        for oid, name, sec in sorted(wanted, key=lambda w: (w[1], w[2].pack, w[2].offset)):
            if oid in done or name not in recs:
                continue  # one remote's section is enough
            done.add(oid)
            key = packs.locator_key(sec.pack)
            end = sec.offset + sec.length
            cur = requests[-1] if requests else None
            if (
                cur is None
                or cur.key != key
                or cur.rec.name != name
                or sec.offset - cur.end > GAP
                or end - cur.start > MAX_REQUEST
            ):
                cur = _Request(recs[name], key, sec.offset, end)
                requests.append(cur)
            cur.end = max(cur.end, end)
            cur.items.append((oid, PackLocation(META, sec.pack, sec.offset, sec.length, 0, 0)))
            cur.sections.append(sec)

        def one(req: _Request) -> None:
            try:
                data = self.transport(req.rec).get_range(req.key, req.start, req.end - req.start)
                found = []
                for (oid, _), sec in zip(req.items, req.sections, strict=True):
                    part = data[sec.offset - req.start : sec.offset - req.start + sec.length]
                    found.extend(packs.decode_section(oid, sec, part))
            except MlgitError as exc:
                log.warning("cannot read chunk locator %s: %s", req.key, exc)
                return
            with self.env.write() as txn:
                remotedb.record_chunk_locations(txn, req.rec.name, found)

        if len(requests) == 1:
            one(requests[0])
        else:
            with ThreadPoolExecutor(PARALLEL, thread_name_prefix="mlgitfs-loc") as pool:
                list(pool.map(one, requests))

    # --- reading ------------------------------------------------------------------------

    def _verified(
        self, rec: RemoteRecord, oid: bytes, loc: PackLocation, stored: memoryview
    ) -> bytes | memoryview:
        """`packs.open_entry`; when it fails, the location that led there is forgotten
        (remotedb.forget_location), so nothing unverified is believed twice."""
        try:
            return open_entry(oid, loc, stored)
        except CorruptObject:
            self._forget(rec, oid, loc)
            raise

    def _forget(self, rec: RemoteRecord, oid: bytes, loc: PackLocation) -> None:
        with self.env.write() as txn:
            remotedb.forget_location(txn, rec.name, loc.kind, oid, loc.pack)
        self.indexes.forget_refresh(rec.name, loc.kind)  # the next miss refreshes them

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

    def _get(
        self, req: _Request, again: bool = True
    ) -> list[tuple[bytes, PackLocation, memoryview]]:
        """The stored bytes of each item of one ranged GET (lengths checked by open_entry).
        A pack that is gone (a remote gc deleted it after copying its live entries) is
        forgotten, and the items are looked up once more: the refreshed indexes name the
        copy, or the error says that running the command again may find it."""
        t = self.transport(req.rec)
        try:
            data = t.get_range(req.key, req.start, req.end - req.start)
        except RemoteKeyMissing as exc:
            oid, kind = req.items[0][0], req.items[0][1].kind
            for item, loc in req.items:  # the index named a pack that is not there
                self._forget(req.rec, item, loc)
            why = (
                f"pack {req.key} is missing on remote {req.rec.name} (a remote gc may have "
                "removed it: run the command again)"
            )
            if not again:
                raise MissingObject(short_hex(oid), why) from exc
            self.indexes.forget_all(req.rec.name, kind)
            try:
                located = self.locate(kind, [item for item, _ in req.items])
            except MissingObject as lost:
                raise MissingObject(short_hex(oid), f"{why}; {lost.reason}") from exc
            out: list[tuple[bytes, PackLocation, memoryview]] = []
            for retry in self._plan(located):
                out.extend(self._get(retry, again=False))
            return out
        body = memoryview(data)  # views: the chunks of a 16 MiB GET are not copied out
        return [
            (oid, loc, body[loc.offset - req.start : loc.offset - req.start + loc.length])
            for oid, loc in req.items
        ]

    def _run(
        self,
        requests: list[_Request],
        each: Callable[[RemoteRecord, list[tuple[bytes, PackLocation, memoryview]]], None],
    ) -> None:
        if len(requests) == 1:
            each(requests[0].rec, self._get(requests[0]))
            return
        with ThreadPoolExecutor(PARALLEL, thread_name_prefix="mlgitfs-get") as pool:
            for req, got in zip(requests, pool.map(self._get, requests), strict=True):
                each(req.rec, got)

    def fetch_chunks(
        self,
        cids: Iterable[bytes],
        progress: Progress | None = None,
        deliver: Deliver | None = None,
        background: bool = False,
        quotes: Collection[bytes] = (),
        judged: bool = False,
    ) -> FetchStats:
        """Download chunks into the local cache, neighbours in one request, many in parallel;
        with `deliver`, each request's raw bytes are handed to it as soon as that request is
        verified (a mount's read-ahead serves them at once, before the rest of the batch).

        With `background`, the cache writes happen on a writer thread after this returns:
        a mount's reader gets verified bytes without waiting for the disk (on a cold
        sequential read the writes cost as much as the GETs). A failed background write
        only means the chunks are not cached; they are fetched again when needed. The quote
        parities of the chunks in `quotes` (a CSV or TSV file's) are recorded with them
        (meta/chunkquotes.py).

        Unless `judged` (the caller judged the files it reads not erased, by occurrence:
        repo/erasegate.py), chunks in the erased-chunk set are left out."""
        stats = FetchStats()
        wanted = list(dict.fromkeys(cids))
        if not wanted:
            return stats
        if not judged:
            with self.env.read() as txn:  # erased ones stay away (their readers are refused)
                refused = set(erasures.erased_among(txn, wanted))
            wanted = [c for c in wanted if c not in refused] if refused else wanted
        requests = self._plan(self.locate(CHUNKS, wanted))

        def each(rec: RemoteRecord, got: list[tuple[bytes, PackLocation, memoryview]]) -> None:
            items: list[Fetched] = []
            arrived: list[tuple[bytes, Buffer]] = []
            for oid, loc, stored in got:
                raw = self._verified(rec, oid, loc, stored)
                odd = chunkquotes.odd(raw) if oid in quotes else None
                items.append((oid, loc.codec, stored, len(raw), odd))
                stats.bytes += len(raw)
                if deliver is not None:
                    arrived.append((oid, raw))
            if deliver is not None:
                deliver(arrived)
            if background:
                self._cache_later(items)
            else:
                self._cache_chunks(items)
            stats.items += len(items)
            stats.requests += 1
            if progress is not None:
                progress(stats.items, stats.bytes)

        self._run(requests, each)
        self.enforce_budget()
        return stats

    def fetch_chunk(self, cid: bytes, judged: bool = False) -> bytes:
        """One chunk's raw bytes, verified and written into the local cache; refused when in
        the erased-chunk set unless `judged` (as `fetch_chunks`)."""
        if not judged:
            with self.env.read() as txn:
                if erasures.erased_among(txn, [cid]):
                    # a remote's packs still hold it: fetching would undo the erase
                    raise MissingObject(short_hex(cid), "erased: only erased files held it")
        ((rec, loc),) = self.locate(CHUNKS, [cid]).values()
        ((_, _, stored),) = self._get(
            _Request(rec, loc.key, loc.offset, loc.offset + loc.length, [(cid, loc)])
        )
        raw = self._verified(rec, cid, loc, stored)
        # The reader has its bytes: caching them must not add a write transaction's fsync
        # to every on-demand read (a shuffled epoch is one such read per file).
        self._cache_later([(cid, loc.codec, stored, len(raw), None)])
        return bytes(raw)

    def fetch_objects(
        self, oids: Iterable[bytes], arrived: Progress | None = None
    ) -> dict[bytes, Object]:
        """Download, verify, decode and store metadata objects; neighbours in one request.
        `arrived` is told (objects, bytes) of each request as it is stored."""
        out: dict[bytes, Object] = {}
        wanted = list(dict.fromkeys(oids))
        if not wanted:
            return out

        def each(rec: RemoteRecord, got: list[tuple[bytes, PackLocation, memoryview]]) -> None:
            decoded = []
            for oid, loc, stored in got:
                raw = self._verified(rec, oid, loc, stored)
                raw = bytes(raw)  # kept in LMDB and the object cache: not a view of the GET
                decoded.append((oid, raw, decode(raw, oid)))  # names, types, canonical form
            with self.env.write() as txn:
                for oid, raw, _ in decoded:
                    db.put_object(txn, ObjectId(oid), raw)
            out.update((oid, obj) for oid, _, obj in decoded)
            if arrived is not None:
                arrived(len(decoded), sum(len(raw) for _, raw, _ in decoded))

        self._run(self._plan(self.locate(META, wanted)), each)
        self._load_sections(out)
        return out

    def fetch_object(self, oid: bytes) -> Object:
        return self.fetch_objects([oid])[oid]

    def _cache_chunks(self, items: list[Fetched]) -> None:
        with self._write_lock:
            if self._writer is None:
                self._writer = self.cache.writer(
                    pin=False, target=FETCH_SEGMENT_TARGET, direct=True
                )
            w = self._writer
            try:
                for cid, codec_, stored, raw_len, odd in items:
                    w.add(ChunkId(cid), codec_, stored, raw_len, odd)
                    self._since_check += len(stored)
                w.write_out()  # no fsync: see the module note
                with self.env.write() as txn:
                    w.record(txn)
            except BaseException:
                # the segment may be torn: drop what this batch created, never append again
                self._writer = None
                w.discard()
                raise
            w.forget_recorded()

    def _cache_later(self, items: list[Fetched]) -> None:
        # A reader never waits for the disk: when the writes fall BACKLOG batches behind,
        # this batch is not cached (it can be fetched again; the reader has its bytes).
        if not self._backlog.acquire(blocking=False):
            self.skipped_batches += 1
            log.debug("cache writes behind: %d fetched chunks not cached", len(items))
            return
        with self._lock:
            if self._bg is None:
                self._bg = ThreadPoolExecutor(1, thread_name_prefix="mlgitfs-cache")
            bg = self._bg

        def write() -> None:
            try:
                self._cache_chunks(items)
                self.enforce_budget()
            except MlgitError as exc:
                log.warning("could not cache %d fetched chunks: %s", len(items), exc)
            finally:
                self._backlog.release()

        bg.submit(write)

    def drain(self) -> None:
        """Wait for the background cache writes started so far."""
        with self._lock:
            bg, self._bg = self._bg, None
        if bg is not None:
            bg.shutdown(wait=True)

    def enforce_budget(self, force: bool = False) -> int:
        """Evict whole segments of chunks known to a remote (never pinned ones) while the
        cache is over its budget. Checked only after the cache grew by a slice of the budget
        (or when `force`d, after a push), so most fetches pay nothing; one thread at a time."""
        if self.budget is None:
            return 0
        if not force and self._since_check < min(64 << 20, max(self.budget // 8, 1 << 20)):
            return 0
        if not self._evicting.acquire(blocking=False):
            return 0
        try:
            self._since_check = 0
            return self.cache.evict(
                self.budget, lambda txn, cid: remotedb.on_any_remote(txn, CHUNKS, cid)
            )
        finally:
            self._evicting.release()

    def close(self) -> None:
        self.drain()
        self.indexes.close()
        with self._write_lock:
            if self._writer is not None:
                self._writer.reset()
                self._writer = None
