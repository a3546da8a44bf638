"""The file operations of a checkout's overlay (`files/<ino>`), in one seam.

A writable view changes its overlay files only through an `OverlayFiles`, given at
construction, so tests can pass a double that fails some of them (ENOSPC, EIO) and check that
the operation fails and changes nothing (docs/overlay.md, crash and fault states). Every
method but `discard` raises `OSError` as the system call does.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class OverlayFiles:
    """Overlay files under `root`, named by inode number."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, ino: int) -> Path:
        return self.root / str(ino)

    def open(self, ino: int, flags: int) -> int:
        return os.open(self.path(ino), flags | os.O_CLOEXEC, 0o600)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        return os.pwrite(fd, data, offset)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        return os.write(fd, data)

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def truncate(self, ino: int, size: int) -> None:
        os.truncate(self.path(ino), size)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def utime(self, ino: int, mtime_ns: int) -> None:
        os.utime(self.path(ino), ns=(mtime_ns, mtime_ns))

    def futime(self, fd: int, mtime_ns: int) -> None:
        os.utime(fd, ns=(mtime_ns, mtime_ns))

    def unlink(self, ino: int) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(ino))

    def make(self, ino: int, fill: Callable[[int], None] | None) -> None:
        """Overlay file `ino` made afresh, filled (`fill` writes to its descriptor), fsynced
        with its directory; no file at all if any of that fails. Blocking: a worker thread."""
        fd = self.open(ino, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            if fill is not None:
                fill(fd)
            self.fsync(fd)
            os.close(fd)
            fd = -1
            self.sync_dir()
        except BaseException:
            if fd >= 0:
                os.close(fd)
            self.discard(ino)
            raise

    def discard(self, ino: int) -> None:
        """Delete an overlay file no record names (a failed operation's own new file); an
        error is logged, not raised: the next mount's orphan collection deletes it."""
        try:
            self.unlink(ino)
        except OSError as exc:
            log.error("cannot delete the overlay file of inode %d: %s", ino, exc)

    def sync_dir(self) -> None:
        """fsync the directory: a new file's name is durable too."""
        dfd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
