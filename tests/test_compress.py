"""Chunk compression: zstd where it saves at least 1/32, the raw bytes (uncopied) otherwise,
and every stored form decompresses to the raw bytes."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlgitfs.errors import CorruptObject
from mlgitfs.store import compress


def test_random_bytes_stay_raw_and_uncopied() -> None:
    raw = memoryview(os.urandom(300_000))
    codec, stored = compress.compress(raw)
    assert codec == compress.RAW
    assert stored is raw


def test_compressible_part_anywhere_in_a_chunk_is_found() -> None:
    # Zeros only in the first quarter: a sample taken inside the chunk would miss them.
    raw = bytes(64 << 10) + os.urandom(192 << 10)
    codec, stored = compress.compress(raw)
    assert codec == compress.ZSTD
    assert len(stored) < len(raw) * 0.8
    assert compress.decompress(codec, stored, len(raw), "chunk") == raw


@given(st.binary(max_size=5000) | st.text(max_size=3000).map(str.encode))
def test_round_trip(raw: bytes) -> None:
    codec, stored = compress.compress(raw)
    if codec == compress.ZSTD:
        assert len(stored) <= len(raw) - len(raw) // 32
    assert compress.decompress(codec, stored, len(raw), "chunk") == raw


def test_damaged_stored_bytes_are_a_corrupt_object() -> None:
    raw = b"labels,0\n" * 10_000
    codec, stored = compress.compress(raw)
    assert codec == compress.ZSTD
    damaged = bytes(stored[:20]) + bytes(len(stored) - 20)
    with pytest.raises(CorruptObject):
        compress.decompress(codec, damaged, len(raw), "chunk 00ff")
