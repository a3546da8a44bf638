"""Merges killed with SIGKILL at random points leave each branch at its old head or at the whole
merge commit, and the store fsck-clean (docs/merge.md, "Crash safety")."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlgitfs import api
from mlgitfs.meta import db
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import make_commit, object_id
from mlgitfs.repo.merge import Rule, Strategy, merge_trees
from mlgitfs.repo.trees import NewObjects
from mlgitfs.store.facade import Store
from tests.mergeref import Flat, build

REPO_ROOT = Path(__file__).resolve().parent.parent
PAIRS = 120
KILLS = 30
F = 0o644


def _base() -> Flat:
    flat: Flat = {"img": ("dir", 0o755), "labels": ("dir", 0o755)}
    for i in range(40):
        flat[f"img/{i:03d}.jpg"] = ("file", f"image {i}".encode() * 50, F)
    flat["labels/train.csv"] = ("file", b"id,label\n" + b"1,cat\n" * 200, F)
    return flat


class _Batch:
    """Commits made in one transaction (setup speed: one fsync, not one per commit)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.writer = store.chunks.writer()
        self.out: NewObjects = []
        self.refs: list[tuple[str, ObjectId]] = []
        self.gens: list[tuple[ObjectId, int]] = []

    def commit(self, branch: str, flat: Flat, parents: tuple[ObjectId, ...]) -> ObjectId:
        tree = build(self.store, self.writer, flat, self.out)
        cid, data = object_id(make_commit(tree, parents, "t", 1, branch))
        self.out.append((cid, data))
        self.refs.append((branch, cid))
        self.gens.append((cid, len(parents) + 1))
        return cid

    def write(self) -> None:
        self.writer.flush()
        with self.store.env.write() as txn:
            self.writer.record(txn)
            self.store.put_objects(txn, self.out)
            for cid, gen in self.gens:
                db.put_generation(txn, cid, gen)
            for branch, cid in self.refs:
                db.set_ref(txn, "ds", f"heads/{branch}", cid, None, "test setup")
        self.writer.reset()


def _setup(store: Store) -> dict[int, tuple[ObjectId, ObjectId, ObjectId]]:
    """PAIRS diverged branch pairs l{i}/r{i}: (left head, right head, expected merged tree).
    Left moves img/ to pics/ and edits the labels; right edits an image and the labels
    differently (theirs wins by --strategy) and adds a file."""
    base = _base()
    batch = _Batch(store)
    root = batch.commit("main", base, ())
    heads = {}
    for i in range(PAIRS):
        left = {k.replace("img", "pics", 1): v for k, v in base.items()}
        left["labels/train.csv"] = ("file", b"id,label\n1,dog\n" + str(i).encode(), F)
        right = dict(base)
        right[f"img/{i % 40:03d}.jpg"] = ("file", f"edited {i}".encode(), F)
        right["labels/train.csv"] = ("file", b"id,label\n1,cow\n" + str(i).encode(), F)
        right[f"new{i}.txt"] = ("file", str(i).encode(), F)
        heads[i] = (batch.commit(f"l{i}", left, (root,)), batch.commit(f"r{i}", right, (root,)))
    batch.write()
    out = {}
    for i, (lc, rc) in heads.items():
        m = merge_trees(
            store,
            store.commit(root).tree,
            store.commit(lc).tree,
            store.commit(rc).tree,
            lambda _p: Rule(Strategy.THEIRS),
        )
        assert not m.conflicts and m.renames
        out[i] = (lc, rc, m.tree)
    return out


def _check(store: Store, pairs: dict[int, tuple[ObjectId, ObjectId, ObjectId]]) -> int:
    """Each left branch is at its old head or at the whole merge commit; how many merged."""
    merged = 0
    with store.env.read() as txn:
        heads = {i: db.get_ref(txn, "ds", f"heads/l{i}") for i in pairs}
    for i, (left, right, tree) in pairs.items():
        head = heads[i]
        if head == left:
            continue
        assert head is not None
        c = store.commit(head)
        assert c.parents == (left, right) and c.tree == tree, f"pair {i}: a partial merge"
        merged += 1
    return merged


def test_killed_merges_leave_old_head_or_whole_merge(home: Path) -> None:
    api.init(home, "ds", "dataset", "mutable")
    store = api.open_store(home)
    pairs = _setup(store)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    rnd = random.Random(15)
    kills = 0
    merged = 0
    for _ in range(KILLS * 3):
        if kills >= KILLS:
            break
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.mergeworker", str(home), str(PAIRS)],
            cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n", proc.stderr.read() if proc.stderr else ""
        time.sleep(rnd.uniform(0.0, 0.25))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read() if proc.stderr else ""
        now = _check(store, pairs)
        assert now >= merged  # a merge once made stays
        merged = now
        if merged == PAIRS:  # all done (a fast machine): undo them, so later kills hit work
            with store.env.write() as txn:
                for i, (left, _, _) in pairs.items():
                    head = db.get_ref(txn, "ds", f"heads/l{i}")
                    db.set_ref(txn, "ds", f"heads/l{i}", left, head, "test: undo the merge")
            merged = 0
    assert kills >= KILLS, f"only {kills} merges were still running when killed"
    assert 0 < merged < PAIRS or merged == PAIRS
    # the merges left to do finish when run again
    done = subprocess.run(
        [sys.executable, "-m", "tests.mergeworker", str(home), str(PAIRS)],
        cwd=REPO_ROOT, env=env, capture_output=True, check=True,
    )  # fmt: skip
    assert done.stdout.endswith(b"done\n")
    assert _check(store, pairs) == PAIRS
