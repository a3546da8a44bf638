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
# A chunk at least PROBE_MIN long is first sampled: if neither of two PROBE-byte samples
# (a quarter and three quarters in) shrinks by 1/32, the chunk is stored raw without
# compressing the rest (borg's "auto" compression probes with lz4 likewise). Random-looking
# data (images, weights, archives) is most of a dataset's bytes, and compressing it only to
# throw the result away was a third of an import's CPU. On the bench's 1 GiB file (3/4
# random) this stores 0.5% more bytes and imports in 0.8-0.9 s instead of 1.0-1.1 s.
PROBE = 16 << 10
PROBE_MIN = 4 * PROBE
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
    """(codec, stored bytes): zstd when it saves at least 1/32 of the chunk (and of its
    sample, see PROBE), else `raw` itself, uncopied (a view of a mapped file stays one: the
    segment writer writes from it)."""
    if len(raw) < 64:
        return RAW, raw
    if len(raw) >= PROBE_MIN and not any(
        len(_cctx().compress(memoryview(raw)[at : at + PROBE])) <= PROBE - PROBE // 32
        for at in (len(raw) // 4, 3 * len(raw) // 4 - PROBE)
    ):
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
