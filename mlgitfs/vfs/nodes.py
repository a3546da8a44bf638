"""The in-memory inode of a writable view, and reads of committed file content chunk by chunk.

A `Node` is one inode of a checkout: where its content lives (a base tree entry in the
store, an overlay file, an inline symlink target), its place in the namespace, and whether
it is materialized (`recorded`: it has a node record in LMDB). `BaseReader` serves reads of
content still in the store: chunks loaded in worker threads, single flight per chunk, kept
in a bounded LRU (the same scheme as the read-only snapshot view).
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import logging
import stat
from dataclasses import dataclass, field

import trio

from mlgitfs.errors import FsError, MlgitError
from mlgitfs.model.ids import ChunkId
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.repo.store import Store
from mlgitfs.repo.trees import file_chunks
from mlgitfs.store.segfile import Buffer
from mlgitfs.vfs.snapshot import ChunkLoader, follows
from mlgitfs.vfs.types import Kind

log = logging.getLogger(__name__)

KIND_OF_ENTRY = {
    EntryKind.FILE: Kind.FILE,
    EntryKind.CHUNKED: Kind.FILE,
    EntryKind.DIR: Kind.DIR,
    EntryKind.SYMLINK: Kind.SYMLINK,
}
TYPE_BITS = {Kind.FILE: stat.S_IFREG, Kind.DIR: stat.S_IFDIR, Kind.SYMLINK: stat.S_IFLNK}


@dataclass(slots=True, eq=False)
class Node:
    ino: int
    kind: Kind
    mode: int  # permission bits
    mtime_ns: int
    parent: int  # 0 once unlinked
    name: bytes
    base: TreeEntry | None  # content (file) or tree (dir) in the store; None when new
    overlay: bool = False  # file content is the overlay file files/<ino>
    target: bytes = b""  # symlink target (new symlinks)
    origin: bytes | None = None  # recorded nodes: the path it had in the base commit
    recorded: bool = False  # materialized: a node record exists in LMDB
    size: int = 0
    children: dict[bytes, int] = field(default_factory=dict)  # dirs: known children
    whiteouts: set[bytes] = field(default_factory=set)  # dirs: base names removed
    overrides: set[bytes] = field(default_factory=set)  # dirs: names with a delta record
    handles: int = 0
    fd: int = -1
    copying: trio.Event | None = None
    layout: tuple[list[int], list[ChunkId]] | None = None
    next_read: int = 0

    @property
    def unlinked(self) -> bool:
        return self.parent == 0 and self.ino != 1

    def set_base(self, entry: TreeEntry | None) -> None:
        self.base = entry
        self.layout = None
        if entry is not None and self.kind is not Kind.DIR:
            self.size = entry.size


class BaseReader:
    """Reads of file content that is still in the store (not materialized)."""

    def __init__(self, store: Store, cache_bytes: int, readahead: int = 4) -> None:
        self.store = store
        self._loader = ChunkLoader(store.read_chunk, cache_bytes)
        self._chunks = self._loader.lru
        self._loading = self._loader.loading
        self._nursery: trio.Nursery | None = None
        self._readahead = readahead

    def attach(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        nursery.start_soon(
            trio.to_thread.run_sync, self.store.remote.warm_up, name="remote-warm-up"
        )

    def _layout(self, node: Node) -> tuple[list[int], list[ChunkId]]:
        if node.layout is None:
            e = node.base
            if e is None or not e.is_file:
                raise FsError(errno.EISDIR if node.kind is Kind.DIR else errno.EINVAL)
            try:
                refs = file_chunks(self.store, e)
            except MlgitError as exc:
                log.error("cannot read the manifest of %r: %s", node.name, exc)
                raise FsError(errno.EIO, str(exc)) from exc
            ends, total = [], 0
            for r in refs:
                total += r.length
                ends.append(total)
            node.layout = (ends, [r.id for r in refs])
        return node.layout

    async def _chunk(self, cid: ChunkId, what: bytes) -> Buffer:
        return await self._loader.load(cid, what)

    async def read(self, node: Node, offset: int, size: int) -> bytes | memoryview:
        ends, ids = self._layout(node)
        total = ends[-1] if ends else 0
        if offset >= total or size <= 0:
            return b""
        end = min(offset + size, total)
        sequential = follows(node.next_read, offset)
        node.next_read = max(node.next_read, end) if sequential else end
        parts = []
        i = bisect.bisect_right(ends, offset)
        while i < len(ids):
            start = ends[i - 1] if i else 0
            if start >= end:
                break
            data = await self._chunk(ids[i], node.name)
            parts.append(memoryview(data)[max(0, offset - start) : end - start])
            i += 1
        if sequential and i < len(ids) and self._nursery is not None:
            for cid in ids[i : i + self._readahead]:
                if self._chunks.get(cid) is None and cid not in self._loading:
                    self._nursery.start_soon(self._prefetch, cid, node.name, name="read-ahead")
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _prefetch(self, cid: ChunkId, what: bytes) -> None:
        with contextlib.suppress(FsError):  # the reader's own read reports it
            await self._chunk(cid, what)
