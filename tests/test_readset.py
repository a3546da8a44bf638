"""Read-set lineage (issue 18 item 6): a recorded run over real mounts attaches exactly the
files its process tree read; a process outside the tree is not recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.api import readsets as readsets_api
from mlgitfs.daemon import fuse_ops
from mlgitfs.errors import NotFound
from mlgitfs.model import readset
from mlgitfs.model.ids import ObjectId
from tests.conftest import write_tree
from tests.wmount import MLGITFS, Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason

__all__ = ["mounter"]  # a fixture

JOB = str(Path(__file__).with_name("readsetjob.py"))


@pytest.fixture
def dataset(tmp_path: Path, home: Path) -> dict[str, bytes]:
    api.init(home, "ds", "dataset", "strict")
    files = {f"train/{c}/{i:02d}.bin": os.urandom(500 + 97 * i) for c in "ab" for i in range(10)}
    api.import_dir(home, "ds", write_tree(tmp_path / "src", dict(files)), "v1")
    return files


def _wait(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the job never became ready"
        time.sleep(0.01)


def _recorded_run(
    home: Path,
    tmp_path: Path,
    root: Path,
    name: str,
    job_reads: list[str],
    outsider: list[str],
    *options: str,
) -> subprocess.CompletedProcess[str]:
    """Run the job recorded while a process outside its tree reads `outsider` meanwhile."""
    ready, go = tmp_path / f"{name}.ready", tmp_path / f"{name}.go"
    argv = [MLGITFS, "--home", str(home), "run", "--record", name, "--json", *options, "--"]
    argv += [sys.executable, JOB, str(root), str(ready), str(go), *job_reads]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait(ready, proc)
        for p in outsider:  # this test process is no descendant of the run
            (root / p).read_bytes()
        go.write_text("go")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.mark.parametrize("kind", ["read-only", "multi-version", "writable"])
def test_recorded_loader_reads_exactly(
    dataset: dict[str, bytes], home: Path, tmp_path: Path, mounter: Mounter, kind: str
) -> None:
    if fuse_skip_reason() is not None:
        pytest.skip(str(fuse_skip_reason()))
    if kind == "multi-version":
        mp = mounter("ds")
        root = mp / "@main"
    else:
        mp = mounter("ds@main", "mnt", *(["--read-only"] if kind == "read-only" else []))
        root = mp
    names = sorted(dataset)
    job_reads = [p for i, p in enumerate(names) if i % 3 != 0]
    outsider = [p for i, p in enumerate(names) if i % 3 == 0] + job_reads[:1]
    done = _recorded_run(home, tmp_path, root, "job", job_reads, outsider)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    commit = api.show(home, "ds@main").id
    rs = api.recording(home, "job")
    assert [(i.repo, i.commit.hex()) for i in rs.inputs] == [("ds", commit)]
    got = {f.path: f.bytes_read for f in rs.inputs[0].files}
    # Exactly the files the two workers read: no more (the outsider's, the listing), no fewer.
    assert sorted(got) == sorted(job_reads)
    # Bytes served to the tree: whole files, except the one the outsider read first (its
    # pages were cached before the job opened it).
    for p in job_reads[1:]:
        assert got[p] == len(dataset[p]), p
    assert got[job_reads[0]] <= len(dataset[job_reads[0]])
    assert shown["name"] == "job" and len(shown["inputs"][0]["files"]) == len(job_reads)
    if kind == "read-only":
        _attach_to_a_model(home, tmp_path, rs, commit)


def _attach_to_a_model(home: Path, tmp_path: Path, rs: readset.ReadSet, data: str) -> None:
    """`import --inputs-from` makes the versions read inputs and attaches the files read."""
    api.init(home, "models", "model", "strict")
    out = write_tree(tmp_path / "model", {"weights.bin": b"w" * 100})
    made = api.import_dir(home, "models", out, "trained", inputs_from="job")
    assert made.commit.inputs == (("ds", data),)
    store = api.open_store(home)
    assert readsets_api.attached(store, ObjectId(bytes.fromhex(made.commit.id))) == rs
    with pytest.raises(NotFound, match="no recording named 'nope'"):
        api.import_dir(home, "models", out, "again", inputs_from="nope")
    assert api.show(home, "models@main").id == made.commit.id  # the refusal changed nothing


@pytest.mark.skipif(not fuse_ops.NO_OPEN, reason="stock pyfuse3: the kernel always sends opens")
def test_a_mount_in_no_open_mode_refuses_to_record(
    dataset: dict[str, bytes], home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    if fuse_skip_reason() is not None:
        pytest.skip(str(fuse_skip_reason()))
    mp = mounter("ds@main", "mnt", "--read-only")
    (mp / "train/a/00.bin").read_bytes()  # the first open lets the kernel skip the rest
    r = mlgitfs(home, "run", "--record", "late", "--", "true", check=False)
    assert r.returncode == 11, r.stderr
    assert "no-open" in r.stderr and str(mp) in r.stderr
    with pytest.raises(Exception, match="no recording named 'late'"):
        api.recording(home, "late")
    # Mounted --recordable, the same version records even after a first open (--mount: only
    # there, the other mount would still refuse).
    mp2 = mounter("ds@main", "rec", "--read-only", "--recordable")
    (mp2 / "train/a/00.bin").read_bytes()
    done = _recorded_run(home, tmp_path, mp2, "late", ["train/b/01.bin"], [], "--mount", str(mp2))
    assert done.returncode == 0, done.stderr
    files = api.recording(home, "late").inputs[0].files
    assert [f.path for f in files] == ["train/b/01.bin"]


def test_read_set_encoding_round_trips() -> None:
    c1, c2 = ObjectId(b"\x01" * 32), ObjectId(b"\x02" * 32)
    items = [("ds", c2, "train/b/x.bin", 5), ("ds", c1, "train/a/1.bin", 7),
             ("ds", c1, "train/a/10.bin", 9), ("labels", c1, "l.csv", 3),
             ("ds", c1, "train/a/1.bin", 1)]  # fmt: skip
    rs = readset.build("r", 42, ["python", "train.py"], items)
    assert readset.decode(readset.encode(rs)) == rs
    first = rs.inputs[0]
    assert (first.repo, first.commit) == ("ds", c1)
    assert [(f.path, f.bytes_read) for f in first.files] == [
        ("train/a/1.bin", 8),
        ("train/a/10.bin", 9),
    ]
