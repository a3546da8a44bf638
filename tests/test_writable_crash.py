"""Crash tests: the daemon of a writable mount is SIGKILLed at random moments of a workload.

The workload writes files and fsyncs them, overwrites parts, renames, unlinks and commits.
After each kill the branch is mounted again and: every commit that returned success is in
the branch's history, every fsynced byte is there (namespace operations are durable when
they return), and fsck is clean (no half-made commit). The suite kills 200 times, as the
crash-test issue asks; MLGITFS_CRASH_ROUNDS sets another number. Unlinks take over from
creates above LIVE_FILES, so that each round's check of everything promised so far costs
the same in round 200 as in round 20.
"""

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
from tests.wmount import OLD, daemon_pid
from testsupport.mounts import detach, fuse_skip_reason, stop_pid

LIVE_FILES = 150

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason())),
]


def ancestors(home: Path, commit: str) -> set[str]:
    return {c.id for c in api.log(home, f"ds@{commit}")}


def run_rounds(home: Path, tmp_path: Path, rounds: int, seed: int) -> None:
    rnd = random.Random(seed)
    api.init(home, "ds", "dataset", "mutable")
    src = write_tree(tmp_path / "src", {"seed.txt": b"seed"}, mtime_ns=OLD)
    api.import_dir(home, "ds@main", src, "seed")
    mp = tmp_path / "mnt"
    mp.mkdir()
    journal: dict[str, bytes] = {"seed.txt": b"seed"}  # what must be there after a crash
    committed: list[str] = []
    serial = 0
    try:
        for round_no in range(rounds):
            api.mount(home, "ds@main", mp)
            pid = daemon_pid(home, mp)
            for path, data in journal.items():  # what the last round promised
                assert (mp / path).read_bytes() == data, (round_no, path)
            if committed:
                head = api.show(home, "ds@main").id
                assert committed[-1] in ancestors(home, head)
            delay = rnd.uniform(0.02, 0.6)
            killer = threading.Timer(delay, os.kill, (pid, signal.SIGKILL))
            killer.start()
            deadline = time.monotonic() + 5
            try:
                while time.monotonic() < deadline:
                    serial += 1
                    op = rnd.random()
                    names = sorted(journal)
                    if len(names) > LIVE_FILES and op < 0.4:
                        op = 0.8  # unlink instead of create
                    if op < 0.4 or not names:
                        path = f"r{round_no}-{serial}.bin"
                        data = rnd.randbytes(rnd.choice([0, 10, 5000, 200_000]))
                        with open(mp / path, "wb") as f:
                            f.write(data)
                            f.flush()
                            os.fsync(f.fileno())
                        journal[path] = data
                    elif op < 0.6:
                        path = rnd.choice(names)
                        old = journal.pop(path)
                        at = rnd.randrange(len(old) + 1)
                        patch = rnd.randbytes(rnd.randrange(1, 3000))
                        with open(mp / path, "r+b") as f:
                            f.seek(at)
                            f.write(patch)
                            os.fdatasync(f.fileno())
                        new = bytearray(old)
                        new[at : at + len(patch)] = patch
                        journal[path] = bytes(new)
                    elif op < 0.75:
                        path = rnd.choice(names)
                        data = journal.pop(path)
                        dest = f"mv{serial}-{path}"
                        os.rename(mp / path, mp / dest)
                        journal[dest] = data
                    elif op < 0.85:
                        path = rnd.choice(names)
                        journal.pop(path)
                        os.unlink(mp / path)
                    else:
                        r = api.commit(home, mp, f"round {round_no} op {serial}")
                        if r.commit is not None:
                            committed.append(r.commit.id)
            except (OSError, MlgitError):
                pass  # the daemon was killed under us
            finally:
                killer.cancel()
                stop_pid(pid, signal.SIGKILL)
                detach(mp)
        report = api.fsck(home)
        assert report.clean, report.damage
    finally:
        with contextlib.suppress(MlgitError, AssertionError):
            for rec in api.mounts(home):
                stop_pid(rec.pid)
        detach(mp)


@pytest.mark.timeout(1800)
def test_kill_daemon_during_workload(home: Path, tmp_path: Path) -> None:
    rounds = int(os.environ.get("MLGITFS_CRASH_ROUNDS", "200"))
    run_rounds(home, tmp_path, rounds, seed=rounds)
