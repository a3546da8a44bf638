"""The remotes' transports and the pack indexes cached in LMDB: which remote pack holds a
chunk or an object (store/remotedb.py), refreshed when an id no cached index knows is asked
for. Used by the fetcher (store/fetcher.py) and by push and fetch (repo/).

A damaged index (an interrupted upload can leave one truncated) is skipped and not recorded
as read, so the next refresh reads it afresh; a missing id then names the skipped indexes.
Thread-safe: indexes are read in parallel; the transports and refresh times are under a lock.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from mlgitfs.errors import CorruptObject, MissingObject, MlgitError, RemoteKeyMissing
from mlgitfs.meta import remotes as remote_records
from mlgitfs.meta.env import MetaEnv
from mlgitfs.meta.remotes import RemoteRecord
from mlgitfs.model.ids import short_hex
from mlgitfs.store import packs, remotedb
from mlgitfs.store.commitlist import commit_list_key, decode_commit_list
from mlgitfs.store.packs import CHUNKS, META, PackLocation, decode_index, index_key, parse_index_key
from mlgitfs.store.remote import RemoteTransport
from mlgitfs.store.transports import open_transport

log = logging.getLogger(__name__)

PARALLEL = 16  # indexes read at once: S3 latency, not bandwidth, bounds one connection
TransportFactory = Callable[[RemoteRecord], RemoteTransport]


class RemoteIndexes:
    """The transports to the store's remotes and what their pack indexes say."""

    def __init__(self, env: MetaEnv, transport_factory: TransportFactory | None = None) -> None:
        self.env = env
        # how a remote record becomes a transport: tests pass a counting or failing double
        self._open = transport_factory or (lambda rec: open_transport(rec.url, rec.endpoint_url))
        self._lock = threading.Lock()
        self._transports: dict[str, tuple[RemoteRecord, RemoteTransport]] = {}
        self._refreshed: dict[tuple[str, str], float] = {}
        self._damaged: set[str] = set()  # "remote: index key" of indexes skipped as damaged
        self._pid = os.getpid()

    def transport(self, rec: RemoteRecord) -> RemoteTransport:
        with self._lock:
            if self._pid != os.getpid():  # connection pools do not survive a fork
                self._transports.clear()
                self._pid = os.getpid()
            cached = self._transports.get(rec.name)
            if cached is not None and cached[0] == rec:
                return cached[1]
            t = self._open(rec)
            self._transports[rec.name] = (rec, t)
            return t

    def warm_up(self) -> None:
        """Open a transport to every remote now (for S3, importing boto3 and building a
        client costs about 0.3 s), so that a mount's first read does not wait for it."""
        for rec in self.remotes():
            try:
                self.transport(rec)
            except MlgitError as exc:  # the first real request reports it
                log.debug("could not open remote %s ahead of use: %s", rec.name, exc)

    def remotes(self) -> list[RemoteRecord]:
        with self.env.read() as txn:
            return remote_records.list_remotes(txn)

    def refresh(self, rec: RemoteRecord, kind: str) -> int:
        """Read and cache every index of `kind` on the remote not read yet; how many were new."""
        t = self.transport(rec)
        started = time.monotonic()
        with self.env.read() as txn:
            known = remotedb.known_packs(txn, rec.name, kind)
        listed = {p for p in map(lambda k: parse_index_key(kind, k), t.list(kind + "/")) if p}
        if known - listed:
            # A remote gc deleted packs (after copying their live entries into new ones):
            # what their indexes said goes, and every index is read afresh, so an id that
            # was recorded in a deleted pack is found in the pack that holds it now.
            with self.env.write() as txn:
                remotedb.forget_all(txn, rec.name, kind)
            known = set()
            log.info("%s: %s packs were removed (remote gc): re-reading its indexes",
                     rec.name, kind)  # fmt: skip
        new = listed - known

        def one(pack: bytes) -> None:
            try:
                data = packs.get_capped(t, index_key(kind, pack), packs.INDEX_CAP)
                index = decode_index(kind, pack, data)
            except RemoteKeyMissing:
                return  # removed since the listing
            except CorruptObject as exc:
                # An interrupted upload can leave a truncated index (SeaweedFS keeps the part
                # of a PUT it received). Its pack is not visible, so a push uploads what it
                # holds again; not recording it makes the next refresh read it afresh.
                log.warning("ignoring a damaged index on %s: %s", rec.name, exc)
                with self._lock:
                    self._damaged.add(f"{rec.name}: {index_key(kind, pack)}")
                return
            with self.env.write() as txn:
                remotedb.record_index(txn, rec.name, index)
            with self._lock:
                self._damaged.discard(f"{rec.name}: {index_key(kind, pack)}")

        with ThreadPoolExecutor(PARALLEL, thread_name_prefix="mlgitfs-idx") as pool:
            list(pool.map(one, sorted(new)))
        if kind == META:
            self._refresh_locators(rec, t)
        with self._lock:
            self._refreshed[(rec.name, kind)] = started
        if new:
            log.debug("read %d new %s indexes of %s", len(new), kind, rec.name)
        return len(new)

    def _refresh_locators(self, rec: RemoteRecord, t: RemoteTransport) -> None:
        """Read the `.lidx` (chunk locator) and `.cidx` (commit list) of every meta pack whose
        index is known and whose locator or list is not: one pool for both, so a fetch of up
        to PARALLEL // 2 new packs waits no longer than for their locators alone."""
        with self.env.read() as txn:
            meta = remotedb.known_packs(txn, rec.name, META)
            lidx = meta - remotedb.known_packs(txn, rec.name, remotedb.LOCATORS)
            cidx = meta - remotedb.known_packs(txn, rec.name, remotedb.COMMIT_LISTS)

        def locator(pack: bytes) -> None:
            key = packs.locator_index_key(pack)
            try:
                sections = packs.decode_locator_index(
                    pack, packs.get_capped(t, key, packs.INDEX_CAP)
                )
            except RemoteKeyMissing:
                sections = {}  # pushed by an older mlgitfs: its chunks are found by the indexes
            except CorruptObject as exc:
                # An accelerator only: its chunks are found through the chunk indexes. Not
                # recorded as read, so a repaired .lidx is read at the next refresh.
                log.warning("ignoring damaged chunk locator index %s of %s: %s", key, rec.name, exc)
                return
            with self.env.write() as txn:
                remotedb.record_locator_index(txn, rec.name, pack, sections)

        def commit_list(pack: bytes) -> None:
            key = commit_list_key(pack)
            try:
                commits = decode_commit_list(pack, packs.get_capped(t, key, packs.INDEX_CAP))
            except RemoteKeyMissing:
                commits = {}  # pushed by an older mlgitfs: its commits are walked one by one
            except CorruptObject as exc:  # a plan only (store/commitlist.py): walk instead
                log.warning("ignoring damaged commit list %s of %s: %s", key, rec.name, exc)
                return
            with self.env.write() as txn:
                remotedb.record_commit_list(txn, rec.name, pack, commits)

        tasks = [(locator, p) for p in sorted(lidx)] + [(commit_list, p) for p in sorted(cidx)]
        with ThreadPoolExecutor(PARALLEL, thread_name_prefix="mlgitfs-lidx") as pool:
            list(pool.map(lambda task: task[0](task[1]), tasks))

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
                with self._lock:
                    damaged = sorted(self._damaged)
                why = f" (damaged indexes were skipped: {', '.join(damaged)})" if damaged else ""
                raise MissingObject(
                    short_hex(oid), f"{what} not in the store nor on any remote{why}"
                )
            out[oid] = usable[0]
        return out

    def forget_all(self, remote: str, kind: str) -> None:
        """A pack of `remote` is gone (a remote gc deleted it): forget everything its
        indexes of `kind` said, so the next miss reads them all afresh (an id may be in a
        pack this store read long ago, under a location it no longer remembers)."""
        with self.env.write() as txn:
            remotedb.forget_all(txn, remote, kind)
        self.forget_refresh(remote, kind)

    def forget_refresh(self, remote: str, kind: str) -> None:
        """A location of `remote` failed its check: its indexes of `kind` are read again at
        the next miss."""
        with self._lock:
            self._refreshed.pop((remote, kind), None)

    def close(self) -> None:
        with self._lock:
            for _, t in self._transports.values():
                t.close()
            self._transports.clear()
