"""Read-set lineage (issue 18 item 6): a recorded run over real mounts attaches exactly the
files its process tree read; a process outside the tree is not recorded."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.api import readsets as readsets_api
from mlgitfs.daemon import fuse_ops
from mlgitfs.daemon.recorder import Recorder
from mlgitfs.errors import NotFound
from mlgitfs.meta import readsets
from mlgitfs.model import readset
from mlgitfs.model.ids import ObjectId
from tests.conftest import Cli, write_tree
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
    # (A page-cache prefill racing the job's own read of a file counts its bytes twice.)
    for p in job_reads[1:]:
        assert got[p] in (len(dataset[p]), 2 * len(dataset[p])), p
    assert got[job_reads[0]] <= len(dataset[job_reads[0]])
    assert shown["name"] == "job" and len(shown["inputs"][0]["files"]) == len(job_reads)
    if kind == "read-only":
        _attach_to_a_model(home, tmp_path, rs, commit)
    if kind == "writable":
        # A commit from the mount attaches the read set of the job that read its base.
        (mp / "notes.txt").write_text("trained on a subset")
        mlgitfs(home, "commit", str(mp), "-m", "notes", "--inputs-from", "job")
        shown_files = json.loads(mlgitfs(home, "lineage", "ds@main", "--files", "--json").stdout)
        assert shown_files["readset"]["name"] == "job"
        assert api.show(home, "ds@main").inputs == (("ds", commit),)


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


@pytest.fixture
def model_lineage(tmp_path: Path, home: Path) -> dict[str, str]:
    """ds (two versions), labels made from ds@v1 (declared), a model made from a recording
    that read files of ds@v2 and of labels."""
    api.init(home, "ds", "dataset", "mutable")  # its v2 gives a.bin other content
    api.init(home, "labels", "labels", "strict")
    api.init(home, "models", "model", "strict")
    ids = {}
    ids["ds1"] = api.import_dir(
        home, "ds", write_tree(tmp_path / "d1", {"a.bin": b"1"}), "v1"
    ).commit.id
    ids["ds2"] = api.import_dir(
        home, "ds", write_tree(tmp_path / "d2", {"a.bin": b"2", "b.bin": b"22"}), "v2"
    ).commit.id
    ids["labels"] = api.import_dir(
        home,
        "labels",
        write_tree(tmp_path / "l", {"l.csv": "a,1\n"}),
        "l",
        inputs=[f"ds@{ids['ds1']}"],
    ).commit.id
    ds2, labels = bytes.fromhex(ids["ds2"]), bytes.fromhex(ids["labels"])
    items = [("ds", ds2, "b.bin", 2), ("ds", ds2, "a.bin", 1), ("labels", labels, "l.csv", 4)]
    store = api.open_store(home)
    with store.env.write() as txn:
        readsets.put_recording(txn, readset.build("train-1", 1, ["python", "t.py"], items))
    model = write_tree(tmp_path / "m", {"w": b"w"})
    ids["model"] = api.import_dir(home, "models", model, "m", inputs_from="train-1").commit.id
    return ids


def test_lineage_files(model_lineage: dict[str, str], cli: Cli) -> None:
    ids = model_lineage
    out = cli("lineage", "models@main", "--files").stdout.splitlines()
    assert out == [
        f"models@{ids['model'][:12]} read by train-1: 3 files",
        f"ds@{ids['ds2'][:12]}: 2 files", "  a.bin\t1", "  b.bin\t2",
        f"labels@{ids['labels'][:12]}: 1 files", "  l.csv\t4",
    ]  # fmt: skip
    doc = json.loads(cli("lineage", "models@main", "--files", "--json").stdout)
    assert doc["readset"]["name"] == "train-1"
    assert [(i["repo"], [f["path"] for f in i["files"]]) for i in doc["readset"]["inputs"]] == [
        ("ds", ["a.bin", "b.bin"]), ("labels", ["l.csv"])
    ]  # fmt: skip
    none = cli("lineage", "labels@main", "--files", "--json").stdout
    assert json.loads(none)["readset"] is None
    cli("lineage", "models@main", "--files", "--format", "dot")  # --files wins, no error
    assert "inputs" in cli("show", "models@main", "--json").stdout


def test_lineage_openlineage_events_validate(model_lineage: dict[str, str], cli: Cli) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).parent / "data" / "openlineage-2-0-2.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    # A run event, not a job event (which the spec's oneOf would also accept without "run").
    run_event = {k: v for k, v in schema.items() if k != "oneOf"} | {"$ref": "#/$defs/RunEvent"}
    run_validator = jsonschema.Draft202012Validator(run_event)
    ids = model_lineage
    lines = cli("lineage", "models@main", "--format", "openlineage").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    for e in events:
        errors = [err.message for v in (validator, run_validator) for err in v.iter_errors(e)]
        assert not errors, errors
    # Upstream first: labels (made from ds v1), then the model.
    outputs = [e["outputs"][0]["name"] for e in events]
    assert outputs == [f"labels@{ids['labels']}", f"models@{ids['model']}"]
    model = events[1]
    assert model["job"] == {"namespace": "mlgitfs", "name": "train-1"}
    assert model["eventType"] == "COMPLETE" and model["schemaURL"].startswith("https://openlineage")
    read = {
        i["name"]: [(f["path"], f["bytesRead"]) for f in facet["files"]]
        for i in model["inputs"]
        for facet in [i["inputFacets"]["mlgitfs_readSet"]]
    }
    assert read == {f"ds@{ids['ds2']}": [("a.bin", 1), ("b.bin", 2)],
                    f"labels@{ids['labels']}": [("l.csv", 4)]}  # fmt: skip
    assert [i["name"] for i in events[0]["inputs"]] == [f"ds@{ids['ds1']}"]
    assert "inputFacets" not in events[0]["inputs"][0]  # declared, not recorded
    # A broken event is caught by the same schemas (the check is not vacuous).
    assert list(validator.iter_errors(model | {"eventTime": 5}))
    assert list(run_validator.iter_errors({k: v for k, v in model.items() if k != "run"}))


_NODE = re.compile(r'^  "([^"]+)" \[label="([^"]*)", shape=(\w+)\];$')
_EDGE = re.compile(r'^  "([^"]+)" -> "([^"]+)"( \[label="(\d+) files read"\])?;$')


def test_lineage_dot_draws_the_graph(model_lineage: dict[str, str], cli: Cli) -> None:
    ids = model_lineage
    text = cli("lineage", "labels@main", "--format", "dot").stdout
    lines = text.splitlines()
    assert lines[0] == "digraph lineage {" and lines[-1] == "}"
    nodes = {m.group(1): m.group(3) for m in map(_NODE.match, lines) if m}
    edges = {(m.group(1), m.group(2)): m.group(4) for m in map(_EDGE.match, lines) if m}
    body = [ln for ln in lines[1:-1] if not ln.startswith("  node ") and "rankdir" not in ln]
    assert len(body) == len(nodes) + len(edges)  # every line is a node or an edge
    ds1, labels, model = f"ds@{ids['ds1']}", f"labels@{ids['labels']}", f"models@{ids['model']}"
    # labels: up to ds v1, down to the model (ds v2 is not on its graph).
    assert nodes == {ds1: "cylinder", labels: "note", model: "box3d"}
    assert edges == {(ds1, labels): None, (labels, model): "1"}


def test_process_tree_membership() -> None:
    """Descendants and their threads belong to the innermost recording; others to none."""
    # pid -> (tgid, ppid): 10 runs 20 (a nested run) which forks 30 (thread 31); 40 is not.
    table = {10: (10, 1), 20: (20, 10), 30: (30, 20), 31: (30, 20), 40: (40, 1), 50: (50, 10)}
    rec = Recorder(status=table.get)
    rec.start("outer", 10)
    rec.start("inner", 20)
    assert rec.recording_of(30) is rec.active[20]  # a worker of the inner run
    assert rec.recording_of(31) is rec.active[20]  # its thread
    assert rec.recording_of(50) is rec.active[10]
    assert rec.recording_of(40) is None
    assert rec.recording_of(99) is None  # gone already
    with pytest.raises(ValueError, match="is running"):
        rec.start("inner", 60)
    origins = {7: ("ds", b"c" * 32, "a.bin")}
    fh = rec.opened(30, 7, origins.get)
    assert fh is not None and rec.opened(40, 7, origins.get) is None
    assert rec.opened(30, 8, origins.get) is None  # not a file of a commit
    rec.served(fh, 5)
    rec.released(fh)
    inner = rec.stop("inner")
    assert inner is not None and inner.files == {("ds", b"c" * 32, "a.bin"): [5, 1]}
    assert rec.recording_of(30) is rec.active[10]  # the outer run takes it back
    assert rec.stop("inner") is None
    rec.opens_skipped = True
    with pytest.raises(ValueError, match="no-open"):
        rec.start("late", 70)


def test_record_start_stop_around_a_running_job(
    dataset: dict[str, bytes], home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    if fuse_skip_reason() is not None:
        pytest.skip(str(fuse_skip_reason()))
    mp = mounter("ds@main", "mnt", "--read-only")
    names = sorted(dataset)
    job_reads, other = names[:5], names[5:8]
    ready, go = tmp_path / "ready", tmp_path / "go"
    job = subprocess.Popen(
        [sys.executable, JOB, str(mp), str(ready), str(go), *job_reads], text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait(ready, job)
        mlgitfs(home, "record", "start", "r2", "--pid", str(job.pid))
        refused = mlgitfs(home, "record", "start", "r2", "--pid", str(job.pid), check=False)
        assert refused.returncode == 11 and "is running" in refused.stderr
        for p in other:  # not in the job's tree
            (mp / p).read_bytes()
        go.write_text("go")
        assert job.wait(timeout=120) == 0, job.communicate()
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    shown = json.loads(mlgitfs(home, "record", "stop", "r2", "--json").stdout)
    assert [f["path"] for f in shown["inputs"][0]["files"]] == job_reads
    assert [f.path for f in api.recording(home, "r2").inputs[0].files] == job_reads
    again = mlgitfs(home, "record", "stop", "r2", check=False)
    assert again.returncode == 3 and "no recording named 'r2'" in again.stderr
