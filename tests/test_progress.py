"""Progress counts the unit it names and is told the totals where they are known: import and
export count files, push and prefetch chunks, fsck chunks (push counted chunks plus metadata
objects as "files", prefetch counted chunks as files)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mlgitfs import api
from tests.conftest import write_tree


class Recorder:
    """A progress double: every (done, bytes) call and the totals it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.totals: tuple[int | None, int | None] | None = None

    def __call__(self, done: int, nbytes: int) -> None:
        self.calls.append((done, nbytes))

    def total(self, items: int | None, nbytes: int | None) -> None:
        self.totals = (items, nbytes)

    def wait_totals(self) -> tuple[int | None, int | None]:
        deadline = time.monotonic() + 10  # import counts in a thread of its own
        while self.totals is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.totals is not None
        return self.totals


def test_progress_units_and_totals(tmp_path: Path, home: Path) -> None:
    files = {f"d{i % 7}/f{i}.bin": os.urandom(1000 + i) for i in range(300)}
    src = write_tree(tmp_path / "src", {**files, "link": "->d0/f0.bin"})
    size = sum(len(v) for v in files.values())
    api.init(home, "ds", "dataset", "mutable")

    rec = Recorder()
    api.import_dir(home, "ds", src, "v1", progress=rec)
    assert rec.wait_totals() == (300, size)
    assert rec.calls[-1] == (300, size) and len(rec.calls) == 300
    again = Recorder()
    api.import_dir(home, "ds", src, "v1 again", progress=again)  # unchanged files count too
    assert again.wait_totals() == (300, size) and again.calls[-1] == (300, size)

    rec = Recorder()
    api.export(home, "ds", tmp_path / "out", rec)
    assert rec.totals == (300, size) and rec.calls[-1] == (300, size)

    api.remote_add(home, "origin", (tmp_path / "remote").as_uri())
    rec = Recorder()
    pushed = api.push(home, "ds", progress=rec)
    assert pushed.chunks == 300  # one chunk per small file
    assert rec.totals is not None and rec.totals[0] == 300
    assert rec.calls[-1][0] == 300  # chunks, not chunks + metadata objects

    other = tmp_path / "other"
    api.clone(other, (tmp_path / "remote").as_uri(), "ds")
    rec = Recorder()
    got = api.prefetch(other, "ds@main:d3", rec)
    assert rec.totals == (got.chunks, None) and rec.calls[-1][0] == got.chunks
    assert got.chunks == sum(1 for k in files if k.startswith("d3/"))
    api.close_store(other)

    rec = Recorder()
    report = api.fsck(home, progress=rec)
    assert report.clean and rec.totals == (report.chunks, None)
    assert rec.calls[-1] == (report.chunks, 0)
