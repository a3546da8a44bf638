"""Segment files written through the page cache and direct (O_DIRECT with a staging buffer)
hold exactly the bytes appended, whatever their sizes and alignment."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlgitfs import api
from mlgitfs.store import segfile
from mlgitfs.store.segfile import SegmentFile


def _append(path: Path, direct: bool, batches: list[list[bytes]]) -> bytes:
    f = SegmentFile(path, direct)
    try:
        for i, parts in enumerate(batches):
            # a memoryview part, as a mapped source file's raw chunk is handed over
            f.write([memoryview(p) if j % 2 else p for j, p in enumerate(parts)], sync=i % 2 == 0)
        f.finish()
    finally:
        f.close()
    return b"".join(b"".join(parts) for parts in batches)


@pytest.mark.parametrize("direct", [False, True])
def test_records_larger_than_the_stage_and_unaligned_tails(tmp_path: Path, direct: bool) -> None:
    rng = random.Random(7)
    sizes = [1, 4095, 4097, segfile.STAGE + 3, 45, 2 << 20, 0, 123_457]
    batches = [[rng.randbytes(n) for n in sizes[:4]], [rng.randbytes(n) for n in sizes[4:]]]
    path = tmp_path / "seg"
    expected = _append(path, direct, batches)
    assert path.read_bytes() == expected  # no padding left behind: truncated to its length


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 20_000), max_size=6), max_size=5))
def test_direct_file_holds_what_was_appended(
    tmp_path_factory: pytest.TempPathFactory, sizes: list[list[int]]
) -> None:
    path = tmp_path_factory.mktemp("seg") / "seg"
    batches = [[os.urandom(n) for n in parts] for parts in sizes]
    expected = _append(path, True, batches)
    assert path.read_bytes() == expected


def test_large_unaligned_file_imports_and_exports(tmp_path: Path, home: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = random.Random(3).randbytes(20 << 20) + b"tail" * 1001  # many chunks, odd length
    (src / "big.bin").write_bytes(data)
    api.init(home, "ds", "dataset", "strict")
    api.import_dir(home, "ds", src, "big")
    out = tmp_path / "out"
    api.export(home, "ds@main", out)
    assert (out / "big.bin").read_bytes() == data


def test_published_records_are_readable_before_finish(tmp_path: Path) -> None:
    """A fetcher's segment: after each publishing write, every record appended so far can
    be read back from the file (a reader may pread it at once); the end is exact after
    `finish`."""
    path = tmp_path / "seg"
    f = SegmentFile(path, True)
    rng = random.Random(11)
    expected = b""
    try:
        for n in (100, 5000, 4096, 1, 70_000, 3):
            part = rng.randbytes(n)
            f.write([part], sync=False, publish=True)
            expected += part
            with path.open("rb") as r:
                assert r.read(len(expected)) == expected  # beyond it: zero padding at most
        f.finish()
    finally:
        f.close()
    assert path.read_bytes() == expected
