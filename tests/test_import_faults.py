"""Import of a source that changes under it: a large file is read in windows (never mapped),
cut exactly as a whole; one that shrinks or changes while being read stops the import with
an error naming it and leaves no segment behind, never a SIGBUS (issue 12, item 6)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.errors import CorruptObject, SourceError
from mlgitfs.repo import filedata
from mlgitfs.store.chunker import CHUNK_MAX, Chunker

MLGITFS = str(Path(sys.executable).parent / "mlgitfs")


@pytest.mark.parametrize("window", [CHUNK_MAX + 1, 3 << 20, 5 << 20, 64 << 20])
def test_windows_cut_like_the_whole_file(tmp_path: Path, window: int) -> None:
    # Runs of zeros make chunks of the maximum length; random bytes make content-defined ones.
    data = os.urandom(7 << 20) + bytes(5 << 20) + os.urandom(3 << 20) + b"tail"
    path = tmp_path / "f"
    path.write_bytes(data)
    chunker = Chunker()
    whole = list(chunker.cut(data))
    got: list[tuple[int, int]] = []
    pieces: list[bytes] = []
    fd = os.open(path, os.O_RDONLY)
    try:
        start = 0
        for view, cuts in filedata.windows(fd, len(data), chunker, "f", window):
            got.extend((start + off, length) for off, length in cuts)
            pieces.extend(bytes(view[off : off + length]) for off, length in cuts)
            start += cuts[-1][0] + cuts[-1][1]
    finally:
        os.close(fd)
    assert got == whole
    assert b"".join(pieces) == data


def test_windows_refuse_a_file_shorter_than_its_size(tmp_path: Path) -> None:
    path = tmp_path / "shrunk.bin"
    path.write_bytes(os.urandom(4 << 20))
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(SourceError, match="shrunk.bin shrank while it was being imported"):
            list(filedata.windows(fd, 40 << 20, Chunker(), "shrunk.bin", 3 << 20))
    finally:
        os.close(fd)


def test_file_shrinking_during_import(tmp_path: Path, home: Path) -> None:
    """A real `mlgitfs import` while the test truncates its large file: it ends with exit 0
    (the truncation came first or last) or with the source error naming the file, never by a
    signal, and a failed import leaves no segment."""
    api.init(home, "ds", "dataset", "mutable")
    api.close_store(home)
    src = tmp_path / "src"
    src.mkdir()
    big = src / "big.bin"
    with open(big, "wb") as f:
        for _ in range(16):
            f.write(os.urandom(16 << 20))
    chunks = home / "chunks"
    before = set(os.listdir(chunks)) if chunks.exists() else set()
    proc = subprocess.Popen(
        [MLGITFS, "--home", str(home), "import", "ds", str(src), "-m", "v1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        # Truncate once the import has written its first segment: it is mid-file then.
        while time.monotonic() < deadline and proc.poll() is None:
            if chunks.exists() and set(os.listdir(chunks)) - before:
                break
            time.sleep(0.005)
        os.truncate(big, 1 << 20)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != -signal.SIGBUS and proc.returncode >= 0, err
    if proc.returncode != 0:
        assert proc.returncode == SourceError.exit_code, err
        assert b"big.bin" in err and (b"shrank" in err or b"changed" in err), err
        assert set(os.listdir(chunks)) == before
    assert api.fsck(home).clean


@pytest.mark.parametrize("dest_exists", [False, True])
def test_failed_export_leaves_nothing(tmp_path: Path, dest_exists: bool) -> None:
    """A chunk damaged on disk stops the export (CorruptObject) after some files were
    written: the destination is left as it was, with no file of any size in it."""
    home = tmp_path / "damaged"  # not the fixture's home: this store ends damaged on purpose
    api.init(home, "ds", "dataset", "mutable")
    files: dict[str, bytes] = {f"d{i % 3}/f{i:02}.bin": os.urandom(4000) for i in range(30)}
    files["z/last.bin"] = os.urandom(300_000)  # written last, its chunk last in the segment
    src = tmp_path / "src"
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    api.import_dir(home, "ds", src, "v1")
    api.close_store(home)
    (segment,) = (home / "chunks").iterdir()
    with open(segment, "r+b") as f:
        f.seek(-1000, os.SEEK_END)
        byte = f.read(1)
        f.seek(-1000, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0xFF]))
    dest = tmp_path / "out"
    if dest_exists:
        dest.mkdir()
    with pytest.raises(CorruptObject):
        api.export(home, "ds@main", dest)
    assert dest.exists() == dest_exists
    if dest_exists:
        assert list(dest.iterdir()) == []
