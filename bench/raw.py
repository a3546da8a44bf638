"""The raw baseline: FastCDC + BLAKE3 + zstd over bytes already in memory, on all cores.

It uses the store's chunking parameters and zstd level (``mlgitfs.store.chunker``), keeps the
compressed form only when it is smaller (as the store does), and runs on a thread pool of
``os.cpu_count()`` threads: pyfastcdc, blake3 and zstandard release the GIL.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import zstandard
from pyfastcdc import FastCDC

from bench.context import KIB, MIB, cpu_count

FALLBACK = {
    "CHUNK_MIN": 128 * KIB,
    "CHUNK_AVG": 512 * KIB,
    "CHUNK_MAX": 2 * MIB,
    "NORMALIZATION": 1,
    "ZSTD_LEVEL": 3,
}
# Where the store keeps each constant (first module that has it wins).
SOURCES = ("mlgitfs.store.chunker", "mlgitfs.store.compress")


@dataclass(frozen=True)
class ChunkParams:
    min_size: int
    avg_size: int
    max_size: int
    normalization: int
    zstd_level: int
    source: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "chunk_min": self.min_size,
            "chunk_avg": self.avg_size,
            "chunk_max": self.max_size,
            "normalization": self.normalization,
            "zstd_level": self.zstd_level,
            "source": self.source,
        }

    def fastcdc(self) -> FastCDC:
        nc = self.normalization if self.normalization in (0, 1, 2, 3) else 1
        return FastCDC(
            self.avg_size,
            min_size=self.min_size,
            max_size=self.max_size,
            normalized_chunking=nc,  # type: ignore[arg-type]
        )


def store_params() -> ChunkParams:
    """The store's constants, or the documented defaults for any that are not there (yet)."""
    values = dict(FALLBACK)
    source = dict.fromkeys(values, "fallback")
    for modname in SOURCES:
        try:
            mod = importlib.import_module(modname)
        except Exception:  # noqa: BLE001 - any failure means "use the fallback"
            continue
        for k in values:
            v = getattr(mod, k, None)
            if source[k] == "fallback" and isinstance(v, int):
                values[k] = v
                source[k] = modname
    return ChunkParams(
        values["CHUNK_MIN"],
        values["CHUNK_AVG"],
        values["CHUNK_MAX"],
        values["NORMALIZATION"],
        values["ZSTD_LEVEL"],
        source,
    )


@dataclass
class RawResult:
    seconds: float
    bytes_in: int
    chunks: int
    bytes_stored: int
    threads: int

    @property
    def throughput(self) -> float:
        return self.bytes_in / self.seconds if self.seconds > 0 else float("inf")


class _Worker:
    def __init__(self, params: ChunkParams) -> None:
        self.params = params
        self.local = threading.local()

    def _cdc(self) -> FastCDC:
        cdc: FastCDC | None = getattr(self.local, "cdc", None)
        if cdc is None:
            cdc = self.params.fastcdc()
            self.local.cdc = cdc
        return cdc

    def _zstd(self) -> zstandard.ZstdCompressor:
        z: zstandard.ZstdCompressor | None = getattr(self.local, "zstd", None)
        if z is None:
            z = zstandard.ZstdCompressor(level=self.params.zstd_level)
            self.local.zstd = z
        return z

    def chunk_one(self, data: memoryview | bytes) -> tuple[int, int]:
        """Hash and compress one chunk; returns (1, stored bytes)."""
        blake3.blake3(data).digest()
        packed = self._zstd().compress(data)
        return 1, min(len(packed), len(data))

    def whole_buffer(self, buf: bytes) -> tuple[int, int]:
        """Chunk a buffer, hash and compress each chunk (one task per small file)."""
        chunks = stored = 0
        for c in self._cdc().cut_buf(buf):
            n, s = self.chunk_one(c.data)
            chunks += n
            stored += s
        return chunks, stored


def read_all(paths: Iterable[Path]) -> list[bytes]:
    return [p.read_bytes() for p in paths]


def run_many(buffers: list[bytes], params: ChunkParams, threads: int | None = None) -> RawResult:
    """Many small buffers (files): one task per buffer."""
    threads = threads or cpu_count()
    w = _Worker(params)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(w.whole_buffer, buffers, chunksize=16))
    secs = time.perf_counter() - t0
    return RawResult(
        secs,
        sum(len(b) for b in buffers),
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        threads,
    )


def run_one_large(buf: bytes, params: ChunkParams, threads: int | None = None) -> RawResult:
    """One large buffer: FastCDC cuts in the calling thread (it releases the GIL) while the
    pool hashes and compresses the chunks already cut."""
    threads = threads or cpu_count()
    w = _Worker(params)
    cdc = params.fastcdc()
    t0 = time.perf_counter()

    def views() -> Iterator[memoryview]:
        for c in cdc.cut_buf(buf):
            yield c.data

    with ThreadPoolExecutor(threads) as pool:
        results = list(pool.map(w.chunk_one, views()))
    secs = time.perf_counter() - t0
    return RawResult(secs, len(buf), len(results), sum(r[1] for r in results), threads)
