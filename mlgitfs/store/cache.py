"""The local chunk cache: append-only segment files, with each chunk's location in LMDB.

Write order (crash safety): a writer appends chunks to a segment file of its own, fsyncs it,
and only then records their locations in LMDB, in the same transaction as the objects and
the ref that need them. A crash before that transaction leaves unreferenced bytes in a
segment (reclaimed by gc), never a location that points at nothing. Every chunk read from
disk is hash-checked before use: LMDB and the page cache have no checksums of their own.

Record layout in a segment: MAGIC, chunk id (32), codec (1), raw length (4), stored length (4),
then the stored bytes; the header lets fsck and recovery scan a segment without the index.
"""

from __future__ import annotations

import contextlib
import os
import struct
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from mlgitfs.errors import CorruptObject, MissingObject, StoreError
from mlgitfs.meta import db
from mlgitfs.meta.env import MetaEnv, ReadTxn, WriteTxn
from mlgitfs.model.ids import ChunkId, hash_bytes, short_hex
from mlgitfs.store import compress

MAGIC = b"MGC1"
_HEADER = struct.Struct("<4s32sBII")
_LOC = struct.Struct("<IQIIB")  # segment, offset of stored bytes, stored len, raw len, codec
SEGMENT_TARGET = 256 << 20
WRITE_BUFFER = 4 << 20


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
        data = txn.get("chunks", bytes(cid))
        return None if data is None else Location.unpack(data)

    def has(self, cid: ChunkId) -> bool:
        with self.env.read() as txn:
            return txn.has("chunks", bytes(cid))

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
                    self._fds[segment] = fd
        return fd

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
        if len(raw) != loc.raw_len or hash_bytes(raw) != cid:
            raise CorruptObject(short_hex(cid), "chunk does not hash to its id (bit rot?)")
        return raw

    def writer(self) -> SegmentWriter:
        return SegmentWriter(self)

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds.clear()


def _write_all(fd: int, data: bytearray) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        raise StoreError(f"cannot write the chunk cache: {exc.strerror}") from exc
    finally:
        view.release()


class SegmentWriter:
    """Appends chunks to segments owned by this writer alone; see the module note on order."""

    def __init__(self, cache: ChunkCache) -> None:
        self.cache = cache
        self._pending: dict[bytes, Location] = {}
        self._file: int | None = None
        self._segment = 0
        self._size = 0
        self._dirty: list[int] = []
        self._created: list[Path] = []
        self._buffer = bytearray()
        self._writer: ThreadPoolExecutor | None = None
        self._write: Future[None] | None = None
        self.bytes_written = 0

    def _open_segment(self) -> None:
        self._close_file()
        with self.cache.env.write() as txn:
            self._segment = db.next_counter(txn, "segment")
        path = self.cache.segment_path(self._segment)
        try:
            self._file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create chunk segment {path}: {exc.strerror}") from exc
        self._created.append(path)
        self._size = 0

    def _close_file(self) -> None:
        if self._file is not None:
            self._write_buffer()
            self._dirty.append(self._file)
            self._file = None

    def pending(self, cid: ChunkId) -> bool:
        return bytes(cid) in self._pending

    def add(self, cid: ChunkId, codec: int, stored: bytes, raw_len: int) -> None:
        if bytes(cid) in self._pending:
            return
        if self._file is None or self._size >= SEGMENT_TARGET:
            self._open_segment()
        header = _HEADER.pack(MAGIC, bytes(cid), codec, raw_len, len(stored))
        # Small records are gathered so that a directory of small files costs a few large
        # writes, not two system calls per file.
        self._buffer += header
        self._buffer += stored
        offset = self._size + len(header)
        self._size = offset + len(stored)
        self.bytes_written += len(header) + len(stored)
        self._pending[bytes(cid)] = Location(self._segment, offset, len(stored), raw_len, codec)
        if len(self._buffer) >= WRITE_BUFFER:
            self._write_buffer()

    def _write_buffer(self) -> None:
        """Hand the gathered records to the writer thread, which overlaps the disk with the
        caller's hashing; one thread keeps the records in file order."""
        if not self._buffer:
            return
        assert self._file is not None
        self._wait_writes()
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="mlgitfs-segment")
        self._write = self._writer.submit(_write_all, self._file, self._buffer)
        self._buffer = bytearray()

    def _wait_writes(self) -> None:
        if self._write is not None:
            write, self._write = self._write, None
            write.result()

    def flush(self) -> None:
        """fsync every segment written so far: chunks are durable before LMDB names them."""
        self._close_file()
        self._wait_writes()
        try:
            for fd in self._dirty:
                os.fsync(fd)
                os.close(fd)
            if self._dirty:
                fd = os.open(self.cache.root, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except OSError as exc:
            raise StoreError(f"cannot sync the chunk cache: {exc.strerror}") from exc
        self._dirty = []

    def sync(self) -> None:
        """Like `flush`, but keep the open segment open: a long-lived writer (chunks fetched
        from a remote, a few at a time) then appends to one segment, not one per batch."""
        if self._file is not None:
            self._write_buffer()
        self._wait_writes()
        try:
            for fd in self._dirty:
                os.fsync(fd)
                os.close(fd)
            self._dirty = []
            if self._file is not None:
                os.fsync(self._file)
            if self._created:  # a new segment's directory entry must be durable too
                fd = os.open(self.cache.root, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self._created = []
        except OSError as exc:
            raise StoreError(f"cannot sync the chunk cache: {exc.strerror}") from exc

    def forget_recorded(self) -> None:
        """After `sync` and the transaction that recorded the chunks: keep the open segment."""
        self._pending.clear()

    def record(self, txn: WriteTxn) -> int:
        """Put the locations of flushed chunks in `txn`; returns how many were new."""
        new = 0
        for cid, loc in self._pending.items():
            if txn.put_new("chunks", cid, loc.pack()):
                new += 1
        return new

    def reset(self) -> None:
        """After the transaction that recorded the chunks committed: start afresh."""
        self._close_file()
        self._wait_writes()
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None
        for fd in self._dirty:
            os.close(fd)
        self._dirty = []
        self._pending.clear()
        self._created = []

    def discard(self) -> None:
        """The chunks will never be recorded (failed import or commit): delete our segments."""
        self._buffer = bytearray()
        created = self._created
        with contextlib.suppress(StoreError):
            self.reset()
        for path in created:
            path.unlink(missing_ok=True)
