"""The pyfuse3 adapter: translates kernel requests into calls on an `FsView` and answers back.

It translates only: inode numbers and `EntryAttributes` in and out, `FsError` to `FUSEError`.
What a mounted version looks like is decided behind the `FsView` (mlgitfs/vfs/). Every handler
is guarded: *any* exception becomes a `FUSEError` (EIO when the errno is unknown) and a log
line, because pyfuse3 ends its main loop on anything else and every user of the mount would
then see ENOTCONN (design §8).

Caching is fitted to immutable data (design §5, §8): long entry and attribute timeouts,
negative lookups cached (st_ino 0), readdirplus, `keep_cache` on open, and `flush`, `getxattr`
and `listxattr` answered with ENOSYS so the kernel stops sending them (no xattrs: EOPNOTSUPP).

Open: under stock pyfuse3 3.5, answering ENOSYS makes the kernel send every read with fh 0,
and pyfuse3 does not pass the inode to `read`, so a read could not tell which file it is for
(checked on kernel 6.18). Files are then opened with fh = inode and keep_cache: pages stay
cached across opens, at the cost of one open and one (asynchronous) release per open. With the
pyfuse3 that packaging/pyfuse3/build.sh patches (the inode replaces fh 0 in `read`), a
read-only mount answers open with ENOSYS once and the kernel sends no open or release again.
"""

from __future__ import annotations

import collections
import errno
import functools
import inspect
import logging
import os
import stat
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import pyfuse3
import trio

from mlgitfs.daemon import pyfuse3_build
from mlgitfs.daemon.recorder import RECORDED_FH, Recorder
from mlgitfs.errors import FsError
from mlgitfs.model.ids import InodeNo
from mlgitfs.vfs.types import Attr, FsView, Origin

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")
S = TypeVar("S", bound="FuseOps")

# The patches of a pyfuse3 built by packaging/pyfuse3/build.sh (pyfuse3_build.PATCHES):
_BUILD = pyfuse3_build.features(pyfuse3.__version__)
# `read` gets the inode when the kernel runs without open (fh 0): only then can a read-only
# mount answer open with ENOSYS.
NO_OPEN = "noopen" in _BUILD
# The read handler takes a list of buffers (one writev, no join) and lets other threads run
# while the kernel copies a reply.
REPLY_IOV = "iov" in _BUILD
# opendir takes a FileInfo whose keep_cache makes the kernel cache the listing.
CACHE_DIR = "cachedir" in _BUILD

DAY = 86400.0
# What a read-only mount never shows: write bits, setuid and setgid.
_RO_MASK = ~(stat.S_ISUID | stat.S_ISGID | 0o222)


# Errnos that answer a request as designed (a refusal, a name that is not there), not a failure.
_ANSWERS = frozenset({
    errno.ENOENT, errno.ENOSYS, errno.EROFS, errno.EPERM, errno.EACCES, errno.EEXIST,
    errno.ENOTEMPTY, errno.EISDIR, errno.ENOTDIR, errno.EINVAL, errno.ENAMETOOLONG,
    errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EBADF, errno.ENODATA,
})  # fmt: skip


def _describe(args: tuple[Any, ...], names: frozenset[int]) -> str:
    """Inode numbers, offsets and names: never file contents (conventions: logging). Only
    the arguments at positions `names` are shown as bytes; any other buffer (a write's data,
    an xattr value) by its length alone."""
    parts = []
    for i, a in enumerate(args):
        if isinstance(a, bool | int):
            parts.append(str(a))
        elif isinstance(a, bytes | bytearray | memoryview):
            shown = i in names and len(a) <= 255
            parts.append(repr(bytes(a)) if shown else f"<{len(a)} bytes>")
    return ", ".join(parts)


def _name_positions(fn: Callable[..., Any]) -> frozenset[int]:
    """Positions (after self) of a handler's parameters that hold names, not contents."""
    params = list(inspect.signature(fn).parameters)[1:]
    return frozenset(i for i, p in enumerate(params) if "name" in p or p == "target")


def _guarded(
    fn: Callable[Concatenate[S, P], Awaitable[T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """Count the request, and turn any exception into a FUSEError plus a log line."""
    name = fn.__name__
    names = _name_positions(fn)

    @functools.wraps(fn)
    async def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        self.counts[name] += 1
        try:
            return await fn(self, *args, **kwargs)
        except pyfuse3.FUSEError:
            raise
        except FsError as exc:
            # A refusal (EPERM of a policy, EEXIST, ENOTEMPTY...) is an answer expected in
            # normal use: debug. EIO, ENOSPC and the like mean something failed: warning.
            if exc.errno in _ANSWERS:
                log.debug("%s(%s): %s", name, _describe(args, names), exc.message)
            else:
                log.warning("%s(%s): %s", name, _describe(args, names), exc.message)
            raise pyfuse3.FUSEError(exc.errno) from None
        except OSError as exc:
            code = exc.errno if isinstance(exc.errno, int) and exc.errno > 0 else errno.EIO
            log.error("%s(%s) failed: %r", name, _describe(args, names), exc, exc_info=True)
            raise pyfuse3.FUSEError(code) from None
        except Exception:
            log.error("%s(%s) failed, answering EIO", name, _describe(args, names), exc_info=True)
            raise pyfuse3.FUSEError(errno.EIO) from None

    return wrapper


def reply_of(parts: list[memoryview]) -> bytes | memoryview | list[memoryview]:
    """What `read` answers for these parts of the bytes asked for."""
    if len(parts) == 1:
        return parts[0]
    # A 1 MiB read spans two 512 KiB chunks on average: joining them cost a fresh 1 MiB
    # (256 page faults in a VM) and a copy per read.
    # (More parts than the patch sends by writev are joined there.)
    return parts if REPLY_IOV and parts else b"".join(parts)


class FuseOps(pyfuse3.Operations):
    """pyfuse3 `Operations` serving one read-only `FsView` (writable: fuse_write.py)."""

    # No NFS export: the kernel then never asks us to look up "..".
    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(
        self,
        view: FsView,
        *,
        read_only: bool = True,
        uid: int | None = None,
        gid: int | None = None,
        entry_timeout: float = DAY,
        attr_timeout: float = DAY,
        negative_timeout: float = DAY,
        on_init: Callable[[], None] | None = None,
        counts: collections.Counter[str] | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        """`recorder`: the daemon's read-set recordings (daemon/recorder.py), which note the
        view's `origin` of each file. A directory the view calls dynamic (`is_dynamic`: its
        listing and missing names follow refs) is cached by the kernel in neither way."""
        super().__init__()
        self.view = view
        self.read_only = read_only
        self.uid = os.getuid() if uid is None else uid
        self.gid = os.getgid() if gid is None else gid
        self.entry_timeout = entry_timeout
        self.attr_timeout = attr_timeout
        self.negative_timeout = negative_timeout
        # Requests per handler: cheap, dumped to the log on SIGUSR1 (see mount.py).
        # (`counts` also receives the daemon's prefill count: files handed to the page cache.)
        self.counts: collections.Counter[str] = collections.Counter() if counts is None else counts
        self.on_init = on_init
        self.recorder = Recorder() if recorder is None else recorder

    def origin(self, ino: int) -> Origin | None:
        return self.view.origin(InodeNo(ino))

    def init(self) -> None:
        """The kernel's INIT: called just before its reply is sent; must not raise."""
        try:
            if self.on_init is not None:
                self.on_init()
        except Exception:
            log.error("the init hook failed", exc_info=True)

    # -- translation ------------------------------------------------------------------------

    def entry(self, attr: Attr) -> pyfuse3.EntryAttributes:
        e = pyfuse3.EntryAttributes()
        e.st_ino = attr.ino
        e.generation = 0
        e.entry_timeout = self.entry_timeout
        e.attr_timeout = self.attr_timeout
        # Symlinks keep rwxrwxrwx, as on every Linux filesystem (their mode is never used).
        ro = self.read_only and not stat.S_ISLNK(attr.mode)
        e.st_mode = attr.mode & _RO_MASK if ro else attr.mode
        e.st_nlink = attr.nlink
        e.st_uid = self.uid
        e.st_gid = self.gid
        e.st_rdev = 0
        e.st_size = attr.size
        # As ext4 reports. Python's open() sizes its read buffer from st_blksize: at 128 KiB
        # every open of a small file allocated (and faulted in) a buffer it never needed,
        # which made a page-cache epoch of 100 KiB files 1.5x slower. The kernel's request
        # size does not depend on it (read-ahead decides), and cp reads 128 KiB anyway.
        e.st_blksize = 4096
        e.st_blocks = (attr.size + 511) // 512
        e.st_atime_ns = attr.mtime_ns if attr.atime_ns is None else attr.atime_ns
        e.st_mtime_ns = attr.mtime_ns
        e.st_ctime_ns = attr.mtime_ns if attr.ctime_ns is None else attr.ctime_ns
        return e

    async def invalidate(self, entries: list[tuple[int, bytes]], inodes: list[int]) -> None:
        """Make the kernel forget entries and inodes changed behind its back (a control op:
        restore, merge)."""
        for parent, name in entries:
            pyfuse3.invalidate_entry_async(parent, name, ignore_enoent=True)
        for ino in inodes:
            try:
                await trio.to_thread.run_sync(pyfuse3.invalidate_inode, ino)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    log.debug("invalidate_inode(%d): %s", ino, exc)

    def _negative(self) -> pyfuse3.EntryAttributes:
        # st_ino 0 makes the kernel cache the absence for entry_timeout.
        e = pyfuse3.EntryAttributes()
        e.st_ino = 0
        e.entry_timeout = self.negative_timeout
        return e

    # -- metadata ---------------------------------------------------------------------------

    @_guarded
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        if name == b".":
            return self.entry(self.view.getattr(InodeNo(parent_inode)))
        try:
            attr = self.view.lookup(InodeNo(parent_inode), name)
        except FsError as exc:
            if exc.errno == errno.ENOENT:
                if self.view.is_dynamic(InodeNo(parent_inode)):
                    raise pyfuse3.FUSEError(errno.ENOENT) from None  # an absence not cached
                return self._negative()
            raise
        return self.entry(attr)

    @_guarded
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self.entry(self.view.getattr(InodeNo(inode)))

    @_guarded
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        return self.view.readlink(InodeNo(inode))

    @_guarded
    async def opendir(  # type: ignore[override]  # our pyfuse3 also takes a FileInfo
        self, inode: int, ctx: pyfuse3.RequestContext
    ) -> int | pyfuse3.FileInfo:
        # Not ENOSYS: readdir would then get fh 0 and could not tell which directory.
        if self.read_only and CACHE_DIR and not self.view.is_dynamic(InodeNo(inode)):
            # A version's directories never change: the kernel keeps each listing
            # (FOPEN_CACHE_DIR), so a second walk sends no readdir at all.
            return pyfuse3.FileInfo(fh=inode, keep_cache=True)
        return inode

    @_guarded
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        # readdirplus: full attributes go with each name, so a walk sends no lookups; each
        # entry the reply takes counts as a lookup, the one it has no room for is given back.
        for name, attr, next_id in self.view.readdir(InodeNo(fh), start_id):
            if not pyfuse3.readdir_reply(token, name, self.entry(attr), next_id):
                self.view.forget([(InodeNo(attr.ino), 1)])
                break

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        # No reply goes back for a FORGET, so nothing may escape: log and keep serving.
        self.counts["forget"] += 1
        try:
            self.view.forget([(InodeNo(ino), n) for ino, n in inode_list])
        except Exception:
            log.error("forget of %d inodes failed; they stay held", len(inode_list),
                      exc_info=True)  # fmt: skip

    @_guarded
    async def releasedir(self, fh: int) -> None:
        return None

    @_guarded
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        s = self.view.statfs()
        out = pyfuse3.StatvfsData()
        out.f_bsize = s.block_size
        out.f_frsize = s.block_size
        out.f_blocks = s.blocks
        out.f_bfree = s.blocks_free
        out.f_bavail = s.blocks_free
        out.f_files = s.files
        out.f_ffree = s.files_free
        out.f_favail = s.files_free
        out.f_namemax = s.name_max
        return out

    # No xattrs. ENOSYS rather than ENODATA: the kernel then answers EOPNOTSUPP by itself for
    # the rest of the mount; with ENODATA, `ls -l` sent two getxattr requests per file, each time.
    @_guarded
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        raise pyfuse3.FUSEError(errno.ENOSYS)

    @_guarded
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        raise pyfuse3.FUSEError(errno.ENOSYS)

    # -- file content -----------------------------------------------------------------------

    @_guarded
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if self.read_only and (flags & os.O_ACCMODE != os.O_RDONLY or flags & os.O_TRUNC):
            raise pyfuse3.FUSEError(errno.EROFS)
        recorder = self.recorder
        if recorder.active:
            # An open by a recorded process tree gets a fh of its own, whose reads count.
            fh = recorder.opened(ctx.pid, inode, self.origin)
            if fh is not None:
                return pyfuse3.FileInfo(fh=fh, keep_cache=True)
        if self.read_only and NO_OPEN and not recorder.keep_opens:
            # Once per mount: the kernel stops sending open and release and keeps file pages
            # cached; the patched pyfuse3 passes the inode to `read` in place of fh 0.
            # (A recording can no longer see this mount's opens: recorder.py.)
            recorder.opens_skipped = True
            raise pyfuse3.FUSEError(errno.ENOSYS)
        # fh is the inode: reads need nothing else. keep_cache: the data never changes.
        return pyfuse3.FileInfo(fh=inode, keep_cache=True)

    @_guarded
    # pyfuse3's stub says bytes; its handler takes any contiguous buffer (PyObject_GetBuffer),
    # so a view of a cached chunk goes to the kernel without a copy.
    async def read(  # type: ignore[override]
        self, fh: int, off: int, size: int
    ) -> bytes | memoryview | list[memoryview]:
        if fh >= RECORDED_FH:
            parts = await self.view.read_parts(InodeNo(self.recorder.inode(fh)), off, size)
            self.recorder.served(fh, sum(len(p) for p in parts))
            return reply_of(parts)
        return reply_of(await self.view.read_parts(InodeNo(fh), off, size))

    @_guarded
    async def flush(self, fh: int) -> None:
        # ENOSYS once: the kernel stops sending flush for the rest of the mount.
        raise pyfuse3.FUSEError(errno.ENOSYS)

    @_guarded
    async def release(self, fh: int) -> None:
        if fh >= RECORDED_FH:
            self.recorder.released(fh)

    # -- mutations: refused on a read-only mount (the kernel's `ro` stops most before us) ----

    def _refuse(self) -> pyfuse3.FUSEError:
        return pyfuse3.FUSEError(errno.EROFS)

    @_guarded
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        raise self._refuse()

    @_guarded
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise self._refuse()

    @_guarded
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise self._refuse()

    @_guarded
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise self._refuse()

    @_guarded
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise self._refuse()

    @_guarded
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise self._refuse()

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
        raise self._refuse()

    @_guarded
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise self._refuse()

    @_guarded
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        raise self._refuse()

    @_guarded
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        raise self._refuse()

    @_guarded
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        raise self._refuse()

    @_guarded
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise self._refuse()

    @_guarded
    async def fsync(self, fh: int, datasync: bool) -> None:
        return None
