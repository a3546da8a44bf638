"""The pyfuse3 adapter of a writable mount: `FuseOps` plus writes, over a `WritableFsView`.

Translation only, as in fuse_ops.py: every handler is guarded (any exception becomes a
`FUSEError`), file handles are the view's (reads need them: pyfuse3 passes no inode to
`read`), and directory handles carry the listing taken at the first `readdir`. Entries and
attributes are cached by the kernel: every change goes through this daemon, and the control
requests that change files behind the kernel's back (restore) invalidate what they touched.

Hard links are refused with EPERM, xattrs with ENOTSUP (docs/overlay.md). O_DIRECT opens are
accepted; the flag never reaches an overlay file (design §8: an O_DIRECT write of 4,608 bytes
to a backing file raised EINVAL).
"""

from __future__ import annotations

import errno
import logging
import os
import stat

import pyfuse3

from mlgitfs.daemon.fuse_ops import FuseOps, _guarded, reply_of
from mlgitfs.model.ids import InodeNo
from mlgitfs.vfs.types import Caller, WritableFsView

log = logging.getLogger(__name__)

TIMEOUT = 60.0


def caller(ctx: pyfuse3.RequestContext) -> Caller:
    return Caller(ctx.uid, ctx.gid, ctx.pid)


class WritableFuseOps(FuseOps):
    def __init__(self, view: WritableFsView, **kwargs: object) -> None:
        super().__init__(
            view,
            read_only=False,
            entry_timeout=TIMEOUT,
            attr_timeout=TIMEOUT,
            negative_timeout=TIMEOUT,
            **kwargs,  # type: ignore[arg-type]
        )
        self.wview = view

    # -- directories ------------------------------------------------------------------------

    @_guarded
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return self.wview.opendir(InodeNo(inode))

    @_guarded
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        for name, attr, next_id in self.wview.readdir(fh, start_id):
            if not pyfuse3.readdir_reply(token, name, self.entry(attr), next_id):
                # The entry with no room was not given: a view that counts lookups (a
                # version beside a checkout, vfs/mixed.py) gets it back.
                self.wview.forget([(InodeNo(attr.ino), 1)])
                break

    @_guarded
    async def releasedir(self, fh: int) -> None:
        self.wview.releasedir(fh)

    # -- files ------------------------------------------------------------------------------

    @_guarded
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        fh = await self.wview.open(InodeNo(inode), flags, caller(ctx))
        if self.recorder.active:
            self.recorder.opened_as(ctx.pid, inode, fh, self.origin)
        return pyfuse3.FileInfo(fh=fh, keep_cache=True)

    @_guarded
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        fh, attr = await self.wview.create(InodeNo(parent_inode), name, mode, flags, caller(ctx))
        return pyfuse3.FileInfo(fh=fh, keep_cache=True), self.entry(attr)

    @_guarded
    async def read(  # type: ignore[override]
        self, fh: int, off: int, size: int
    ) -> bytes | memoryview | list[memoryview]:  # buffers, as FuseOps.read says
        parts = await self.wview.read_parts(fh, off, size)
        if self.recorder.handles():
            self.recorder.served_if(fh, sum(len(p) for p in parts))
        return reply_of(parts)

    @_guarded
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        return await self.wview.write(fh, off, buf)

    @_guarded
    async def release(self, fh: int) -> None:
        self.wview.release(fh)
        self.recorder.released(fh)

    @_guarded
    async def fsync(self, fh: int, datasync: bool) -> None:
        await self.wview.fsync(fh, datasync)

    @_guarded
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        return None  # every namespace change is already durable (one LMDB txn each)

    # -- namespace --------------------------------------------------------------------------

    @_guarded
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        if not stat.S_ISREG(mode):
            raise pyfuse3.FUSEError(errno.EPERM)  # no devices, FIFOs or sockets in a version
        fh, attr = await self.wview.create(
            InodeNo(parent_inode), name, mode, os.O_WRONLY, caller(ctx)
        )
        self.wview.release(fh)
        return self.entry(attr)

    @_guarded
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        return self.entry(await self.wview.mkdir(InodeNo(parent_inode), name, mode, caller(ctx)))

    @_guarded
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        return self.entry(
            await self.wview.symlink(InodeNo(parent_inode), name, target, caller(ctx))
        )

    @_guarded
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.wview.unlink(InodeNo(parent_inode), name, caller(ctx))

    @_guarded
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self.wview.rmdir(InodeNo(parent_inode), name, caller(ctx))

    @_guarded
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        await self.wview.rename(
            InodeNo(parent_inode_old), name_old, InodeNo(parent_inode_new), name_new, flags,
            caller(ctx),
        )  # fmt: skip

    @_guarded
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        return self.entry(
            await self.wview.link(InodeNo(inode), InodeNo(new_parent_inode), new_name)
        )

    @_guarded
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        a = await self.wview.setattr(
            InodeNo(inode),
            mode=attr.st_mode if fields.update_mode else None,
            size=attr.st_size if fields.update_size else None,
            mtime_ns=attr.st_mtime_ns if fields.update_mtime else None,
            atime_ns=attr.st_atime_ns if fields.update_atime else None,
            uid=attr.st_uid if fields.update_uid else None,
            gid=attr.st_gid if fields.update_gid else None,
            caller=caller(ctx),
        )
        return self.entry(a)

    # -- xattrs: not versioned, refused -----------------------------------------------------

    @_guarded
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        raise pyfuse3.FUSEError(errno.ENOTSUP)

    @_guarded
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise pyfuse3.FUSEError(errno.ENOTSUP)
