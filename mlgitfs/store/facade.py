"""A store: one mlgitfs home with its LMDB environment, chunk cache and decoded-object cache.

Everything above this layer reaches objects and chunks through `Store`, which verifies what
it loads: objects against their id (and canonical form), chunks against their hash. What is
not local is fetched from the store's remotes on demand (store/fetcher.py) and cached.

The chunk cache's byte budget: `MLGITFS_CACHE_SIZE` (e.g. "20G"), else the store's config
key "cache_size" (bytes; the user's `mlgitfs config cache-size`), else unbounded. Over
budget, whole segments of chunks a remote has are evicted (store/cache.py); chunks not yet
pushed are pinned and never evicted.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from mlgitfs.errors import CorruptObject, MissingObject, StoreError, UsageError
from mlgitfs.meta import chunks, db
from mlgitfs.meta.env import MetaEnv, WriteTxn, open_env
from mlgitfs.model.decode import decode
from mlgitfs.model.ids import ChunkId, ObjectId, short_hex
from mlgitfs.model.objects import Commit, Manifest, Object, Tree, TreeIndex
from mlgitfs.store import remotedb
from mlgitfs.store.cache import ChunkCache
from mlgitfs.store.chunker import DEFAULT_PARAMS, ChunkerParams
from mlgitfs.store.fetcher import Deliver, RemoteFetcher
from mlgitfs.store.packs import CHUNKS
from mlgitfs.store.remoteindex import TransportFactory
from mlgitfs.store.segfile import Buffer

STORE_FORMAT = 1
CACHE_SIZE_ENV = "MLGITFS_CACHE_SIZE"
CACHE_SIZE_KEY = "cache_size"
log = logging.getLogger(__name__)
T = TypeVar("T", Tree, TreeIndex, Manifest, Commit)


def default_home() -> Path:
    """$MLGITFS_HOME, else $XDG_DATA_HOME/mlgitfs, else ~/.local/share/mlgitfs."""
    home = os.environ.get("MLGITFS_HOME")
    if home:
        return Path(home)
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(xdg) / "mlgitfs"


def is_store(home: Path) -> bool:
    """Whether `home` holds a store (its LMDB environment exists)."""
    return (home / "meta" / "data.mdb").is_file()


class _LRU:
    """A small thread-safe LRU of decoded objects (ids are immutable, so no invalidation)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[bytes, Object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Object | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: bytes, value: Object) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self.capacity:
                self._data.popitem(last=False)


class Store:
    def __init__(self, home: Path, transport_factory: TransportFactory | None = None) -> None:
        self.home = home
        self.env: MetaEnv = open_env(home / "meta")
        self.chunks = ChunkCache(home / "chunks", self.env)
        self.params = self._check_format()
        self._objects = _LRU(16384)
        # built from the store's own remote records, read when something is not local
        self.remote = RemoteFetcher(self.env, self.chunks, self._cache_budget(), transport_factory)

    @classmethod
    def open(
        cls, home: Path | None = None, transport_factory: TransportFactory | None = None
    ) -> Store:
        # Absolute: a mount daemon changes directory to / and must find the same store.
        home = (home or default_home()).absolute()
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store at {home}: {exc.strerror}") from exc
        return cls(home, transport_factory)

    def _check_format(self) -> ChunkerParams:
        with self.env.write() as txn:
            fmt = db.get_config(txn, "format")
            if fmt is None:
                db.set_config(txn, "format", STORE_FORMAT)
                db.set_config(txn, "chunker", DEFAULT_PARAMS.as_list())
                return DEFAULT_PARAMS
            if fmt != STORE_FORMAT:
                raise StoreError(
                    f"store at {self.home} has format {fmt}; this mlgitfs reads {STORE_FORMAT}"
                )
            raw = db.get_config(txn, "chunker")
            if not isinstance(raw, list) or len(raw) != 4:
                raise StoreError(f"store at {self.home} has no valid chunker parameters")
            return ChunkerParams(*raw)

    def _cache_budget(self) -> int | None:
        env = os.environ.get(CACHE_SIZE_ENV)
        if env:
            return parse_size(env)
        with self.env.read() as txn:
            value = db.get_config(txn, CACHE_SIZE_KEY)
        return value if isinstance(value, int) and value > 0 else None

    def set_cache_budget(self, size: int | None) -> None:
        """Store the cache's byte budget in the store's config (None: unbounded)."""
        with self.env.write() as txn:
            db.set_config(txn, CACHE_SIZE_KEY, size or 0)
        self.remote.budget = size

    @property
    def run_dir(self) -> Path:
        """Where live mounts leave their records and control sockets."""
        return self.home / "mounts"

    # --- objects --------------------------------------------------------------------------

    def get_object(self, oid: ObjectId) -> Object:
        cached = self._objects.get(bytes(oid))
        if cached is not None:
            return cached
        with self.env.read() as txn:
            data = db.get_object_bytes(txn, oid)
        obj = self.remote.fetch_object(oid) if data is None else decode(data, oid)
        self._objects.put(bytes(oid), obj)
        return obj

    def get_raw(self, oid: ObjectId) -> bytes | None:
        """The object's bytes as stored locally (unchecked: see decode.tree_rows), or None."""
        with self.env.read() as txn:
            data = db.get_object_bytes(txn, oid)
        return None if data is None else bytes(data)

    def get(self, oid: ObjectId, kind: type[T]) -> T:
        obj = self.get_object(oid)
        if not isinstance(obj, kind):
            raise CorruptObject(short_hex(oid), f"expected a {kind.TAG}, found a {type(obj).TAG}")
        return obj

    def has_object(self, oid: ObjectId) -> bool:
        with self.env.read() as txn:
            return db.has_object(txn, oid)

    def commit(self, oid: ObjectId) -> Commit:
        return self.get(oid, Commit)

    def put_objects(self, txn: WriteTxn, objects: Iterable[tuple[ObjectId, bytes]]) -> int:
        return sum(1 for oid, data in objects if db.put_object(txn, oid, data))

    # --- chunks ---------------------------------------------------------------------------

    def chunk_is_local(self, cid: ChunkId) -> bool:
        """Whether the chunk is in the local cache (a read of it needs no network)."""
        return self.chunks.has(cid)

    def read_chunk(self, cid: ChunkId, judged: bool = False) -> bytes:
        """A chunk's verified bytes, fetched on a local miss (`judged`: see
        RemoteFetcher.fetch_chunk)."""
        with self.env.read() as txn:
            loc = self.chunks.location(txn, cid)
        if loc is None:
            return self.remote.fetch_chunk(cid, judged)
        try:
            return self.chunks.read_at(cid, loc)
        except (CorruptObject, MissingObject):
            # A gc may have moved the chunk to a new segment and deleted the old one
            # between our lookup and our read (store/compact.py): look again.
            with self.env.read() as txn:
                moved = self.chunks.location(txn, cid)
            if moved is not None and moved.pack() != loc.pack():
                return self.chunks.read_at(cid, moved)
            # A fetched chunk may be torn by a crash (written without fsync) or its segment
            # evicted since we looked: when a remote has it and it is not pinned, drop the
            # local copy and fetch it again. Anything else is real damage: report it.
            with self.env.read() as txn:
                refetch = not chunks.is_pinned(txn, cid) and remotedb.on_any_remote(
                    txn, CHUNKS, cid
                )
            if not refetch:
                raise
            log.warning("local copy of chunk %s is gone or damaged: fetching it again",
                        short_hex(cid))  # fmt: skip
            self.chunks.forget(cid, loc)
            return self.remote.fetch_chunk(cid, judged)

    def read_local_chunks(self, cids: list[ChunkId]) -> list[tuple[ChunkId, Buffer]]:
        """Those of `cids` that the local cache has and that pass their check, read together
        (a mount's read-ahead of a local file); the others are left to their readers."""
        with self.env.read() as txn:
            found = [(cid, self.chunks.location(txn, cid)) for cid in cids]
        return self.chunks.read_run([(cid, loc) for cid, loc in found if loc is not None])

    def fetch_chunks(
        self, cids: Iterable[ChunkId], deliver: Deliver | None = None, judged: bool = False
    ) -> None:
        """Fetch chunks not in the local cache from the remotes (neighbours of one pack in one
        ranged GET, several GETs in parallel), handing each GET's verified raw bytes to
        `deliver`, and cache them in the background (a mount's read-ahead: the reader does
        not wait for the disk)."""
        with self.env.read() as txn:  # some may have arrived meanwhile (another reader)
            missing = [bytes(c) for c in cids if not chunks.has_chunk(txn, bytes(c))]
        self.remote.fetch_chunks(missing, deliver=deliver, background=True, judged=judged)

    def close(self) -> None:
        self.remote.close()
        self.chunks.close()


def parse_size(text: str) -> int:
    """'512M', '20G', '1024' → bytes (for the cache budget)."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1] if t and t[-1] in units else ""
    try:
        value = float(t[: len(t) - len(unit)] if unit else t)
    except ValueError as exc:
        raise UsageError(f"{text!r} is not a size (examples: 512M, 20G)") from exc
    if value < 0:
        raise UsageError(f"{text!r} is not a size")
    return int(value * units[unit])
