"""Merges into a writable mount whose daemon is killed with SIGKILL at random points leave the
mount, mounted again, as before the merge or fully merged (its merge state present exactly
then), and the store fsck-clean (docs/design.md, "Merges into a writable mount")."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.errors import MlgitError
from tests.conftest import write_tree
from tests.wmount import OLD, daemon_pid, snapshot
from testsupport.mounts import detach, fuse_skip_reason, stop_pid

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason())),
]

KILLS = 16
RULES = '[[rule]]\npath = "labels.csv"\nstrategy = "rows"\nkey = ["id"]\n'
LABELS = "id,label\n" + "".join(f"{i},cat\n" for i in range(300))


def _setup(home: Path, tmp_path: Path) -> None:
    api.init(home, "ds", "dataset", "mutable")
    files: dict[str, bytes | str] = {
        f"d{i % 4}/f{i:03d}.bin": f"file {i}\n".encode() * 200 for i in range(80)
    }
    files |= {".mlgitfs/merge.toml": RULES, "labels.csv": LABELS}
    api.import_dir(home, "ds@main", write_tree(tmp_path / "base", files, OLD), "base")
    api.branch_create(home, "ds@b", "ds@main")
    theirs = dict(files)
    for i in range(0, 80, 3):
        theirs[f"d{i % 4}/f{i:03d}.bin"] = f"theirs {i}\n".encode() * 150
    for i in range(20):
        theirs[f"new/n{i:02d}.txt"] = f"new {i}\n"
    for i in range(1, 20, 4):
        del theirs[f"d{i % 4}/f{i:03d}.bin"]
    theirs["labels.csv"] = LABELS.replace("5,cat", "5,dog").replace("9,cat", "9,yak")
    api.import_dir(home, "ds@b", write_tree(tmp_path / "theirs", theirs, OLD), "theirs")


def _edit_ours(mp: Path) -> None:
    """Uncommitted changes in the mount: some files theirs changed too (one conflict, in
    the table), others not."""
    for i in range(1, 80, 7):
        (mp / f"d{i % 4}/f{i:03d}.bin").write_bytes(f"ours {i}\n".encode())
    (mp / "mine.txt").write_bytes(b"mine\n")
    (mp / "labels.csv").write_text(LABELS.replace("7,cat", "7,owl").replace("9,cat", "9,elk"))


def _merging(home: Path, mp: Path) -> bool:
    return api.status(home, mp).merging is not None


def test_killed_mount_merges_leave_before_or_fully_merged(home: Path, tmp_path: Path) -> None:
    _setup(home, tmp_path)
    mp = tmp_path / "mnt"
    mp.mkdir()
    rnd = random.Random(15)
    try:
        api.mount(home, "ds@main", mp)
        _edit_ours(mp)
        before = snapshot(mp)
        t0 = time.monotonic()
        assert api.merge_into_mount(home, "ds@b", mp).status == "conflicts"
        state = api.status(home, mp).merging
        assert state is not None and state.conflicts  # files both changed, and a table cell
        took = time.monotonic() - t0
        merged = snapshot(mp)
        assert merged != before
        api.merge_abort(home, mp)
        assert snapshot(mp) == before
        kills = states = early = 0
        for _ in range(KILLS * 3):
            if kills >= KILLS:
                break
            pid = daemon_pid(home, mp)
            killer = threading.Timer(rnd.uniform(0.0, took), os.kill, (pid, signal.SIGKILL))
            killer.start()
            killed = False
            try:
                api.merge_into_mount(home, "ds@b", mp)
                took *= 0.7  # it finished first: aim earlier
            except (MlgitError, OSError):
                killed = True  # the daemon died while the request was in flight
                kills += 1
            killer.cancel()
            killer.join()
            stop_pid(pid, signal.SIGKILL)
            detach(mp)
            api.mount(home, "ds@main", mp)
            now = snapshot(mp)
            if _merging(home, mp):
                assert now == merged, "a merge state with a partly merged mount"
                states += 1
                api.merge_abort(home, mp)
            else:
                assert now == before, "a partly merged mount without its merge state"
                early += killed
            assert snapshot(mp) == before
        assert kills >= KILLS, f"only {kills} merges were running when killed"
        assert early, "no kill landed before the merge's transaction"
        print(f"{kills} kills: {early} before the merge's transaction, {states} merged states")
        # the merge still works, and concludes
        api.merge_into_mount(home, "ds@b", mp)
        assert snapshot(mp) == merged
        api.resolve(home, [mp / c.path for c in state.conflicts], "ours")
        api.commit(home, mp, "merged b")
        assert len(api.log(home, "ds@main", limit=1)[0].parents) == 2
    finally:
        with contextlib.suppress(MlgitError, AssertionError):
            for rec in api.mounts(home):
                stop_pid(rec.pid)
        detach(mp)
