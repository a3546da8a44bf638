"""Chunk compression with zstd, kept only where it shrinks the chunk; sole zstandard importer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import overload

import zstandard

from mlgitfs.errors import CorruptObject

# Level 1: on 2 cores level 3 made imports 1.3x slower for a few percent of space on
# typical data (images and model weights hardly compress at any level).
ZSTD_LEVEL = 1
RAW = 0
ZSTD = 1
# No sampling before compressing: zstd gives up on random-looking data at 6-8 GB/s (it
# emits raw blocks), faster than two 16 KiB trial compressions per chunk cost; on text-like
# small files the trials added 38% to the compression time (measured with zstd 1.5.7).
_local = threading.local()
MAX_RAW = 64 << 20  # no chunk or object decompresses to more (chunks are a few MiB at most)
STREAM_WINDOW = 8 << 20


def _cctx() -> zstandard.ZstdCompressor:
    # Contexts are not thread-safe; one per thread keeps compression parallel.
    ctx = getattr(_local, "c", None)
    if ctx is None:
        ctx = _local.c = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
    return ctx


def _dctx() -> zstandard.ZstdDecompressor:
    ctx = getattr(_local, "d", None)
    if ctx is None:
        ctx = _local.d = zstandard.ZstdDecompressor()
    return ctx


def _stream_dctx() -> zstandard.ZstdDecompressor:
    # For frames that do not declare their size (never ours): a bounded window, so the
    # decoder's own buffer cannot grow past it whatever the frame header asks for.
    ctx = getattr(_local, "s", None)
    if ctx is None:
        ctx = _local.s = zstandard.ZstdDecompressor(max_window_size=STREAM_WINDOW)
    return ctx


def compress(raw: bytes | memoryview) -> tuple[int, bytes | memoryview]:
    """(codec, stored bytes): zstd when it saves at least 1/32 of the chunk, else `raw`
    itself, uncopied (a view of a mapped file stays one: the segment writer writes from it)."""
    if len(raw) < 64:
        return RAW, raw
    packed = _cctx().compress(raw)
    if len(packed) <= len(raw) - len(raw) // 32:
        return ZSTD, packed
    return RAW, raw


@overload
def decompress(codec: int, stored: bytes, raw_len: int, what: str) -> bytes: ...
@overload
def decompress(codec: int, stored: memoryview, raw_len: int, what: str) -> bytes | memoryview: ...
def decompress(
    codec: int, stored: bytes | memoryview, raw_len: int, what: str
) -> bytes | memoryview:
    """The chunk's raw bytes: `stored` itself (uncopied) when it was not compressed.

    Memory is bounded by `raw_len` (the length the index or segment record expects, itself
    at most MAX_RAW), never by what the frame declares: python-zstandard ignores
    `max_output_size` when a frame declares its size, so a frame declaring more than
    `raw_len` is refused before anything is allocated, and one that declares nothing is
    streamed with a hard cap. Any other length is CorruptObject too."""
    if codec == RAW:
        if len(stored) != raw_len:
            raise CorruptObject(what, f"stored chunk has {len(stored)} bytes, expected {raw_len}")
        return stored
    if codec != ZSTD:
        raise CorruptObject(what, f"unknown chunk codec {codec}")
    if not 0 <= raw_len <= MAX_RAW:
        raise CorruptObject(what, f"declared raw length {raw_len} is out of bounds")
    try:
        declared = zstandard.frame_content_size(stored)
        if declared >= 0:
            if declared != raw_len:
                raise CorruptObject(
                    what, f"zstd frame declares {declared} bytes, expected {raw_len}"
                )
            out = bytes(_dctx().decompress(stored, max_output_size=raw_len))
        else:
            parts, got = [], 0
            with _stream_dctx().stream_reader(stored, read_across_frames=True) as reader:
                while got <= raw_len:
                    part = reader.read(raw_len + 1 - got)
                    if not part:
                        break
                    parts.append(part)
                    got += len(part)
            out = b"".join(parts)
    except zstandard.ZstdError as exc:
        raise CorruptObject(what, "chunk does not decompress") from exc
    if len(out) != raw_len:
        raise CorruptObject(what, f"chunk decompresses to {len(out)} bytes, expected {raw_len}")
    return out


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def frames_in(data: bytes) -> Iterator[bytes]:
    """The decompressed bytes of every zstd frame found anywhere in `data` (a segment file, a
    pack, any remote object): erase's checks look for a marker in them too, since a
    compressed marker is not found by a search of the raw bytes."""
    at = data.find(ZSTD_MAGIC)
    while at >= 0:
        try:
            out = _stream_dctx().decompressobj().decompress(data[at:])
        except zstandard.ZstdError:
            out = b""  # the magic bytes by chance, not a frame
        yield out
        at = data.find(ZSTD_MAGIC, at + 1)
