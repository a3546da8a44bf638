"""gc's segment step: delete segment files nothing lives in, rewrite sparse ones.

A segment is touched only under its flock, taken without waiting: a writer holds it from
the file's creation until its chunks are recorded (store/cache.py), so a segment being
written, or written and not yet recorded, is skipped. What is live is read from LMDB under
that lock: a record is live when its chunk's recorded location is this record.

Rewrite order (crash safety): the live records are appended to a new segment of gc's own
and fsynced; one LMDB transaction moves each chunk whose location is still the old record;
only then is the old file unlinked. A reader that looked a location up before the move
still reads the old file through an open descriptor, or finds it gone and looks again
(Store.read_chunk). Killed before the transaction, the new segment holds records nothing
locates (the next gc deletes it); after it, the old one does (likewise).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass

from mlgitfs.errors import StoreError
from mlgitfs.meta import chunks
from mlgitfs.model.ids import ChunkId
from mlgitfs.store.cache import RECORD_HEADER, ChunkCache, Location, SegmentWriter, scan_segment
from mlgitfs.store.durable import fsync_dir

log = logging.getLogger(__name__)
BATCH_BYTES = 256 << 20  # live bytes moved per relocation transaction


@dataclass
class CompactStats:
    deleted: int = 0  # segment files unlinked with nothing live
    deleted_bytes: int = 0
    rewritten: int = 0  # sparse segment files whose live records moved
    rewritten_bytes: int = 0  # their size before
    written_bytes: int = 0  # the new segments' size
    skipped_busy: int = 0  # locked by a writer

    @property
    def freed(self) -> int:
        return self.deleted_bytes + self.rewritten_bytes - self.written_bytes


class _Batch:
    def __init__(self, cache: ChunkCache) -> None:
        self.writer: SegmentWriter = cache.writer(pin=False)
        self.moved: list[tuple[bytes, Location]] = []  # chunk, its old location
        self.old: list[tuple[int, int, int]] = []  # segment, locked fd, size
        self.bytes = 0


def compact(cache: ChunkCache, segments: list[int], threshold: float) -> CompactStats:
    """Delete the `segments` with nothing live; rewrite those whose live fraction is below
    `threshold` (0..1). Segments whose lock a writer holds are skipped."""
    stats = CompactStats()
    batch = _Batch(cache)
    try:
        for seg in segments:
            _one(cache, seg, threshold, stats, batch)
            if batch.bytes >= BATCH_BYTES:
                _commit(cache, batch, stats)
                batch = _Batch(cache)
        _commit(cache, batch, stats)
    finally:
        for _, fd, _ in batch.old:
            os.close(fd)
        batch.writer.discard()
    return stats


def _one(cache: ChunkCache, seg: int, threshold: float, stats: CompactStats, b: _Batch) -> None:
    path = cache.segment_path(seg)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    keep_fd = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            stats.skipped_busy += 1
            return
        size = os.fstat(fd).st_size
        if size == 0:
            return  # just created: its writer takes the lock before writing anything
        live: list[tuple[bytes, Location]] = []
        with cache.env.read() as txn:
            for cid, offset in scan_segment(fd):
                data = chunks.get_location(txn, cid)
                if data is not None:
                    loc = Location.unpack(data)
                    if loc.segment == seg and loc.offset == offset:
                        live.append((cid, loc))
        live_bytes = sum(loc.stored_len + RECORD_HEADER for _, loc in live)
        if not live:
            path.unlink(missing_ok=True)
            _fsync_dir(cache)
            cache.drop_fd(seg)
            stats.deleted += 1
            stats.deleted_bytes += size
            return
        if live_bytes >= threshold * size:
            return
        for cid, loc in live:
            stored = os.pread(fd, loc.stored_len, loc.offset)
            if len(stored) != loc.stored_len:
                raise StoreError(f"chunk cache segment {seg} is shorter than its index says")
            b.writer.add(ChunkId(cid), loc.codec, stored, loc.raw_len)
            b.moved.append((cid, loc))
        b.old.append((seg, fd, size))
        b.bytes += live_bytes
        keep_fd = True  # locked until the batch's records are moved and the file unlinked
    finally:
        if not keep_fd:
            os.close(fd)


def _commit(cache: ChunkCache, b: _Batch, stats: CompactStats) -> None:
    if not b.old:
        return
    b.writer.flush()
    with cache.env.write() as txn:
        for cid, old in b.moved:
            new = b.writer.pending_location(cid)
            if new is not None and chunks.get_location(txn, cid) == old.pack():
                chunks.set_location(txn, cid, new.pack())
    stats.written_bytes += b.writer.bytes_written
    b.writer.reset()
    for seg, fd, size in b.old:
        cache.segment_path(seg).unlink(missing_ok=True)
        cache.drop_fd(seg)
        os.close(fd)
        stats.rewritten += 1
        stats.rewritten_bytes += size
    b.old = []
    _fsync_dir(cache)
    log.info("gc rewrote %d segments", stats.rewritten)


def _fsync_dir(cache: ChunkCache) -> None:
    with contextlib.suppress(OSError):
        fsync_dir(cache.root)
