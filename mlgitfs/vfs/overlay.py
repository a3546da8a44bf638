"""A writable view of a branch: the base commit plus a durable copy-on-write overlay.

EdenFS materialization (design §5): an inode is served from the base commit until it
changes. The first write to a file copies it into the overlay (`files/<ino>` under the
checkout's overlay dir; written and fsynced before anything names it); creating, removing,
renaming and chmod record the inode and its ancestors as materialized in one small LMDB
transaction (node records and directory deltas, see checkout.py). Plain writes go straight to
the overlay file (write-through, so `fsync` is a real fsync) and never touch LMDB: size and
mtime are the overlay file's own.

Mutating operations pass a gate: a commit or restore freezes it, waits for the operations in
flight, and releases it when done, so a write lands in this commit or the next, never
nowhere. Everything between two `await`s runs without a checkpoint, so in-memory changes and
the transaction that records them are atomic with respect to a commit.

Hard links and xattrs are refused (EPERM, ENOTSUP): a tree entry has one name, and extended
attributes are not versioned. See docs/overlay.md.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from typing import TYPE_CHECKING

import trio

from mlgitfs.errors import FsError, MlgitError
from mlgitfs.model.ids import InodeNo
from mlgitfs.model.names import MAX_NAME
from mlgitfs.model.objects import DIR_MODE_MASK, PERM_MASK, TreeEntry, clamp_time_ns
from mlgitfs.repo.trees import MAX_DEPTH, MAX_PATH, file_chunks
from mlgitfs.vfs.journal import Batch
from mlgitfs.vfs.nodes import Node
from mlgitfs.vfs.overlay_base import OverlayBase
from mlgitfs.vfs.overlay_state import Handle, now_ns
from mlgitfs.vfs.types import ROOT_INODE, Attr, Caller, FsView, Kind, WritableFsView

log = logging.getLogger(__name__)

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4


def _check_dir_path(path: bytes) -> None:
    """A directory the format's readers would refuse (trees.walk) is refused when it is made
    or moved, not written into a version nobody can read back."""
    if path.count(b"/") + 1 >= MAX_DEPTH or len(path) + 1 > MAX_PATH:
        raise FsError(errno.ENAMETOOLONG, f"deeper than {MAX_DEPTH} levels or {MAX_PATH} bytes")


__all__ = ["Batch", "Handle", "WritableView", "now_ns"]


class WritableView(OverlayBase):
    """A read-write `FsView` of one checkout (repo@branch)."""

    def writable(self) -> WritableFsView | None:
        return self

    # --- copy-up and writes -------------------------------------------------------------------

    def _write_copy(self, ino: int, entry: TreeEntry | None, size: int) -> None:
        """Worker thread: the overlay file with the committed bytes (up to size)."""
        self.io.make(ino, lambda fd: self._copy_into(fd, entry, size))

    def _copy_into(self, fd: int, entry: TreeEntry | None, size: int) -> None:
        done = 0
        if entry is not None and size > 0:
            for ref in file_chunks(self.store, entry):
                if done >= size:
                    break
                data = self.store.read_chunk(ref.id, judged=True)[: size - done]  # copy_up
                view = memoryview(data)
                while view:
                    n = self.io.write(fd, view)
                    view = view[n:]
                done += len(data)
        if done < size:
            self.io.ftruncate(fd, size)
        if entry is not None:
            self.io.futime(fd, entry.mtime_ns)

    async def copy_up(self, node: Node, size: int | None = None) -> None:
        """Materialize a file's content: overlay file first, then its record (crash order).
        If either fails, the file stays served from the store and no overlay file remains."""
        while node.copying is not None:
            await node.copying.wait()
        if node.overlay or node.unlinked and node.base is None:
            return
        keep = node.size if size is None else min(size, node.size)
        if keep > 0 and node.base is not None and node.base.is_file:
            self.judge(node, node.base)  # an erased file's bytes are not copied up
        event = node.copying = trio.Event()
        try:
            try:
                await trio.to_thread.run_sync(
                    self._write_copy, node.ino, node.base, keep, limiter=self.io_limiter
                )
            except (OSError, MlgitError) as exc:
                log.error("cannot copy %r into the overlay: %s", self.path_of(node), exc)
                code = exc.errno if isinstance(exc, OSError) and exc.errno else errno.EIO
                raise FsError(code, f"copy into the overlay: {exc}") from exc
            # No checkpoint from here to the end of the change: memory and record together.
            try:
                with self.change() as batch:
                    batch.save(node)
                    node.overlay = True
                    node.size = keep if size is None else size
                    node.read = None
                    if not node.unlinked:
                        self.materialize(node, batch)
            except BaseException:
                self.io.discard(node.ino)
                raise
        finally:
            node.copying = None
            event.set()

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        async with self.mutating():
            h, node = self.handle(fh)
            if not node.overlay:
                # Asked at open too; again here because the file may have been renamed onto a
                # committed path since (with its committed bytes: a rename allows that).
                self.check_content("write", node, h.caller)
                await self.copy_up(node)
            view = memoryview(data)
            done = 0
            try:
                fd = self.fd(node)
                while done < len(data):
                    done += self.io.pwrite(fd, view[done:], offset + done)
            except OSError as exc:  # EFBIG, ENOSPC, EDQUOT: the caller's error, not ours
                if not done:
                    raise FsError(exc.errno or errno.EIO, f"overlay write: {exc.strerror}") from exc
            node.size = max(node.size, offset + done)
            # The file's own mtime, which a remount reads back (not a clock read of ours).
            node.mtime_ns = os.fstat(fd).st_mtime_ns
            return done

    async def truncate(self, node: Node, size: int, caller: Caller | None = None) -> None:
        if node.kind is Kind.DIR:
            raise FsError(errno.EISDIR)
        if node.kind is not Kind.FILE:
            raise FsError(errno.EINVAL)
        if not node.overlay:
            if size == node.size:
                return
            self.check_content("truncate", node, caller)
            await self.copy_up(node, size)
        try:
            self.io.truncate(node.ino, size)
        except OSError as exc:
            raise FsError(exc.errno or errno.EIO, f"overlay truncate: {exc.strerror}") from exc
        node.size = size
        node.mtime_ns = os.stat(self.io.path(node.ino)).st_mtime_ns

    async def fsync(self, fh: int, datasync: bool) -> None:
        async with self.mutating():
            _, node = self.handle(fh)
            if node.overlay:
                fd = self.fd(node)
                sync = self.io.fdatasync if datasync else self.io.fsync
                try:
                    await trio.to_thread.run_sync(sync, fd, limiter=self.io_limiter)
                except OSError as exc:
                    raise FsError(exc.errno or errno.EIO, f"overlay fsync: {exc.strerror}") from exc

    # --- opening and creating -----------------------------------------------------------------

    def _new_handle(self, node: Node, write: bool, caller: Caller | None) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self._handles[fh] = Handle(node.ino, write, caller)
        node.handles += 1
        return fh

    async def open(self, ino: InodeNo, flags: int, caller: Caller | None = None) -> int:
        node = self.node(ino)
        if node.kind is Kind.DIR:
            raise FsError(errno.EISDIR)
        write = flags & os.O_ACCMODE != os.O_RDONLY
        if write or flags & os.O_TRUNC:
            self.check_content("write", node, caller)
        if flags & os.O_TRUNC:
            async with self.mutating():
                await self.truncate(node, 0, caller)
        return self._new_handle(node, write, caller)

    def release(self, fh: int) -> None:
        h = self._handles.pop(fh, None)
        if h is None:
            return
        node = self.nodes[h.ino]
        node.handles -= 1
        if node.handles == 0:
            if node.fd >= 0:
                os.close(node.fd)
                node.fd = -1
            if node.unlinked:
                self.drop_data(node)

    def _check_new(
        self, d: Node, name: bytes, op: str = "", kind: Kind = Kind.FILE,
        caller: Caller | None = None,
    ) -> None:  # fmt: skip
        if len(name) > MAX_NAME:
            raise FsError(errno.ENAMETOOLONG)
        if not name or b"/" in name or name in (b".", b".."):
            raise FsError(errno.EINVAL)
        if self.find(d, name) is not None:
            raise FsError(errno.EEXIST)
        if op:
            # A file or symlink made where the base commit has a file gives it new content
            # (unlink then create); a directory there is a removal plus an addition.
            path = self.path_of(d)
            path = path + b"/" + name if path else name
            if kind is Kind.DIR:
                _check_dir_path(path)
            replaces = kind is not Kind.DIR and self.committed_file(path) is not None
            self.check(op, path, replaces, caller)

    async def create(
        self, parent: InodeNo, name: bytes, mode: int, flags: int, caller: Caller | None = None
    ) -> tuple[int, Attr]:
        async with self.mutating():
            d = self.dir(parent)
            self._check_new(d, name, "create", Kind.FILE, caller)
            ino = self.alloc()
            try:
                await trio.to_thread.run_sync(self.io.make, ino, None, limiter=self.io_limiter)
            except OSError as exc:
                raise FsError(exc.errno or errno.EIO, f"overlay: {exc.strerror}") from exc
            node = Node(ino, Kind.FILE, mode & PERM_MASK, now_ns(), 0, name, None, overlay=True)
            try:
                self._check_new(d, name)  # a checkpoint passed: check again before linking
                with self.change() as batch:
                    batch.put(self.nodes, ino, node)
                    self.link_name(d, name, node, batch)
            except BaseException:
                self.io.discard(ino)
                raise
            write = flags & os.O_ACCMODE != os.O_RDONLY
            return self._new_handle(node, write, caller), self.attr(node)

    async def mkdir(
        self, parent: InodeNo, name: bytes, mode: int, caller: Caller | None = None
    ) -> Attr:
        async with self.mutating():
            d = self.dir(parent)
            self._check_new(d, name, "mkdir", Kind.DIR, caller)
            node = Node(self.alloc(), Kind.DIR, mode & DIR_MODE_MASK, now_ns(), 0, name, None)
            with self.change() as batch:
                batch.put(self.nodes, node.ino, node)
                self.link_name(d, name, node, batch)
            return self.attr(node)

    async def symlink(
        self, parent: InodeNo, name: bytes, target: bytes, caller: Caller | None = None
    ) -> Attr:
        async with self.mutating():
            d = self.dir(parent)
            self._check_new(d, name, "symlink", Kind.SYMLINK, caller)
            if not target or len(target) > 4096 or b"\0" in target:
                raise FsError(errno.ENAMETOOLONG if len(target) > 4096 else errno.EINVAL)
            node = Node(self.alloc(), Kind.SYMLINK, 0o777, now_ns(), 0, name, None,
                        target=target)  # fmt: skip
            with self.change() as batch:
                batch.put(self.nodes, node.ino, node)
                self.link_name(d, name, node, batch)
            return self.attr(node)

    # --- removing and renaming ----------------------------------------------------------------

    async def unlink(self, parent: InodeNo, name: bytes, caller: Caller | None = None) -> None:
        async with self.mutating():
            d = self.dir(parent)
            node = self.find(d, name)
            if node is None:
                raise FsError(errno.ENOENT)
            if node.kind is Kind.DIR:
                raise FsError(errno.EISDIR)
            self.check("unlink", self.path_of(node), False, caller)
            with self.change() as batch:
                self.unlink_name(d, name, batch)
                self.touch_dir(d, batch)
                self.orphan(node, batch)

    async def rmdir(self, parent: InodeNo, name: bytes, caller: Caller | None = None) -> None:
        async with self.mutating():
            d = self.dir(parent)
            node = self.find(d, name)
            if node is None:
                raise FsError(errno.ENOENT)
            if node.kind is not Kind.DIR:
                raise FsError(errno.ENOTDIR)
            self.check("rmdir", self.path_of(node), False, caller)
            if not self.is_empty(node):
                raise FsError(errno.ENOTEMPTY)
            with self.change() as batch:
                self.unlink_name(d, name, batch)
                self.touch_dir(d, batch)
                self.orphan(node, batch)

    def _is_ancestor(self, a: Node, b: Node) -> bool:
        node = b
        while True:
            if node is a:
                return True
            if node.ino == ROOT_INODE or node.parent == 0:
                return False
            node = self.nodes[node.parent]

    def _lands(self, node: Node, path: bytes) -> bool:
        """Whether putting `node` at `path` gives a committed file there different content."""
        entry = self.committed_file(path)
        if entry is None or node.kind is Kind.DIR:
            return False  # a directory over a file: removal plus addition
        if node.kind is Kind.FILE and not node.overlay and node.base is not None:
            return (node.base.kind, node.base.ref) != (entry.kind, entry.ref)
        return True

    async def rename(
        self, p_old: InodeNo, old: bytes, p_new: InodeNo, new: bytes, flags: int,
        caller: Caller | None = None,
    ) -> None:  # fmt: skip
        async with self.mutating():
            if flags & RENAME_WHITEOUT or flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE):
                raise FsError(errno.EINVAL, "RENAME_WHITEOUT is for overlay filesystems")
            if flags & RENAME_EXCHANGE and flags & RENAME_NOREPLACE:
                raise FsError(errno.EINVAL)
            d1, d2 = self.dir(p_old), self.dir(p_new)
            if len(new) > MAX_NAME:
                raise FsError(errno.ENAMETOOLONG)
            src = self.find(d1, old)
            if src is None:
                raise FsError(errno.ENOENT)
            dst = self.find(d2, new)
            if dst is src:
                return
            if dst is not None and flags & RENAME_NOREPLACE:
                raise FsError(errno.EEXIST)
            if flags & RENAME_EXCHANGE:
                if dst is None:
                    raise FsError(errno.ENOENT)
                await self._exchange(d1, old, src, d2, new, dst, caller)
                return
            if src.kind is Kind.DIR and self._is_ancestor(src, d2):
                raise FsError(errno.EINVAL)
            if dst is not None:
                if src.kind is Kind.DIR and dst.kind is not Kind.DIR:
                    raise FsError(errno.ENOTDIR)
                if src.kind is not Kind.DIR and dst.kind is Kind.DIR:
                    raise FsError(errno.EISDIR)
                if dst.kind is Kind.DIR and not self.is_empty(dst):
                    raise FsError(errno.ENOTEMPTY)
            to = self.path_of(d2)
            to = to + b"/" + new if to else new
            if src.kind is Kind.DIR:
                _check_dir_path(to)
            self.check("rename", to, self._lands(src, to), caller)
            # No checkpoint from here on: the rename is atomic in memory and in one txn.
            with self.change() as batch:
                batch.save(src)
                if not src.recorded:
                    src.origin = self.base_path(src)
                self.unlink_name(d1, old, batch)
                self.touch_dir(d1, batch)
                if dst is not None:
                    self.unlink_name(d2, new, batch)
                    self.orphan(dst, batch)
                self.link_name(d2, new, src, batch)
                src.ctime_ns = now_ns()

    async def _exchange(
        self, d1: Node, old: bytes, src: Node, d2: Node, new: bytes, dst: Node,
        caller: Caller | None,
    ) -> None:  # fmt: skip
        """RENAME_EXCHANGE: the two names swap their inodes, atomically, in one txn."""
        if (src.kind is Kind.DIR and self._is_ancestor(src, d2)) or (
            dst.kind is Kind.DIR and self._is_ancestor(dst, d1)
        ):
            raise FsError(errno.EINVAL)
        p1, p2 = self.path_of(src), self.path_of(dst)
        self.check("rename", p2, self._lands(src, p2), caller)
        self.check("rename", p1, self._lands(dst, p1), caller)
        with self.change() as batch:
            for n in (src, dst):
                batch.save(n)
                if not n.recorded:
                    n.origin = self.base_path(n)
            self.link_name(d2, new, src, batch)
            self.link_name(d1, old, dst, batch)
            src.ctime_ns = dst.ctime_ns = now_ns()

    async def link(self, ino: InodeNo, parent: InodeNo, name: bytes) -> Attr:
        raise FsError(errno.EPERM, "hard links are not supported on mlgitfs mounts")

    # --- attributes: chmod, truncate, utimens -------------------------------------------------

    async def setattr(
        self,
        ino: InodeNo,
        *,
        mode: int | None = None,
        size: int | None = None,
        mtime_ns: int | None = None,
        atime_ns: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        caller: Caller | None = None,
    ) -> Attr:
        if mtime_ns is not None:
            # clamped to what a tree holds, as the kernel clamps times to what a file
            # system's inodes hold: a later commit never writes a time it cannot read back
            mtime_ns = clamp_time_ns(mtime_ns)
        async with self.mutating():
            node = self.node(ino)
            if (uid is not None and uid != self.uid) or (gid is not None and gid != self.gid):
                raise FsError(errno.EPERM, "files of a mount belong to the mount's owner")
            if mode is not None and node.kind is not Kind.SYMLINK:
                if mode & (stat.S_ISUID | stat.S_ISGID):
                    raise FsError(errno.EPERM, "setuid and setgid are not kept in a version")
                if mode & stat.S_ISVTX and node.kind is not Kind.DIR:
                    raise FsError(errno.EPERM, "the sticky bit is kept on directories only")
            self.check("setattr", self.path_of(node), False, caller)
            if size is not None:
                await self.truncate(node, size, caller)
            with self.change() as batch:
                batch.save(node)
                if mode is not None and node.kind is not Kind.SYMLINK:
                    mask = DIR_MODE_MASK if node.kind is Kind.DIR else PERM_MASK
                    node.mode = stat.S_IMODE(mode) & mask
                    if not node.unlinked:
                        self.materialize(node, batch)
                if mtime_ns is not None:
                    if node.overlay:
                        before = node.mtime_ns
                        try:
                            self.io.utime(node.ino, mtime_ns)
                        except OSError as exc:
                            code = exc.errno or errno.EIO
                            raise FsError(code, f"overlay utimens: {exc.strerror}") from exc
                        batch.undo(lambda: self._set_file_mtime(node, before))
                    node.mtime_ns = mtime_ns
                if atime_ns is not None:
                    node.atime_ns = atime_ns
                if (mtime_ns is not None or atime_ns is not None) and not node.unlinked:
                    self.materialize(node, batch)  # the times are in the node record
                # Every attribute change moves ctime (as on ext4), kept in the node record.
                node.ctime_ns = max(now_ns(), node.mtime_ns)
            return self.attr(node)

    def _set_file_mtime(self, node: Node, mtime_ns: int) -> None:
        """Undo of a utimens whose records failed: the overlay file's mtime back."""
        try:
            self.io.utime(node.ino, mtime_ns)
        except OSError as exc:
            log.error("cannot restore the mtime of inode %d: %s", node.ino, exc)


if TYPE_CHECKING:  # mypy holds the view to both protocols the daemon serves it through
    _AS_VIEW: type[FsView] = WritableView
    _AS_WRITABLE: type[WritableFsView] = WritableView
