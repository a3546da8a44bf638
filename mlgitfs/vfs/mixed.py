"""Writable branches beside read-only versions in one mount: `mlgitfs mount ds MNT --write dev`.

`MixedView` is a `VersionsView` (vfs/multi.py) in which the `@BRANCH/` directory of each
branch mounted writable is that branch's checkout (a `CheckoutFsView`, the same view a
mount of the branch alone serves: overlay, policies, control verbs), not a version. It is
the `WritableFsView` the daemon serves: every request is routed by the range of its inode
number (vfs/inodes.py) to the checkout that holds it, shifting the checkout's own numbers
into its range and back, or to the versions, where a change is refused with EROFS.

Ranges: the mount's own directories take the first (the root), each checkout the next one,
taken when the mount is made; versions take theirs as they are opened. So no two parts ever
hand out one number, and a checkout's recorded numbers (the same record as a mount of the
branch alone) are shown shifted into its range.

Handles: a checkout's file and directory handles are its own, a version's are its inode
(vfs/snapshot.py reads by inode); the mount hands out handles of its own and keeps which
part each one is for. A rename between two checkouts is EXDEV (`mv` copies then), one
between a checkout and a version EROFS.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import trio

from mlgitfs.errors import FsError
from mlgitfs.model.ids import InodeNo
from mlgitfs.store.facade import Store
from mlgitfs.vfs.inodes import InodeRange, InodeSpace
from mlgitfs.vfs.multi import Source, VersionsView
from mlgitfs.vfs.types import (
    ROOT_INODE,
    Attr,
    Caller,
    CheckoutFsView,
    Origin,
    StatFs,
    WritableFsView,
)

log = logging.getLogger(__name__)


def _refused() -> FsError:
    return FsError(errno.EROFS, "a version never changes: only the writable branches do")


class MixedView(VersionsView):
    """Versions, read-only, and writable checkouts among them (`@BRANCH/`)."""

    def __init__(
        self,
        store: Store,
        sources: list[Source],
        checkouts: Sequence[CheckoutFsView],
        *,
        own: InodeRange,
        inodes: InodeSpace,
        cache_bytes: int = 256 << 20,
    ) -> None:
        """`checkouts`: the writable views, each in a range of `inodes` of its own (taken
        after `own`, the mount's own directories); the view closes them when it is closed."""
        super().__init__(store, sources, cache_bytes=cache_bytes, inodes=inodes, own=own)
        self._parts = {c.inodes.index: c for c in checkouts}
        self._by_ref = {(c.repo, c.branch): c for c in checkouts}
        # The mount's handles: (checkout, its handle), or (None, a version's inode).
        self._fhs: dict[int, tuple[CheckoutFsView | None, int]] = {}
        self._next_fh = 1

    # --- what the versions' side asks -----------------------------------------------------

    def _grafted(self, repo: str, ref: str) -> InodeNo | None:
        c = self._by_ref.get((repo, ref))
        return None if c is None else c.inodes.outer(ROOT_INODE)

    def writable(self) -> WritableFsView | None:
        return self

    def attach(self, nursery: trio.Nursery) -> None:
        super().attach(nursery)
        for c in self._parts.values():
            c.attach(nursery)

    def close(self) -> None:
        try:
            super().close()
        finally:
            for c in self._parts.values():
                try:
                    c.close()
                except Exception:
                    log.warning("closing the checkout of %s failed", c.ref, exc_info=True)

    # --- routing --------------------------------------------------------------------------

    def _part(self, ino: int) -> CheckoutFsView | None:
        """The checkout that holds `ino`; None: the versions' side."""
        return self._parts.get(self._space.index_of(ino))

    @staticmethod
    def _shown(c: CheckoutFsView, attr: Attr) -> Attr:
        return dataclasses.replace(attr, ino=c.inodes.outer(attr.ino))

    def _writable_at(self, ino: int) -> tuple[CheckoutFsView, InodeNo]:
        """The checkout and its own number of `ino`; EROFS anywhere else."""
        c = self._part(ino)
        if c is None:
            raise _refused()
        return c, c.inodes.inner(ino)

    def _new_fh(self, c: CheckoutFsView | None, inner: int) -> int:
        fh = self._next_fh
        self._next_fh += 1
        self._fhs[fh] = (c, inner)
        return fh

    def _fh(self, fh: int) -> tuple[CheckoutFsView | None, int]:
        got = self._fhs.get(fh)
        if got is None:
            raise FsError(errno.EBADF)
        return got

    # --- metadata -------------------------------------------------------------------------

    def getattr(self, ino: InodeNo) -> Attr:
        c = self._part(ino)
        if c is None:
            return super().getattr(ino)
        return self._shown(c, c.getattr(c.inodes.inner(ino)))

    def lookup(self, parent: InodeNo, name: bytes) -> Attr:
        c = self._part(parent)
        if c is None:
            return super().lookup(parent, name)
        return self._shown(c, c.lookup(c.inodes.inner(parent), name))

    def readlink(self, ino: InodeNo) -> bytes:
        c = self._part(ino)
        return super().readlink(ino) if c is None else c.readlink(c.inodes.inner(ino))

    def forget(self, items: Iterable[tuple[InodeNo, int]]) -> None:
        versions: list[tuple[InodeNo, int]] = []
        for ino, n in items:
            c = self._part(ino)
            if c is None:
                versions.append((ino, n))
            else:
                c.forget([(c.inodes.inner(ino), n)])
        super().forget(versions)

    def origin(self, ino: InodeNo) -> Origin | None:
        c = self._part(ino)
        return super().origin(ino) if c is None else c.origin(c.inodes.inner(ino))

    def is_dynamic(self, ino: InodeNo) -> bool:
        return self._part(ino) is None and super().is_dynamic(ino)

    def statfs(self) -> StatFs:
        """One answer for the whole mount (FUSE asks without an inode): the free space of
        the overlays, where writes land, rather than the versions' none."""
        for c in self._parts.values():
            return c.statfs()
        return super().statfs()

    # --- listings and reads, by the mount's handles ---------------------------------------

    def opendir(self, ino: InodeNo) -> int:
        c = self._part(ino)
        if c is None:
            super().getattr(ino)  # ENOENT for a number the versions do not hold
            return self._new_fh(None, ino)
        return self._new_fh(c, c.opendir(c.inodes.inner(ino)))

    def readdir(self, fh: int, offset: int) -> Iterator[tuple[bytes, Attr, int]]:
        c, inner = self._fh(fh)
        if c is None:
            yield from super().readdir(InodeNo(inner), offset)
            return
        for name, attr, nxt in c.readdir(inner, offset):
            yield name, self._shown(c, attr), nxt

    def releasedir(self, fh: int) -> None:
        c, inner = self._fhs.pop(fh, (None, 0))
        if c is not None:
            c.releasedir(inner)

    async def open(self, ino: InodeNo, flags: int, caller: Caller | None = None) -> int:
        c = self._part(ino)
        if c is not None:
            return self._new_fh(c, await c.open(c.inodes.inner(ino), flags, caller))
        if flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC:
            raise _refused()
        super().getattr(ino)  # ENOENT for a number the versions do not hold
        return self._new_fh(None, ino)

    async def read(self, fh: int, offset: int, size: int) -> bytes | memoryview:
        c, inner = self._fh(fh)
        if c is None:
            return await super().read(InodeNo(inner), offset, size)
        return await c.read(inner, offset, size)

    async def read_parts(self, fh: int, offset: int, size: int) -> list[memoryview]:
        c, inner = self._fh(fh)
        if c is None:
            return await super().read_parts(InodeNo(inner), offset, size)
        return await c.read_parts(inner, offset, size)

    async def write(self, fh: int, offset: int, data: bytes) -> int:
        c, inner = self._fh(fh)
        if c is None:
            raise FsError(errno.EBADF, "a version's file is open for reading only")
        return await c.write(inner, offset, data)

    def release(self, fh: int) -> None:
        c, inner = self._fhs.pop(fh, (None, 0))
        if c is not None:
            c.release(inner)

    async def fsync(self, fh: int, datasync: bool) -> None:
        c, inner = self._fh(fh)
        if c is not None:
            await c.fsync(inner, datasync)

    # --- changes: a checkout's, or refused ------------------------------------------------

    async def create(
        self, parent: InodeNo, name: bytes, mode: int, flags: int, caller: Caller | None = None
    ) -> tuple[int, Attr]:
        c, inner = self._writable_at(parent)
        fh, attr = await c.create(inner, name, mode, flags, caller)
        return self._new_fh(c, fh), self._shown(c, attr)

    async def mkdir(
        self, parent: InodeNo, name: bytes, mode: int, caller: Caller | None = None
    ) -> Attr:
        c, inner = self._writable_at(parent)
        return self._shown(c, await c.mkdir(inner, name, mode, caller))

    async def symlink(
        self, parent: InodeNo, name: bytes, target: bytes, caller: Caller | None = None
    ) -> Attr:
        c, inner = self._writable_at(parent)
        return self._shown(c, await c.symlink(inner, name, target, caller))

    async def unlink(self, parent: InodeNo, name: bytes, caller: Caller | None = None) -> None:
        c, inner = self._writable_at(parent)
        await c.unlink(inner, name, caller)

    async def rmdir(self, parent: InodeNo, name: bytes, caller: Caller | None = None) -> None:
        c, inner = self._writable_at(parent)
        await c.rmdir(inner, name, caller)

    async def rename(
        self, p_old: InodeNo, old: bytes, p_new: InodeNo, new: bytes, flags: int,
        caller: Caller | None = None,
    ) -> None:  # fmt: skip
        c, inner_old = self._writable_at(p_old)
        d, inner_new = self._writable_at(p_new)
        if c is not d:
            raise FsError(errno.EXDEV, "two writable branches: a move between them is a copy")
        await c.rename(inner_old, old, inner_new, new, flags, caller)

    async def link(self, ino: InodeNo, parent: InodeNo, name: bytes) -> Attr:
        c, inner = self._writable_at(ino)
        d, inner_parent = self._writable_at(parent)
        if c is not d:
            raise FsError(errno.EXDEV)
        return self._shown(c, await c.link(inner, inner_parent, name))

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
        c, inner = self._writable_at(ino)
        attr = await c.setattr(inner, mode=mode, size=size, mtime_ns=mtime_ns,
                               atime_ns=atime_ns, uid=uid, gid=gid, caller=caller)  # fmt: skip
        return self._shown(c, attr)


if TYPE_CHECKING:  # mypy holds the view to the whole protocol the writable adapter serves
    _AS_VIEW: type[WritableFsView] = MixedView
