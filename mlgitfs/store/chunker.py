"""Content-defined chunking (FastCDC) with the store's fixed parameters; sole pyfastcdc importer.

The parameters are part of the store format: the same bytes always give the same chunks,
so dedup works across files, versions and repos. They are recorded in the store's config
and in every remote's `mlgitfs.toml`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pyfastcdc import FastCDC

CHUNK_MIN = 128 << 10
CHUNK_AVG = 512 << 10
CHUNK_MAX = 2 << 20
NORMALIZATION = 1


@dataclass(frozen=True, slots=True)
class ChunkerParams:
    min_size: int = CHUNK_MIN
    avg_size: int = CHUNK_AVG
    max_size: int = CHUNK_MAX
    normalization: int = NORMALIZATION

    def as_list(self) -> list[int]:
        return [self.min_size, self.avg_size, self.max_size, self.normalization]


DEFAULT_PARAMS = ChunkerParams()


class Chunker:
    def __init__(self, params: ChunkerParams = DEFAULT_PARAMS) -> None:
        self.params = params
        self._cdc = FastCDC(
            avg_size=params.avg_size,
            min_size=params.min_size,
            max_size=params.max_size,
            normalized_chunking=params.normalization,  # type: ignore[arg-type]
        )

    def cut(self, buf: bytes | bytearray | memoryview) -> Iterator[tuple[int, int]]:
        """(offset, length) of each chunk of `buf`; one (0, 0) chunk for an empty buffer."""
        if len(buf) == 0:
            yield 0, 0
            return
        if len(buf) <= self.params.min_size:
            yield 0, len(buf)
            return
        for chunk in self._cdc.cut_buf(buf):
            yield chunk.offset, chunk.length
