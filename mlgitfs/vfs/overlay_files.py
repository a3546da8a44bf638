"""The file operations of a checkout's overlay (`files/<ino>`), in one seam.

A writable view changes its overlay files only through an `OverlayFiles`, given at
construction, so tests can pass a double that fails some of them (ENOSPC, EIO) and check that
the operation fails and changes nothing (docs/overlay.md, crash and fault states). Every
method raises `OSError` as the system call does.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


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

    def sync_dir(self) -> None:
        """fsync the directory: a new file's name is durable too."""
        dfd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
