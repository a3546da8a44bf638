"""The in-memory inode of a writable view, and reads of committed file content chunk by chunk.

A `Node` is one inode of a checkout: where its content lives (a base tree entry in the
store, an overlay file, an inline symlink target), its place in the namespace, and whether
it is materialized (`recorded`: it has a node record in LMDB). `BaseReader` serves reads of
content still in the store through the same `FileReader` as read-only mounts (reader.py:
single flight, read-ahead in runs for local chunks and in windows for remote ones).
"""

from __future__ import annotations

import errno
import logging
import stat
from dataclasses import dataclass, field

import trio

from mlgitfs.errors import FsError
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.store.facade import Store
from mlgitfs.vfs.reader import FileReader, ReadState, judged_reader
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
    ctime_ns: int = 0  # 0: as mtime (an unchanged base entry)
    atime_ns: int = 0  # 0: as mtime; reads never move it (noatime)
    subdirs: int | None = None  # dirs: subdirectories, once counted (None: not yet / changed)
    fd: int = -1
    copying: trio.Event | None = None
    read: ReadState | None = None  # base content, once read

    @property
    def unlinked(self) -> bool:
        return self.parent == 0 and self.ino != 1

    def set_base(self, entry: TreeEntry | None) -> None:
        self.base = entry
        self.read = None
        if entry is not None and self.kind is not Kind.DIR:
            self.size = entry.size


class BaseReader:
    """Reads of file content that is still in the store (not materialized)."""

    def __init__(self, store: Store, cache_bytes: int) -> None:
        self.store = store
        # the view judges each file by occurrence before reading it (OverlayBase.judge)
        self.files = FileReader(store, judged_reader(store), cache_bytes, judged=True)

    def attach(self, nursery: trio.Nursery) -> None:
        self.files.attach(nursery)
        nursery.start_soon(
            trio.to_thread.run_sync, self.store.remote.warm_up, name="remote-warm-up"
        )

    async def _layout(self, node: Node) -> ReadState:
        if node.read is not None:
            return node.read
        e = node.base
        if e is None or not e.is_file:
            raise FsError(errno.EISDIR if node.kind is Kind.DIR else errno.EINVAL)
        state = await self.files.layout(e, node.name)
        if node.read is None and node.base is e:  # unchanged while the manifest was fetched
            node.read = state
        return state

    async def read_parts(self, node: Node, offset: int, size: int) -> list[memoryview]:
        """The base content at `offset`, as views of the chunks it comes from."""
        return await self.files.read_parts(await self._layout(node), offset, size, node.name)
