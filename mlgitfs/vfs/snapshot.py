"""A read-only view of one commit: inodes allocated lazily, file bytes served chunk by chunk.

Nothing is decoded at mount time but the root tree; lookups and listings decode one tree
page at a time (through the store's object cache). The view holds a node only while the
kernel does: each entry given to the kernel (a lookup reply or a readdirplus entry) counts
one lookup, and the kernel's FORGETs take them back; a node at zero with no known children
is dropped, so the daemon's nodes follow what the kernel caches (a walk of 1,000,000 files
held 665 MB of them for good before). Inode numbers are a hash of the path, so a node made
again after a forget gets the number it had: they are stable for the life of the mount
without a table of every path seen. (Two paths hashing alike, odds about n^2 / 2^63, get
a spare number for the second, which may differ after a forget.)

File bytes come through the mount's `FileReader` (reader.py: chunks by offset, single
flight, read-ahead for sequential readers, local and remote).

A training loader reads small files in shuffled order, so nothing is sequential within a
file; but it reads every file of every directory within the epoch. The first remote miss
in a directory therefore fetches that directory's single-chunk files ahead (up to
DIR_PREFETCH bytes, in groups of DIR_GROUP, DIR_GROUPS of them in flight), at most DIR_SLOTS
directories at a time: the epoch becomes a few large coalesced GETs per directory instead of
one round trip per file.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, TypeVar

import trio

from mlgitfs.errors import FileErased, FsError, MlgitError
from mlgitfs.model.ids import ChunkId, InodeNo, ObjectId
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.repo.erasegate import NONE, ErasureGate, Occurrences
from mlgitfs.repo.filedata import batches
from mlgitfs.repo.trees import DirView
from mlgitfs.store.facade import Store
from mlgitfs.vfs.inodes import InodeRange, InodeSpace
from mlgitfs.vfs.prefill import DIR_PREFILL, PREFILL_FILE_MAX, DirPrefiller, Prefill
from mlgitfs.vfs.reader import (
    ChunkReader,
    FileReader,
    ReadState,
    explained,
    judged_reader,
    refused,
)
from mlgitfs.vfs.types import ROOT_INODE, Attr, FsView, Kind, Origin, StatFs, WritableFsView

log = logging.getLogger(__name__)

_R = TypeVar("_R")
DIR_PREFETCH = 256 << 20
DIR_GROUP = 16 << 20  # a shuffled reader waits for the group holding its file: keep it small
DIR_SLOTS = 2
DIR_GROUPS = 4  # groups of one directory in flight (clone + tree read: 1 -> 3, 1.35x; 6 ~ 3)


@dataclass(slots=True)
class _Node:
    ino: InodeNo
    parent: InodeNo
    entry: TreeEntry | None  # None for the root
    path: str
    children: dict[bytes, InodeNo] = field(default_factory=dict)  # the ones the view holds
    lookups: int = 0  # entries the kernel was given and has not forgotten
    read: ReadState | None = None  # files, once read


class SnapshotView:
    """A read-only `FsView` of the tree of one commit."""

    def __init__(
        self,
        store: Store,
        tree: ObjectId,
        *,
        time_ns: int,
        chunk_reader: ChunkReader | None = None,
        cache_bytes: int = 256 << 20,
        uid: int | None = None,
        gid: int | None = None,
        writable_bits: bool = False,
        reader: FileReader | None = None,
        inodes: InodeRange | None = None,
        warm_up: bool = True,
        prefill: Prefill | None = None,
        commit: ObjectId | None = None,
        repo: str = "",
        prefix: str = "",
    ) -> None:
        """`reader`: a `FileReader` shared with other views of the same store (one chunk
        cache for several versions); `inodes`: the range its inode numbers stay in (its
        inner numbers, vfs/inodes.py: a multi-version mount gives each version a range of
        its own and shifts them, vfs/multi.py); None: the first range of a space of its own;
        `warm_up`: open the remotes' transports on attach (once per mount is enough);
        `prefill`: hands files to the kernel's page cache (vfs/prefill.py); None: never;
        `commit` and `repo`: the version shown, so that a read of contents gc let go because
        the version expired says so (EIO, with the rule in the log); `prefix`: the path of
        the shown directory inside the commit (a sub-path mount), for `origin`."""
        self.store = store
        self._prefix = prefix + "/" if prefix else ""
        self.commit = commit
        self.repo = repo
        self.tree = tree
        self.time_ns = time_ns
        # with a commit, each file is judged by occurrence before it is read (erasegate.py)
        self._gate = None if commit is None else ErasureGate(store.env)
        judged = self._gate is not None
        self.read_chunk: ChunkReader = chunk_reader or (
            judged_reader(store) if judged else store.read_chunk
        )
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self._mode_mask = 0o777 if writable_bits else 0o555
        self._nodes: dict[int, _Node] = {ROOT_INODE: _Node(ROOT_INODE, ROOT_INODE, None, "")}
        # Path hashes below half the range, spares (collisions) above.
        ino_limit = (InodeSpace().take() if inodes is None else inodes).size
        self._hashed_inos = ino_limit >> 1
        self._ino_limit = ino_limit
        self._spare_ino = self._hashed_inos
        self._reader = reader or FileReader(store, self.read_chunk, cache_bytes, judged)
        self._chunks = self._reader.chunks
        self._limiter = self._reader.loader.limiter  # loads that may wait for the network
        self._dir_slots = trio.CapacityLimiter(DIR_SLOTS)
        self._dirs_ahead: set[int] = set()  # directories whose files were fetched ahead
        self._nursery: trio.Nursery | None = None
        self._prefiller = (
            None if prefill is None else DirPrefiller(self.store, self.read_chunk, prefill)
        )
        self._warm_up_on_attach = warm_up

    def attach(self, nursery: trio.Nursery) -> None:
        """Give the view a nursery for background read-ahead (the daemon's)."""
        self._nursery = nursery
        self._reader.attach(nursery)
        if self._warm_up_on_attach:
            nursery.start_soon(self._warm_up, name="remote-warm-up")

    async def _warm_up(self) -> None:
        await trio.to_thread.run_sync(self.store.remote.warm_up, limiter=self._limiter)

    # --- inodes and attributes ------------------------------------------------------------

    def is_dynamic(self, ino: InodeNo) -> bool:
        return False  # a version never changes

    def writable(self) -> WritableFsView | None:
        return None

    def origin(self, ino: InodeNo) -> Origin | None:
        """(repo, commit, path in the commit) of a file the kernel holds, for read-set
        recording (daemon/recorder.py); None for a directory or an unknown version."""
        node = self._nodes.get(ino)
        if node is None or node.entry is None or self.commit is None or not node.entry.is_file:
            return None
        return self.repo, bytes(self.commit), self._prefix + node.path

    def _node(self, ino: InodeNo) -> _Node:
        node = self._nodes.get(ino)
        if node is None:
            raise FsError(errno.ENOENT, f"inode {ino} is unknown")
        return node

    def _dir_ref(self, node: _Node) -> ObjectId:
        if node.entry is None:
            return self.tree
        if node.entry.kind is not EntryKind.DIR:
            raise FsError(errno.ENOTDIR)
        return ObjectId(node.entry.ref)

    def _enter(self, parent: _Node, entry: TreeEntry) -> _Node:
        """The child's node, made if the view does not hold it, with one more lookup: call
        only for an entry that goes to the kernel."""
        ino = parent.children.get(entry.name)
        if ino is not None:
            node = self._nodes[ino]
        else:
            sep = "/" if parent.path else ""
            path = parent.path + sep + os.fsdecode(entry.name)
            node = _Node(self._ino_for(path), parent.ino, entry, path)
            self._nodes[node.ino] = node
            parent.children[entry.name] = node.ino
        node.lookups += 1
        return node

    def _ino_for(self, path: str) -> InodeNo:
        digest = hashlib.blake2b(os.fsencode(path), digest_size=8).digest()
        ino = int.from_bytes(digest, "little") % self._hashed_inos
        if ino <= ROOT_INODE or ino in self._nodes:  # taken: by another path, as it was new
            if self._spare_ino + 1 >= self._ino_limit:
                raise FsError(errno.ENOSPC, "no inode number left in this version's range")
            self._spare_ino += 1
            ino = self._spare_ino
        return InodeNo(ino)

    def forget(self, items: Iterable[tuple[InodeNo, int]]) -> None:
        """The kernel's FORGET: it dropped `n` lookups of each inode. A node left with none
        and no held children goes, and so may its parent (the kernel forgets children
        first, but one batch may list a parent before its child)."""
        for ino, n in items:
            node = self._nodes.get(ino)
            if node is None or ino == ROOT_INODE:
                continue
            node.lookups -= n
            while node.lookups <= 0 and not node.children and node.ino != ROOT_INODE:
                del self._nodes[node.ino]
                parent = self._nodes[node.parent]
                assert node.entry is not None  # only the root has none
                del parent.children[node.entry.name]
                node = parent

    def held(self) -> int:
        """Nodes the view holds for the kernel, the root aside."""
        return len(self._nodes) - 1

    def _attr(self, node: _Node) -> Attr:
        e = node.entry
        if e is None:
            return Attr(
                ROOT_INODE,
                Kind.DIR,
                stat.S_IFDIR | 0o755 & self._mode_mask,
                0,
                self.time_ns,
                2,
                self.uid,
                self.gid,
            )
        if e.kind is EntryKind.DIR:
            return Attr(
                node.ino,
                Kind.DIR,
                stat.S_IFDIR | (e.mode & (self._mode_mask | stat.S_ISVTX)),  # sticky kept
                e.size,
                e.mtime_ns,
                2,
                self.uid,
                self.gid,
            )
        if e.kind is EntryKind.SYMLINK:
            return Attr(
                node.ino,
                Kind.SYMLINK,
                stat.S_IFLNK | 0o777,
                e.size,
                e.mtime_ns,
                1,
                self.uid,
                self.gid,
            )
        return Attr(
            node.ino,
            Kind.FILE,
            stat.S_IFREG | (e.mode & self._mode_mask),
            e.size,
            e.mtime_ns,
            1,
            self.uid,
            self.gid,
        )

    def getattr(self, ino: InodeNo) -> Attr:
        return self._attr(self._node(ino))

    def lookup(self, parent: InodeNo, name: bytes) -> Attr:
        pnode = self._node(parent)
        if name in (b".", b".."):  # counted like any other entry the kernel is given
            node = pnode if name == b"." else self._node(pnode.parent)
            node.lookups += 1
            return self._attr(node)
        ino = pnode.children.get(name)
        if ino is not None:
            node = self._nodes[ino]
            node.lookups += 1
            return self._attr(node)
        if len(name) > 255:
            raise FsError(errno.ENAMETOOLONG)
        entry = self._guard(lambda: DirView(self.store, self._dir_ref(pnode)).lookup(name), pnode)
        if entry is None:
            raise FsError(errno.ENOENT)
        return self._attr(self._enter(pnode, entry))

    def readdir(self, ino: InodeNo, offset: int) -> Iterator[tuple[bytes, Attr, int]]:
        node = self._node(ino)
        entries = self._guard(
            lambda: list(DirView(self.store, self._dir_ref(node)).entries(offset)), node
        )
        # Each entry counts as a lookup (readdirplus): a caller that does not pass one on to
        # the kernel gives it back with forget.
        for i, entry in enumerate(entries, start=offset + 1):
            yield entry.name, self._attr(self._enter(node, entry)), i

    def readlink(self, ino: InodeNo) -> bytes:
        e = self._node(ino).entry
        if e is None or e.kind is not EntryKind.SYMLINK:
            raise FsError(errno.EINVAL)
        return e.ref

    def statfs(self) -> StatFs:
        st = os.statvfs(self.store.home)
        return StatFs(st.f_frsize, st.f_blocks, 0, len(self._nodes), 0, 255)

    def close(self) -> None:
        """Nothing to release: the store is its opener's to close."""

    def _guard(self, fn: Callable[[], _R], node: _Node) -> _R:
        try:
            return fn()
        except FsError:
            raise
        except MlgitError as exc:
            log.error("cannot read directory %r: %s", node.path, exc)
            raise FsError(errno.EIO, str(exc)) from exc

    # --- reads ----------------------------------------------------------------------------

    def _path_in_commit(self, path: str) -> bytes:
        return os.fsencode(self._prefix + path)

    def _erased(self, erased: Occurrences, path: str, file_id: bytes) -> bool:
        at = self._path_in_commit(path)
        return self.commit is not None and erased.erasure(self.commit, at, file_id) is not None

    async def _layout(self, node: _Node) -> ReadState:
        if node.read is None:
            e = node.entry
            if e is None or not e.is_file:
                raise FsError(errno.EISDIR if e is None or e.is_dir else errno.EINVAL)
            if self._gate is not None and self.commit is not None:  # once per file read
                try:
                    self._gate.check(self.repo, self.commit, self._path_in_commit(node.path),
                                     bytes(e.ref))  # fmt: skip
                except FileErased as err:  # logged here: not explained again by read_parts
                    raise refused(err, node.path) from None
            state = await self._reader.layout(e, node.path)
            if node.read is None:  # not made by another reader while this one waited
                node.read = state
        return node.read

    async def read(self, ino: InodeNo, offset: int, size: int) -> bytes | memoryview:
        parts = await self.read_parts(ino, offset, size)
        if not parts:
            return b""
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def read_parts(self, ino: InodeNo, offset: int, size: int) -> list[memoryview]:
        node = self._node(ino)
        try:
            state = await self._layout(node)
            parts = await self._reader.read_parts(
                state, offset, size, node.path, partial(self._fetch_dir_ahead, node)
            )
        except FsError as exc:
            raise self._explained(exc, node) from exc.__cause__
        total = state.offsets[-1] if state.offsets else 0
        if self._prefiller is not None and self._nursery is not None and total <= PREFILL_FILE_MAX:
            parent = self._nodes.get(node.parent)  # None: forgotten while this read waited
            if parent is not None:
                self._prefiller.start(
                    self._nursery, parent.ino, partial(self._prefill_list, parent)
                )
        return parts

    def _explained(self, exc: FsError, node: _Node) -> FsError:
        """EIO from a missing chunk of an erased file or an expired version: logged with the
        erasure or the rule that let it go (the daemon log; `mlgitfs mounts` shows the
        version as expired)."""
        if self.commit is None:
            return exc
        ref = None if node.entry is None else bytes(node.entry.ref)
        return explained(exc, self.store, self.repo, self.commit, node.path, ref)

    def _unread_small_files(self, parent: _Node) -> Iterator[tuple[InodeNo, ChunkId, int]]:
        """(inode, chunk, size) of the small single-chunk files of a directory that the
        kernel knows and no one has read yet, in listing order: what may be prefilled."""
        erased = NONE if self._gate is None else self._gate.current()
        for ino in parent.children.values():
            child = self._nodes[ino]
            e = child.entry
            if e is None or e.kind is not EntryKind.FILE or child.read is not None:
                continue
            if 0 < e.size <= PREFILL_FILE_MAX and not self._erased(erased, child.path, e.ref):
                yield InodeNo(ino), ChunkId(e.ref), e.size

    def _prefill_list(self, parent: _Node) -> list[tuple[InodeNo, ChunkId, int]]:
        """The directory's prefillable files, up to DIR_PREFILL bytes."""
        out, total = [], 0
        for ino, cid, size in self._unread_small_files(parent):
            out.append((ino, cid, size))
            total += size
            if total >= DIR_PREFILL:
                break
        return out

    def _fetch_dir_ahead(self, node: _Node) -> None:
        """On the first remote miss in a directory, fetch its other small files ahead."""
        if self._nursery is None or node.parent in self._dirs_ahead:
            return
        parent = self._nodes.get(node.parent)
        if parent is None:  # forgotten while the read waited
            return
        self._dirs_ahead.add(node.parent)
        self._nursery.start_soon(self._dir_ahead, parent, name="dir-ahead")

    async def _dir_ahead(self, parent: _Node) -> None:
        try:
            self._dir_slots.acquire_nowait()
        except trio.WouldBlock:
            self._dirs_ahead.discard(parent.ino)  # busy: a later miss there tries again
            return
        try:
            ref = self._dir_ref(parent)

            def remote_chunks() -> list[tuple[ChunkId, int]]:
                out, total = [], 0
                erased = NONE if self._gate is None else self._gate.current()
                sep = "/" if parent.path else ""
                for e in DirView(self.store, ref).entries():
                    if e.kind is not EntryKind.FILE or self.store.chunk_is_local(ChunkId(e.ref)):
                        continue
                    if not self._erased(erased, parent.path + sep + os.fsdecode(e.name), e.ref):
                        out.append((ChunkId(e.ref), e.size))
                        total += e.size
                        if total >= DIR_PREFETCH:
                            break
                return out

            todo = await trio.to_thread.run_sync(remote_chunks, limiter=self._limiter)
            wanted = ((cid, length) for cid, length in todo if self._reader.wanted(cid))
            # Several groups in flight: one at a time, a reader walking the directory in
            # order waited on each GET's latency (130 MB/s where a large file streams at
            # 400); trio's limiter is fair, so they start in listing order.
            slots = trio.CapacityLimiter(DIR_GROUPS)
            async with trio.open_nursery() as nursery:
                for group in batches(wanted, DIR_GROUP):
                    if group:
                        cids = [cid for cid, _ in group]
                        nursery.start_soon(self._dir_group, cids, parent, slots)
        except MlgitError as exc:  # the readers' own reads report problems
            log.debug("fetching ahead in %r failed: %s", parent.path, exc)
        finally:
            self._dir_slots.release()

    async def _dir_group(
        self, group: list[ChunkId], parent: _Node, slots: trio.CapacityLimiter
    ) -> None:
        async with slots:
            try:
                await self._reader.fetch_now(group, parent.path)
                await self._prefill_fetched(group, parent)
            except MlgitError as exc:  # the readers' own reads report problems
                log.debug("fetching ahead in %r failed: %s", parent.path, exc)

    async def _prefill_fetched(self, cids: list[ChunkId], parent: _Node) -> None:
        """Hand the files of a fetched group to the kernel's page cache (vfs/prefill.py)."""
        if self._prefiller is None:
            return
        wanted = set(cids)
        files = []
        for ino, cid, size in self._unread_small_files(parent):
            data = self._chunks.get(cid) if cid in wanted else None
            if data is not None and len(data) == size:  # else its read reports the lie
                files.append((ino, data))
        if files:
            await trio.to_thread.run_sync(
                self._prefiller.prefill_fetched, files, limiter=self._limiter
            )


if TYPE_CHECKING:  # mypy holds the view to the whole protocol the daemon serves
    _AS_VIEW: type[FsView] = SnapshotView
