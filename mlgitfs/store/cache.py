"""The local chunk cache: append-only segment files, with each chunk's location in LMDB.

Write order (crash safety): a writer appends chunks to a segment file of its own, fsyncs it,
and only then records their locations in LMDB, in the same transaction as the objects and
the ref that need them. A crash before that transaction leaves unreferenced bytes in a
segment (reclaimed by gc), never a location that points at nothing. Every chunk read from
disk is hash-checked before use: LMDB and the page cache have no checksums of their own.

Chunks fetched from a remote are the exception to that order: their writer skips the fsync
(`write_out`), because they can be fetched again. A crash may then leave a location naming
bytes that never reached the disk; the read's hash check catches it and the store fetches
the chunk again (store/facade.py).

Pins and the byte budget: a chunk recorded by an import or a commit is pinned ("pins") until
a push has put it on a remote; fetched chunks are never pinned. `evict` deletes whole
segments, oldest first, while the cache is over its budget, and only segments every chunk
of which is unpinned and known to a remote: evicted chunks are fetched again on demand.
A writer holds an exclusive flock on the segment it appends to, so eviction (which takes the
same lock, non-blocking) never deletes a segment still being written, even by another process.

Record layout in a segment: MAGIC, chunk id (32), codec (1), raw length (4), stored length (4),
then the stored bytes; the header lets fsck and recovery scan a segment without the index.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import mmap
import os
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from mlgitfs.errors import CorruptObject, MissingObject, StoreError
from mlgitfs.meta import chunkquotes, chunks, db, gcstate
from mlgitfs.meta.env import MetaEnv, ReadTxn, WriteTxn
from mlgitfs.model.ids import ChunkId, hash_bytes, short_hex
from mlgitfs.store import compress
from mlgitfs.store.durable import fsync_dir
from mlgitfs.store.segfile import Buffer, SegmentFile

log = logging.getLogger(__name__)

MAGIC = b"MGC1"
_HEADER = struct.Struct("<4s32sBII")
RECORD_HEADER = _HEADER.size
_LOC = struct.Struct("<IQIIB")  # segment, offset of stored bytes, stored len, raw len, codec
SEGMENT_TARGET = 256 << 20
WRITE_BUFFER = 4 << 20
WRITES_QUEUED = 4  # buffers handed to the writer thread and not yet written
SYNC_EVERY = 64 << 20
FETCH_SEGMENT_TARGET = 64 << 20  # fetched chunks: smaller segments evict more finely


class Location:
    __slots__ = ("segment", "offset", "stored_len", "raw_len", "codec")

    def __init__(self, segment: int, offset: int, stored_len: int, raw_len: int, codec: int):
        self.segment = segment
        self.offset = offset
        self.stored_len = stored_len
        self.raw_len = raw_len
        self.codec = codec

    def pack(self) -> bytes:
        return _LOC.pack(self.segment, self.offset, self.stored_len, self.raw_len, self.codec)

    @classmethod
    def unpack(cls, data: bytes) -> Location:
        return cls(*_LOC.unpack(data))


class ChunkCache:
    def __init__(self, root: Path, env: MetaEnv) -> None:
        self.root = root
        self.env = env
        root.mkdir(parents=True, exist_ok=True)
        self._fds: dict[int, int] = {}
        self._lock = threading.Lock()

    def segment_path(self, segment: int) -> Path:
        return self.root / f"{segment:08d}.seg"

    def location(self, txn: ReadTxn, cid: ChunkId) -> Location | None:
        data = chunks.get_location(txn, bytes(cid))
        return None if data is None else Location.unpack(data)

    def has(self, cid: ChunkId) -> bool:
        with self.env.read() as txn:
            return chunks.has_chunk(txn, bytes(cid))

    def _fd(self, segment: int) -> int:
        fd = self._fds.get(segment)
        if fd is None:
            with self._lock:
                fd = self._fds.get(segment)
                if fd is None:
                    try:
                        fd = os.open(self.segment_path(segment), os.O_RDONLY | os.O_CLOEXEC)
                    except FileNotFoundError as exc:
                        raise MissingObject(
                            f"segment {segment}", "chunk cache segment file is missing"
                        ) from exc
                    self._close_unlinked()
                    self._fds[segment] = fd
        return fd

    def _close_unlinked(self) -> None:
        """Close descriptors of segments a gc (maybe in another process) has unlinked: an
        open descriptor would keep their disk space. Called under `_lock` when a segment is
        opened, as happens when a gc moved chunks to a new one."""
        for seg, fd in list(self._fds.items()):
            with contextlib.suppress(OSError):
                if os.fstat(fd).st_nlink == 0:
                    del self._fds[seg]
                    os.close(fd)

    def drop_fd(self, segment: int) -> None:
        """Forget this process's descriptor of a segment just deleted."""
        with self._lock:
            fd = self._fds.pop(segment, None)
        if fd is not None:
            os.close(fd)

    def read_stored(self, loc: Location) -> bytes:
        data = os.pread(self._fd(loc.segment), loc.stored_len, loc.offset)
        if len(data) != loc.stored_len:
            raise CorruptObject(f"segment {loc.segment}", "truncated chunk cache segment")
        return data

    def read(self, cid: ChunkId) -> bytes:
        """The chunk's raw bytes, verified against its id."""
        with self.env.read() as txn:
            loc = self.location(txn, cid)
        if loc is None:
            raise MissingObject(short_hex(cid), "chunk not in the local cache")
        return self.read_at(cid, loc)

    def read_at(self, cid: ChunkId, loc: Location) -> bytes:
        what = f"chunk {short_hex(cid)}"
        raw = compress.decompress(loc.codec, self.read_stored(loc), loc.raw_len, what)
        _check(cid, loc, raw)
        return raw

    def read_run(self, items: list[tuple[ChunkId, Location]]) -> list[tuple[ChunkId, Buffer]]:
        """Several chunks, verified, read with one pread per run of neighbouring records (a
        file's chunks were appended one after the other); a raw chunk is a view of the read
        buffer. A chunk that fails its check is left out: its reader loads it alone and
        reports it."""
        out: list[tuple[ChunkId, Buffer]] = []
        i = 0
        while i < len(items):
            j = i + 1
            while j < len(items) and _follows(items[j - 1][1], items[j][1]):
                j += 1
            run, i = items[i:j], j
            first, last = run[0][1], run[-1][1]
            size = last.offset + last.stored_len - first.offset
            try:
                data = memoryview(os.pread(self._fd(first.segment), size, first.offset))
            except (OSError, MissingObject):
                continue
            for cid, loc in run:
                at = loc.offset - first.offset
                stored = data[at : at + loc.stored_len]
                if len(stored) != loc.stored_len:
                    continue  # truncated segment
                with contextlib.suppress(CorruptObject):
                    raw = compress.decompress(loc.codec, stored, loc.raw_len, "chunk")
                    _check(cid, loc, raw)
                    out.append((cid, raw))
        return out

    def writer(
        self, *, pin: bool = True, target: int = SEGMENT_TARGET, direct: bool = False
    ) -> SegmentWriter:
        """A writer whose new chunks are pinned (imports, commits) unless `pin` is False
        (chunks fetched from a remote); `direct` bypasses the page cache (bulk imports,
        see store/segfile.py)."""
        return SegmentWriter(self, pin=pin, target=target, direct=direct)

    def forget(self, cid: ChunkId, loc: Location) -> bool:
        """Drop the chunk's location if it is still `loc` (a damaged or vanished copy of a
        chunk a remote has); True if dropped."""
        with self.env.write() as txn:
            cur = chunks.get_location(txn, bytes(cid))
            if cur is None or cur != loc.pack():
                return False
            chunks.delete_location(txn, bytes(cid))
            return True

    # --- budget ---------------------------------------------------------------------------

    def segments(self) -> list[tuple[int, int]]:
        """(segment number, bytes on disk) of every segment file, oldest first."""
        out = []
        with os.scandir(self.root) as it:
            for e in it:
                if e.name.endswith(".seg") and e.name[:-4].isdigit():
                    with contextlib.suppress(FileNotFoundError):
                        out.append((int(e.name[:-4]), e.stat().st_size))
        out.sort()
        return out

    def usage(self) -> int:
        return sum(size for _, size in self.segments())

    def evict(self, budget: int, on_remote: Callable[[ReadTxn, bytes], bool]) -> int:
        """Delete whole segments, oldest first, until the cache fits in `budget` bytes.

        A segment goes only if it is not being written (its flock is free) and every chunk
        recorded in it is unpinned and `on_remote`. Its locations are deleted in one LMDB
        transaction before the file is unlinked; a reader that looked a location up just
        before finds the file gone and fetches the chunk again. Returns bytes freed."""
        segments = self.segments()
        total = sum(size for _, size in segments)
        freed = 0
        for seg, size in segments:
            if total - freed <= budget:
                break
            if self._evict_segment(seg, on_remote):
                freed += size
        if freed:
            log.info("evicted %d MiB of chunks (budget %d MiB)", freed >> 20, budget >> 20)
        return freed

    def _evict_segment(self, seg: int, on_remote: Callable[[ReadTxn, bytes], bool]) -> bool:
        path = self.segment_path(seg)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a writer appends to it
            with self.env.write() as txn:
                mine = []
                for cid, offset in scan_segment(fd):
                    data = chunks.get_location(txn, cid)
                    if data is None:
                        continue  # a duplicate, a discarded batch, or evicted before
                    loc = Location.unpack(data)
                    if loc.segment != seg or loc.offset != offset:
                        continue
                    if chunks.is_pinned(txn, cid) or not on_remote(txn, cid):
                        return False  # nothing was deleted yet: the transaction is empty
                    mine.append(cid)
                if not mine:
                    return False  # maybe just created, its writer not yet holding the lock
                for cid in mine:
                    chunks.delete_location(txn, cid)
            path.unlink(missing_ok=True)
            with self._lock:
                old = self._fds.pop(seg, None)
            if old is not None:
                os.close(old)
            return True
        finally:
            os.close(fd)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


def _check(cid: ChunkId, loc: Location, raw: Buffer) -> None:
    if len(raw) != loc.raw_len or hash_bytes(raw) != cid:
        raise CorruptObject(short_hex(cid), "chunk does not hash to its id (bit rot?)")


def _follows(a: Location, b: Location) -> bool:
    """Whether record `b` comes right after record `a` in the same segment."""
    return b.segment == a.segment and b.offset == a.offset + a.stored_len + _HEADER.size


def scan_segment(fd: int) -> Iterator[tuple[bytes, int]]:
    """(chunk id, offset of its stored bytes) of each whole record of a segment, in order."""
    size = os.fstat(fd).st_size
    pos = 0
    while pos + _HEADER.size <= size:
        magic, cid, _, _, stored_len = _HEADER.unpack(os.pread(fd, _HEADER.size, pos))
        if magic != MAGIC or pos + _HEADER.size + stored_len > size:
            return  # a torn tail
        yield cid, pos + _HEADER.size
        pos += _HEADER.size + stored_len


class SegmentWriter:
    """Appends chunks to segments owned by this writer alone; see the module note on order."""

    def __init__(
        self,
        cache: ChunkCache,
        *,
        pin: bool = True,
        target: int = SEGMENT_TARGET,
        direct: bool = False,
    ):
        self.cache = cache
        self.pin = pin
        self.target = target
        self.direct = direct
        self._pending: dict[bytes, Location] = {}
        self._quotes: dict[bytes, bool] = {}  # quote parities given with chunks (chunkquotes)
        self._file: SegmentFile | None = None
        self._segment = 0
        self._size = 0
        self._dirty: list[SegmentFile] = []
        self._created: list[Path] = []
        self._parts: list[Buffer] = []
        self._buffered = 0
        self._writer: ThreadPoolExecutor | None = None
        self._writes: deque[Future[None]] = deque()
        self._stage: mmap.mmap | None = None  # a finished segment's staging buffer, reused
        self._synced: list[SegmentFile] = []  # flushed, held open (locked) until recorded
        self._unsynced = 0
        self.bytes_written = 0
        # the gc epoch before this writer's first "does the store have it?": its commit
        # checks that no gc swept since (repo/commits.py, docs/design.md)
        with cache.env.read() as txn:
            self.gc_epoch = gcstate.epoch(txn)

    def _open_segment(self) -> None:
        self._close_file()
        with self.cache.env.write() as txn:
            self._segment = db.next_counter(txn, "segment")
        path = self.cache.segment_path(self._segment)
        # noted before the file exists: an interrupt (Ctrl-C) the instant after it is made
        # must still find it for discard
        self._created.append(path)
        self._file = SegmentFile(path, self.direct, self._stage)
        self._stage = None
        # held while we append: eviction in any process skips a segment being written
        fcntl.flock(self._file.fd, fcntl.LOCK_EX)
        self._size = 0

    def _close_file(self) -> None:
        if self._file is not None:
            self._write_buffer()
            self._wait_writes()
            self._stage = self._file.finish()
            self._dirty.append(self._file)
            self._file = None

    def pending(self, cid: ChunkId) -> bool:
        return bytes(cid) in self._pending

    def pending_location(self, cid: bytes) -> Location | None:
        """Where an added chunk will be (gc moves chunks with its own transaction)."""
        return self._pending.get(cid)

    def add(
        self, cid: ChunkId, codec: int, stored: Buffer, raw_len: int, odd: bool | None = None
    ) -> None:
        """Append a chunk (`stored` as `codec` made it); `odd`, when given, is its quote
        parity, recorded with its location (meta/chunkquotes.py)."""
        if bytes(cid) in self._pending:
            return
        if odd is not None:
            self._quotes[bytes(cid)] = odd
        if self._file is None or self._size >= self.target:
            self._open_segment()
        header = _HEADER.pack(MAGIC, bytes(cid), codec, raw_len, len(stored))
        # Records are gathered so that a directory of small files costs a few large writes,
        # not two system calls per file; `stored` is kept, not copied (SegmentFile.write).
        self._parts += (header, stored)
        self._buffered += len(header) + len(stored)
        offset = self._size + len(header)
        self._size = offset + len(stored)
        self.bytes_written += len(header) + len(stored)
        self._pending[bytes(cid)] = Location(self._segment, offset, len(stored), raw_len, codec)
        if self._buffered >= WRITE_BUFFER:
            self._write_buffer()

    def _write_buffer(self, publish: bool = False) -> None:
        """Hand the gathered records to the writer thread, which overlaps the disk with the
        caller's hashing; one thread keeps the records in file order. `publish`: see
        SegmentFile.write (a direct writer's last partial block)."""
        if not self._parts and not (publish and self.direct and self._file is not None):
            return
        assert self._file is not None
        while len(self._writes) >= WRITES_QUEUED:  # bounds the memory the queue holds
            self._writes.popleft().result()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="mlgitfs-segment")
        # Durable writers sync as they go, on the writer thread: the disk then works while
        # the caller hashes, and the fsync before the commit has little left to do.
        self._unsynced += self._buffered
        sync = self.pin and self._unsynced >= SYNC_EVERY
        if sync:
            self._unsynced = 0
        self._writes.append(self._writer.submit(self._file.write, self._parts, sync, publish))
        self._parts, self._buffered = [], 0

    def _wait_writes(self) -> None:
        while self._writes:
            self._writes.popleft().result()

    def flush(self) -> None:
        """fsync every segment written so far: chunks are durable before LMDB names them.
        The files stay open, and so locked, until `reset` or `discard`: gc never rewrites
        or deletes a segment whose chunks are not recorded yet (docs/design.md, gc)."""
        self._close_file()
        self._wait_writes()
        try:
            for f in self._dirty:
                os.fsync(f.fd)
            if self._dirty:
                fsync_dir(self.cache.root)
        except OSError as exc:
            raise StoreError(f"cannot sync the chunk cache: {exc.strerror}") from exc
        self._synced += self._dirty
        self._dirty = []

    def write_out(self) -> None:
        """Hand every gathered record to the kernel (readable by pread) without fsync: for
        chunks fetched from a remote, which can be fetched again (see the module note)."""
        if self._file is not None:
            self._write_buffer(publish=True)
        self._wait_writes()
        self._synced += self._dirty  # held (locked) until recorded: see `flush`
        self._dirty = []
        self._created = []

    def forget_recorded(self) -> None:
        """After `write_out` and the transaction that recorded the chunks: keep the open
        segment (a long-lived writer appends to one segment, not one per batch)."""
        self._pending.clear()
        self._quotes.clear()
        for f in self._synced:
            f.close()
        self._synced = []

    def record(self, txn: WriteTxn) -> int:
        """Put the locations of flushed chunks in `txn`, with the quote parities given for
        them; returns how many were new."""
        new = 0
        for cid, loc in self._pending.items():
            if chunks.put_location_new(txn, cid, loc.pack()):
                new += 1
                if self.pin:  # not on any remote yet: never evicted until pushed
                    chunks.pin(txn, cid)
        chunkquotes.put_many(txn, self._quotes.items())
        return new

    def reset(self) -> None:
        """After the transaction that recorded the chunks committed: start afresh."""
        self._close_file()
        self._wait_writes()
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None
        for f in self._dirty + self._synced:
            f.close()
        self._dirty, self._synced = [], []
        self._pending.clear()
        self._quotes.clear()
        self._created = []
        self._stage = None

    def discard(self) -> None:
        """The chunks will never be recorded (failed import or commit): delete our segments."""
        self._parts, self._buffered = [], 0
        created = self._created
        with contextlib.suppress(StoreError):
            self.reset()
        for path in created:
            path.unlink(missing_ok=True)
