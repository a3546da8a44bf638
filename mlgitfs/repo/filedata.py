"""Turning file bytes into chunks and a tree entry reference; shared by import and overlay commit.

`encode_buffer` runs in worker threads: FastCDC, BLAKE3 and zstd release the GIL on large
buffers, so one pool uses every core. Chunks the store already has are not compressed again.
For a CSV or TSV file (`quotes`), each new chunk's quote parity is counted while its bytes
are in hand and recorded with the chunk (meta/chunkquotes.py): row blame then reads none.
"""

from __future__ import annotations

import mmap
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import TypeVar

from mlgitfs.errors import SourceError
from mlgitfs.meta import chunkquotes
from mlgitfs.model.ids import ChunkId, ObjectId, hash_bytes
from mlgitfs.model.objects import ChunkRef, EntryKind, Manifest, object_id
from mlgitfs.store import compress
from mlgitfs.store.cache import SegmentWriter
from mlgitfs.store.chunker import Chunker

# A file at most this large is read whole in one worker; larger ones are read in windows.
WHOLE_FILE_LIMIT = 8 << 20
BATCH_BYTES = 8 << 20
WRITE_MEMORY = 256 << 20
HELD_BATCHES = 8  # encoded batches of a large file held before the oldest is waited for
WINDOW = 24 << 20  # below memory.py's mmap threshold: freed windows are reused, not faulted in
POPULATE_LIMIT = 4 << 30
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class EncodedChunk:
    id: ChunkId
    raw_len: int
    codec: int  # compress.RAW or compress.ZSTD; -1 when the store already had it
    stored: bytes | memoryview  # a view of the source when stored raw: written, not copied
    odd: bool | None = None  # its quote parity, when counted (`quotes`)


def encode_buffer(
    buf: bytes | memoryview,
    cuts: list[tuple[int, int]],
    known: Callable[[ChunkId], bool],
    quotes: bool = False,
) -> list[EncodedChunk]:
    """The chunks `cuts` of `buf`, those the store lacks compressed (with `quotes`, their
    quote parities counted)."""
    out = []
    for off, length in cuts:
        piece = buf[off : off + length]
        cid = ChunkId(hash_bytes(piece))
        if known(cid):
            out.append(EncodedChunk(cid, length, -1, b""))
        else:
            codec, stored = compress.compress(piece)
            odd = _odd_quotes(buf, off, length) if quotes else None
            out.append(EncodedChunk(cid, length, codec, stored, odd))
    return out


def _odd_quotes(buf: bytes | memoryview, off: int, length: int) -> bool:
    """A chunk's quote parity, counted in place: a view of a whole bytes object (`windows`
    makes them) is counted on that object; copying the chunk out first cost more than the
    count (0.08 s against 0.03 s per 100 MB)."""
    src = buf
    if (
        isinstance(buf, memoryview)
        and isinstance(buf.obj, bytes)
        and buf.itemsize == 1
        and buf.nbytes == len(buf.obj)
    ):
        src = buf.obj
    if isinstance(src, bytes):
        return src.count(b'"', off, off + length) % 2 == 1
    return chunkquotes.odd(src[off : off + length])


def batches(
    items: Iterable[tuple[_T, int]], limit: int = BATCH_BYTES
) -> Iterator[list[tuple[_T, int]]]:
    """Consecutive (item, length) pairs in groups of about `limit` bytes, yielded as the
    items come (a large file's first batches are hashed while the chunker is still cutting
    the rest); one empty group for no items."""
    batch: list[tuple[_T, int]] = []
    size = 0
    for item in items:
        if size >= limit:
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item[1]
    yield batch


def read_whole(
    fd: int, chunker: Chunker, known: Callable[[ChunkId], bool], quotes: bool = False
) -> list[EncodedChunk]:
    """Read and encode a small file in one go, from its start."""
    size = os.fstat(fd).st_size
    parts = []
    offset = 0
    while True:
        b = os.pread(fd, max(size + 1, 1 << 16), offset)
        if not b:
            break
        parts.append(b)
        offset += len(b)
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    return encode_buffer(data, list(chunker.cut(data)), known, quotes)


def windows(
    fd: int, size: int, chunker: Chunker, name: str, window: int = WINDOW
) -> Iterator[tuple[memoryview, list[tuple[int, int]]]]:
    """A large file's bytes in windows read with pread, each with the chunks it completes
    (offsets within the window): the same chunks as cutting the whole file at once.

    A chunk's end depends only on the bytes from its start, so a chunk ending before its
    window's end is final; the last one is cut again at the start of the next window (at
    most one maximum chunk read twice per window). Reads, not a mapping: a file that
    shrinks while it is read gives `SourceError`, where a mapping would kill the process
    with SIGBUS (Python cannot catch it). Each window is a fresh buffer, so chunks stored
    raw can stay views of it until written."""
    offset = 0
    while True:
        want = min(window, size - offset)
        data = os.pread(fd, want, offset)
        while len(data) < want:  # a regular file reads short only at its end
            more = os.pread(fd, want - len(data), offset + len(data))
            if not more:
                raise SourceError(
                    f"{name} shrank while it was being imported (from {size} bytes to "
                    f"{offset + len(data)}); nothing was imported"
                )
            data += more
        last = offset + want >= size
        view = memoryview(data)
        cuts = []
        for off, length in chunker.cut(view):
            if not last and off + length >= want:
                break
            cuts.append((off, length))
        assert cuts, "a window is larger than the largest chunk"
        yield view, cuts
        if last:
            return
        offset += cuts[-1][0] + cuts[-1][1]


def write_budget() -> int:
    """Bytes of file content a commit holds while encoding: `MLGITFS_WRITE_MEMORY` (bytes),
    else 256 MiB. Memory then follows this, not the size of the change."""
    try:
        return max(WHOLE_FILE_LIMIT, int(os.environ.get("MLGITFS_WRITE_MEMORY", WRITE_MEMORY)))
    except ValueError:
        return WRITE_MEMORY


def stripped(chunks: list[EncodedChunk]) -> list[EncodedChunk]:
    """The chunks as ids and lengths only, once their bytes are with the segment writer
    (`finish_file` then writes nothing again): what a caller keeps costs no file bytes."""
    return [EncodedChunk(ch.id, ch.raw_len, -1, b"") for ch in chunks]


def hand_over(writer: SegmentWriter, chunks: list[EncodedChunk]) -> list[EncodedChunk]:
    """Give the new chunks to the segment writer; their stripped list."""
    for ch in chunks:
        if ch.codec >= 0:
            writer.add(ch.id, ch.codec, ch.stored, ch.raw_len, ch.odd)
    return stripped(chunks)


def encode_large(
    pool: Executor,
    writer: SegmentWriter,
    fd: int,
    size: int,
    chunker: Chunker,
    known: Callable[[ChunkId], bool],
    name: str,
    quotes: bool = False,
) -> list[EncodedChunk]:
    """A large file encoded by the pool window by window, each batch handed to the segment
    writer as soon as it is done while the rest is read and cut (the disk works from the
    start); the reader waits for the oldest batch when HELD_BATCHES are held, so memory is
    bounded whatever the file's size. Returns the file's chunks stripped. One caller thread:
    the writer is not shared."""
    held: deque[Future[list[EncodedChunk]]] = deque()
    out: list[EncodedChunk] = []

    def settle(keep: int) -> None:
        while held and (len(held) > keep or held[0].done()):
            out.extend(hand_over(writer, held.popleft().result()))

    try:
        for view, cuts in windows(fd, size, chunker, name):
            for batch in batches(cuts):
                held.append(pool.submit(encode_buffer, view, batch, known, quotes))
            settle(HELD_BATCHES)
        settle(0)
    finally:
        for future in held:
            future.cancel()
    return out


def read_ahead(fd: int, size: int) -> None:
    """Ask the kernel to read a file that is not in the page cache ahead of the reader, on
    a helper thread (cold 1 GiB import 2.3 to 1.7 s when it was mapped). Files over
    POPULATE_LIMIT are left to the kernel's own read-ahead: they need not fit in memory."""
    if 0 < size <= POPULATE_LIMIT and not _looks_cached(fd, size):
        _start_read_ahead(fd, size)


def _start_read_ahead(fd: int, size: int) -> None:
    ahead = os.dup(fd)  # the caller may close `fd` while this runs
    threading.Thread(target=_read_ahead, args=(ahead, size), daemon=True).start()


def map_file(fd: int, size: int) -> mmap.mmap | bytes:
    """The file mapped read-only. A cached file is populated up front: one call maps every
    page (5 ms for 1 GiB) where faults would cost one per 16 pages. An uncached one is not:
    populating it would read it all before the first cut (0.35 s per GiB here); instead
    the kernel is told to read it ahead on a helper thread while the chunker follows.
    Files over POPULATE_LIMIT are faulted in as read: they need not fit in memory."""
    if size == 0:
        return b""
    small = size <= POPULATE_LIMIT
    cached = small and _looks_cached(fd, size)
    flags = mmap.MAP_SHARED | (mmap.MAP_POPULATE if cached else 0)
    m = mmap.mmap(fd, size, flags=flags, prot=mmap.PROT_READ)
    m.madvise(mmap.MADV_SEQUENTIAL)
    if small and not cached:
        _start_read_ahead(fd, size)
    return m


def _looks_cached(fd: int, size: int) -> bool:
    """Whether 8 pages spread over the file are in the page cache (RWF_NOWAIT reads fail
    with EAGAIN otherwise). Unknown (no RWF_NOWAIT here) counts as cached: the old way."""
    probe = bytearray(1)
    for i in range(8):
        try:
            os.preadv(fd, [probe], size * i // 8, os.RWF_NOWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
    return True


def _read_ahead(fd: int, size: int) -> None:
    try:
        os.posix_fadvise(fd, 0, size, os.POSIX_FADV_WILLNEED)  # drops the GIL while it reads
    except OSError:
        pass  # only a hint: the chunker's page faults read the file anyway
    finally:
        os.close(fd)


def finish_file(
    chunks: list[EncodedChunk], writer: SegmentWriter, new_objects: list[tuple[ObjectId, bytes]]
) -> tuple[EntryKind, bytes, int]:
    """Write new chunks to the segment writer; (entry kind, ref, size) for the tree entry."""
    for ch in chunks:
        if ch.codec >= 0:
            writer.add(ch.id, ch.codec, ch.stored, ch.raw_len, ch.odd)
    size = sum(ch.raw_len for ch in chunks)
    if len(chunks) == 1:
        return EntryKind.FILE, bytes(chunks[0].id), size
    oid, data = object_id(Manifest(tuple(ChunkRef(ch.id, ch.raw_len) for ch in chunks)))
    new_objects.append((oid, data))
    return EntryKind.CHUNKED, bytes(oid), size


def content_ref(path: str, chunker: Chunker) -> tuple[EntryKind, bytes]:
    """The (entry kind, ref) a file's bytes would get in a tree, hashed but not compressed
    or stored: what status compares with a committed entry."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        buf = map_file(fd, os.fstat(fd).st_size)
    finally:
        os.close(fd)
    view = memoryview(buf)
    try:
        refs = [ChunkRef(ChunkId(hash_bytes(view[o : o + n])), n) for o, n in chunker.cut(view)]
    finally:
        view.release()
    if len(refs) == 1:
        return EntryKind.FILE, bytes(refs[0].id)
    return EntryKind.CHUNKED, bytes(object_id(Manifest(tuple(refs)))[0])
