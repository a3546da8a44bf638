"""Doubles passed in at construction that make overlay writes and record transactions fail.

`FailingFiles` is a real `OverlayFiles` whose operations (create, write, truncate, fsync,
utime, unlink) raise the errno of `Faults` while it is on; `FailingEnv` wraps the store's real
LMDB environment and raises after the block of a write transaction, so LMDB really aborts
it. `failing_checkout_view` is a mount daemon's view factory (a real daemon imports it) that
builds a writable view whose overlay writes fail with ENOSPC.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgitfs.errors import StoreError, StoreFull
from mlgitfs.meta.env import ReadTxn, Transactions, WriteTxn
from mlgitfs.store.facade import Store
from mlgitfs.vfs.factory import open_checkout_view
from mlgitfs.vfs.overlay import WritableView
from mlgitfs.vfs.overlay_files import OverlayFiles
from mlgitfs.vfs.types import ViewContext


@dataclass
class Faults:
    """What fails now: overlay file operations (`files`) and/or record transactions."""

    files: set[str] = field(default_factory=set)  # create write truncate fsync utime unlink
    meta: bool = False
    code: int = errno.ENOSPC

    def check(self, op: str) -> None:
        if op in self.files:
            raise OSError(self.code, os.strerror(self.code))


class FailingFiles(OverlayFiles):
    def __init__(self, root: Path, faults: Faults) -> None:
        super().__init__(root)
        self.faults = faults

    def open(self, ino: int, flags: int) -> int:
        if flags & os.O_CREAT:
            self.faults.check("create")
        return super().open(ino, flags)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> int:
        self.faults.check("write")
        return super().pwrite(fd, data, offset)

    def write(self, fd: int, data: bytes | memoryview) -> int:
        self.faults.check("write")
        return super().write(fd, data)

    def ftruncate(self, fd: int, size: int) -> None:
        self.faults.check("truncate")
        super().ftruncate(fd, size)

    def truncate(self, ino: int, size: int) -> None:
        self.faults.check("truncate")
        super().truncate(ino, size)

    def fsync(self, fd: int) -> None:
        self.faults.check("fsync")
        super().fsync(fd)

    def fdatasync(self, fd: int) -> None:
        self.faults.check("fsync")
        super().fdatasync(fd)

    def sync_dir(self) -> None:
        self.faults.check("fsync")
        super().sync_dir()

    def utime(self, ino: int, mtime_ns: int) -> None:
        self.faults.check("utime")
        super().utime(ino, mtime_ns)

    def futime(self, fd: int, mtime_ns: int) -> None:
        self.faults.check("utime")
        super().futime(fd, mtime_ns)

    def unlink(self, ino: int) -> None:
        self.faults.check("unlink")
        super().unlink(ino)


class FailingEnv:
    """The real environment; a write transaction fails at its end while `faults.meta`."""

    def __init__(self, env: Transactions, faults: Faults) -> None:
        self.env = env
        self.faults = faults

    def read(self) -> AbstractContextManager[ReadTxn]:
        return self.env.read()

    @contextmanager
    def write(self) -> Iterator[WriteTxn]:
        with self.env.write() as txn:
            yield txn
            if self.faults.meta:
                # Raised inside the real transaction's block: LMDB aborts it.
                if self.faults.code == errno.ENOSPC:
                    raise StoreFull("injected: the store's database is full")
                raise StoreError("injected: store database error (EIO)")


def open_failing_view(store: Store, faults: Faults, cache_bytes: int = 1 << 20) -> WritableView:
    return open_checkout_view(
        store,
        "ds",
        "main",
        cache_bytes,
        files=lambda root: FailingFiles(root, faults),
        meta=FailingEnv(store.env, faults),
    )


def failing_checkout_view(arg: dict[str, Any], context: ViewContext) -> WritableView:
    """A daemon's view factory: repo@branch of arg, with the faults arg names always on
    (`fail_files`: operations of the overlay files; `fail_meta`: record transactions)."""
    store = Store.open(Path(arg["home"]))
    faults = Faults()
    view = open_checkout_view(
        store,
        str(arg["repo"]),
        str(arg["branch"]),
        1 << 20,
        files=lambda root: FailingFiles(root, faults),
        meta=FailingEnv(store.env, faults),
        context=context,
    )
    # On once the view is loaded (loading writes the checkout's inode high-water mark).
    faults.files, faults.meta = set(arg.get("fail_files", [])), bool(arg.get("fail_meta"))
    return view
