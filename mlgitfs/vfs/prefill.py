"""Prefilling a directory's small files into the kernel's page cache before they are read.

A loader that reads small files costs one FUSE round trip per file: the kernel asks, the
daemon loads and answers, the reader waits in between. Its next files are predictable
enough: a training epoch reads every file of every directory, a copy or a checksum walks a
directory in order. So the first read of a small file in a directory makes the daemon load
that directory's other small files (listing order, up to DIR_PREFILL bytes, those in the local
cache) on a worker thread and hand them to the kernel with FUSE_NOTIFY_STORE; on a clone,
the view's directory fetch-ahead prefills the files of each group it fetches (`prefill_fetched`).
A reader then finds their pages cached and never asks; the daemon's work is the same,
without the waits.

Only read-only views prefill (a version never changes, so a prefilled page is never stale), and
only to inodes the kernel was told about (listed or looked up). A prefill that fails (an inode
the kernel has forgotten, a chunk that fails its check) is skipped: the reader's own read
then loads the file and reports any error as usual. Which bytes reach the page cache first,
a prefill or a read reply, does not matter: they are the same bytes.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

import trio

from mlgitfs.errors import MlgitError
from mlgitfs.model.ids import ChunkId, InodeNo
from mlgitfs.store.facade import Store
from mlgitfs.store.segfile import Buffer

log = logging.getLogger(__name__)

Prefill = Callable[[InodeNo, Buffer], None]  # raises OSError when the kernel refuses
PREFILL_FILE_MAX = 1 << 20  # files at most this large (one chunk) are prefilled whole
DIR_PREFILL = 128 << 20  # bytes prefilled ahead per directory
PREFILL_SLOTS = 2  # directories being prefilled at once


class DirPrefiller:
    def __init__(
        self, store: Store, read_chunk: Callable[[ChunkId], bytes], prefill: Prefill
    ) -> None:
        self.store = store
        self.read_chunk = read_chunk
        self.prefill = prefill
        self.prefilled = 0  # files handed to the kernel (tests, logs)
        self._started: set[int] = set()  # directories already prefilled (or being prefilled)
        self._slots = trio.CapacityLimiter(PREFILL_SLOTS)
        self._broken = False  # the kernel does not support it: stop trying

    def start(
        self,
        nursery: trio.Nursery,
        directory: InodeNo,
        candidates: Callable[[], list[tuple[InodeNo, ChunkId, int]]],
    ) -> None:
        """Prefill `directory`'s files once; `candidates` names them (called now, on the trio
        thread, which owns the inode table)."""
        if self._broken or directory in self._started:
            return
        try:
            self._slots.acquire_on_behalf_of_nowait(directory)
        except trio.WouldBlock:
            return  # busy: a later read in that directory tries again
        self._started.add(directory)
        files = candidates()
        nursery.start_soon(self._run, directory, files, name="prefill-dir")

    async def _run(self, directory: InodeNo, files: list[tuple[InodeNo, ChunkId, int]]) -> None:
        try:
            await trio.to_thread.run_sync(self._prefill_all, files, abandon_on_cancel=True)
        finally:
            self._slots.release_on_behalf_of(directory)

    def _prefill_all(self, files: list[tuple[InodeNo, ChunkId, int]]) -> None:
        for ino, cid, size in files:
            if not self.store.chunk_is_local(cid):
                continue  # remote: the directory fetch-ahead prefills those it fetches
            try:
                data = self.read_chunk(cid)
            except MlgitError as exc:
                log.debug("not prefilling inode %d: %s", ino, exc)
                continue
            if len(data) != size:  # its tree lies: the reader's own read reports it
                continue
            if not self._hand(ino, data):
                return

    def prefill_fetched(self, files: list[tuple[InodeNo, Buffer]]) -> None:
        """Prefill files whose (verified) bytes were just fetched from a remote; blocking."""
        for ino, data in files:
            if self._broken or not self._hand(ino, data):
                return

    def _hand(self, ino: InodeNo, data: Buffer) -> bool:
        """Give one file to the kernel; False when the kernel cannot take any."""
        try:
            self.prefill(ino, data)
        except OSError as exc:
            if exc.errno == errno.ENOSYS:  # this kernel cannot store pages
                self._broken = True
                log.info("the kernel does not accept prefilled pages: %s", exc)
                return False
            return True  # ENOENT: the kernel forgot the inode
        self.prefilled += 1
        return True
