"""A bare pyfuse3 read-only passthrough: the limit of the pyfuse3 + trio stack for reads.

``python -m bench.passthrough BACKING MOUNTPOINT`` exposes the directory BACKING read-only at
MOUNTPOINT until unmounted (``fusermount3 -u``) or sent SIGTERM/SIGINT. It does the least a
read path can do: long entry/attribute timeouts, readdirplus, files opened with ``keep_cache``
and read with ``os.pread`` on the backing file, no caching or decoding of its own. ``--no-open``
answers open with ENOSYS as the mlgitfs daemon does on a read-only mount (patched pyfuse3 only),
so a small-file loader pays no open/release round trips. The caller
raises the mount's read-ahead like the mlgitfs daemon does (as root, after the mount answers:
``/sys/class/bdi/MAJOR:MINOR/read_ahead_kb``; see ``bench.mounting.raise_read_ahead``).

Kept as small as it can be on purpose: it is the baseline the mlgitfs read path is compared
with (``seq_read``), not a filesystem to use.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import stat
import sys
from collections.abc import Sequence

import pyfuse3
import trio

from mlgitfs.daemon import pyfuse3_build

TIMEOUT = 86400.0


class Passthrough(pyfuse3.Operations):
    supports_dot_lookup = False
    enable_writeback_cache = False
    enable_acl = False

    def __init__(self, backing: str, no_open: bool = False) -> None:
        super().__init__()
        self.no_open = no_open
        self.paths: dict[int, str] = {pyfuse3.ROOT_INODE: backing}
        self.inodes: dict[str, int] = {backing: pyfuse3.ROOT_INODE}
        self.next_inode = pyfuse3.ROOT_INODE + 1

    def _inode(self, path: str) -> int:
        ino = self.inodes.get(path)
        if ino is None:
            ino = self.next_inode
            self.next_inode += 1
            self.inodes[path] = ino
            self.paths[ino] = path
        return ino

    def _path(self, inode: int) -> str:
        try:
            return self.paths[inode]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    def _entry(self, path: str, inode: int) -> pyfuse3.EntryAttributes:
        try:
            s = os.lstat(path)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        e = pyfuse3.EntryAttributes()
        e.st_ino = inode
        e.generation = 0
        e.entry_timeout = TIMEOUT
        e.attr_timeout = TIMEOUT
        e.st_mode = s.st_mode & ~0o222
        e.st_nlink = s.st_nlink
        e.st_uid = s.st_uid
        e.st_gid = s.st_gid
        e.st_rdev = 0
        e.st_size = s.st_size
        e.st_blksize = 4096
        e.st_blocks = s.st_blocks
        e.st_atime_ns = s.st_atime_ns
        e.st_mtime_ns = s.st_mtime_ns
        e.st_ctime_ns = s.st_ctime_ns
        return e

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        path = os.path.join(self._path(parent_inode), os.fsdecode(name))
        if not os.path.lexists(path):
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._entry(path, self._inode(path))

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        return self._entry(self._path(inode), inode)

    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        return inode

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        base = self._path(fh)
        names = sorted(os.listdir(base))
        for i in range(start_id, len(names)):
            path = os.path.join(base, names[i])
            attr = self._entry(path, self._inode(path))
            if not pyfuse3.readdir_reply(token, os.fsencode(names[i]), attr, i + 1):
                break

    async def releasedir(self, fh: int) -> None:
        return None

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if flags & os.O_ACCMODE != os.O_RDONLY:
            raise pyfuse3.FUSEError(errno.EROFS)
        if self.no_open:
            # As the mlgitfs daemon does with the patched pyfuse3: the kernel stops sending
            # open/release and passes the inode to read in place of fh 0.
            raise pyfuse3.FUSEError(errno.ENOSYS)
        path = self._path(inode)
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                raise pyfuse3.FUSEError(errno.EINVAL)
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        return pyfuse3.FileInfo(fh=fd, keep_cache=True)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        if not self.no_open:
            return os.pread(fh, size, off)
        try:
            fd = os.open(self._path(fh), os.O_RDONLY)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        try:
            return os.pread(fd, size, off)
        finally:
            os.close(fd)

    async def flush(self, fh: int) -> None:
        raise pyfuse3.FUSEError(errno.ENOSYS)

    async def release(self, fh: int) -> None:
        if not self.no_open:
            os.close(fh)

    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        raise pyfuse3.FUSEError(errno.ENOSYS)

    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        raise pyfuse3.FUSEError(errno.ENOSYS)


async def _serve() -> None:
    async with trio.open_nursery() as nursery:

        async def on_signal() -> None:
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as receiver:
                async for _ in receiver:
                    pyfuse3.terminate()
                    return

        nursery.start_soon(on_signal)
        await pyfuse3.main()
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.passthrough", description=__doc__)
    p.add_argument("backing")
    p.add_argument("mountpoint")
    p.add_argument(
        "--no-open",
        action="store_true",
        help="answer open with ENOSYS (needs the pyfuse3 patched as packaging/pyfuse3 does, "
        "which passes the inode to read): no open/release per file, as the mlgitfs daemon",
    )
    a = p.parse_args(argv)
    if a.no_open and "noopen" not in pyfuse3_build.features(pyfuse3.__version__):
        p.error(f"--no-open needs the patched pyfuse3 (this is {pyfuse3.__version__})")
    ops = Passthrough(os.path.abspath(a.backing), a.no_open)
    options = {"fsname=bench-passthrough", "subtype=passthrough", "ro", "default_permissions"}
    pyfuse3.init(ops, a.mountpoint, options)
    try:
        trio.run(_serve)
    finally:
        pyfuse3.close(unmount=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
