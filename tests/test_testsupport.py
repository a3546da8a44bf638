"""The support code the suite and the benchmarks share (testsupport/): synthetic versions."""

from __future__ import annotations

from pathlib import Path

from mlgitfs import api
from testsupport.synth import CONTENT, build, dir_name, file_name, layout


def test_synthetic_version_layout_and_content(home: Path) -> None:
    s = build(home, "synth", 2_500, min_dirs=10)
    assert (s.dirs, s.per_dir, s.files) == (10, 250, 2_500) == (*layout(2_500, 10), 2_500)
    top = [e.path for e in api.ls(home, "synth@v1")]
    assert top == [dir_name(d) for d in range(10)]
    names = [e.path.rsplit("/", 1)[-1] for e in api.ls(home, f"synth@v1:{dir_name(3)}")]
    assert names == [file_name(3, i, 250) for i in range(250)]
    assert b"".join(api.cat(home, f"synth@v1:{s.sample}")) == CONTENT


def test_synthetic_flat_version_is_one_paged_directory(home: Path) -> None:
    s = build(home, "flat", 3_000, flat=True)
    assert (s.dirs, s.per_dir, s.sample) == (1, 3_000, f"flat/{file_name(0, 1_500, 3_000)}")
    assert sum(1 for _ in api.ls(home, "flat@main:flat")) == 3_000
