"""gc killed with SIGKILL at random moments: after every kill fsck is clean and every branch
reads back byte for byte; a rerun finishes the job (docs/design.md, "gc", crash table)."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlgitfs import api
from mlgitfs.meta import db
from mlgitfs.model.objects import make_commit, object_id
from mlgitfs.repo.trees import NewObjects
from mlgitfs.store.facade import Store
from tests.mergeref import Flat, build

REPO_ROOT = Path(__file__).resolve().parent.parent
KILLS = int(os.environ.get("MLGITFS_GC_KILLS", "50"))
THRESHOLD = 0.9  # most segments are sparse: the kills land in rewrites as well as deletes
F = 0o644


def _garbage_round(store: Store, rnd: random.Random, n: int) -> Flat:
    """A commit of `n` small files in many small segments, unreachable, and a commit of a
    third of them on branch keep (whose old head stays in its history): every segment then
    holds live and dead records. Returns what keep now holds."""
    files = {f"f{n}_{i:03d}.bin": rnd.randbytes(rnd.randint(2000, 9000)) for i in range(120)}
    everything: Flat = {k: ("file", v, F) for k, v in files.items()}
    kept: Flat = {k: v for i, (k, v) in enumerate(everything.items()) if i % 3 == 0}
    writer = store.chunks.writer(target=48 << 10)
    out: NewObjects = []
    garbage = build(store, writer, everything, out)
    gid, gdata = object_id(make_commit(garbage, (), "t", 1, f"garbage {n}"))
    out.append((gid, gdata))
    with store.env.read() as txn:
        head = db.get_ref(txn, "ds", "heads/keep")
    parents = () if head is None else (head,)
    kid, kdata = object_id(make_commit(build(store, writer, kept, out), parents, "t", 2, "keep"))
    out.append((kid, kdata))
    writer.flush()
    with store.env.write() as txn:
        writer.record(txn)
        store.put_objects(txn, out)
        db.put_generation(txn, kid, n + 1)
        db.set_ref(txn, "ds", "heads/keep", kid, head, "test round")
    writer.reset()
    return kept


def _check(home: Path, tmp: Path, kept: Flat) -> None:
    report = api.fsck(home)
    assert report.clean, report.damage
    dest = tmp / "export"
    api.export(home, "ds@keep", dest)
    for rel, v in kept.items():
        assert (dest / rel).read_bytes() == v[1], rel
    assert sorted(p.name for p in dest.iterdir()) == sorted(kept)
    shutil.rmtree(dest)


class _Worker:
    """tests/gcworker.py: forks one gc per `run`, so a kill costs a fork, not a start."""

    def __init__(self, home: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.gcworker", str(home), str(THRESHOLD)],
            cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        assert self.stdout.readline() == b"ready\n"

    def start(self) -> int:
        self.stdin.write(b"go\n")
        self.stdin.flush()
        return int(self.stdout.readline())

    def wait(self) -> int:
        return int(self.stdout.readline())

    def close(self) -> None:
        self.stdin.close()
        self.proc.wait(timeout=60)


def test_killed_gc_loses_nothing_and_a_rerun_finishes(home: Path, tmp_path: Path) -> None:
    api.init(home, "ds", "dataset", "mutable")
    store = api.open_store(home)
    rnd = random.Random(16)
    kept = _garbage_round(store, rnd, 0)
    rounds = 1
    worker = _Worker(home)
    try:
        # how long an unkilled gc of one round's garbage takes, to aim the kills inside it
        t0 = time.perf_counter()
        worker.start()
        assert worker.wait() == 0
        span = time.perf_counter() - t0
        kept = _garbage_round(store, rnd, rounds)
        rounds += 1
        kills = 0
        for _ in range(KILLS * 4):
            if kills >= KILLS:
                break
            pid = worker.start()
            time.sleep(rnd.uniform(0.0, span))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            code = worker.wait()
            assert code in (0, -signal.SIGKILL)
            kills += code == -signal.SIGKILL
            _check(home, tmp_path, kept)
            if code == 0:  # finished: new garbage, so later kills hit work
                kept = _garbage_round(store, rnd, rounds)
                rounds += 1
        assert kills >= KILLS, f"only {kills} gcs were still running when killed"
        # a rerun finishes: afterwards nothing is left to free
        worker.start()
        assert worker.wait() == 0
    finally:
        worker.close()
    after = api.gc(home, dry_run=True, threshold=THRESHOLD)
    assert (after.objects, after.chunks, after.segment_bytes_freed) == (0, 0, 0)
    _check(home, tmp_path, kept)
