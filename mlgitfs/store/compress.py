"""Chunk compression with zstd, kept only where it shrinks the chunk; sole zstandard importer."""

from __future__ import annotations

import threading
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
    """The chunk's raw bytes: `stored` itself (uncopied) when it was not compressed."""
    if codec == RAW:
        return stored
    if codec != ZSTD:
        raise CorruptObject(what, f"unknown chunk codec {codec}")
    try:
        return bytes(_dctx().decompress(stored, max_output_size=raw_len))
    except zstandard.ZstdError as exc:
        raise CorruptObject(what, "chunk does not decompress") from exc
