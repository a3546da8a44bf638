"""Model-based test: random POSIX operations on a writable mount and on a plain directory.

Every operation is applied to both; both must succeed or fail with the same errno, and after
every step the two trees (names, bytes, modes, symlink targets) must be equal. After each
commit the new version, mounted read-only, must equal the plain directory too. Sizes are
CI-sized; MLGITFS_MODEL_EXAMPLES raises the number of examples.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from mlgitfs import api
from tests.conftest import write_tree
from tests.wmount import OLD, Mounter, mounter, snapshot
from testsupport.mounts import fuse_skip_reason

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason())),
]
__all__ = ["mounter"]

NAMES = ["f0", "f1", "f2", "d0", "d1"]
paths = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join)
data = st.binary(max_size=3000) | st.sampled_from([b"", b"x" * 200_000])
modes = st.sampled_from([0o600, 0o644, 0o755, 0o700, 0o640])


def outcome(fn: object, *args: object) -> int:
    assert callable(fn)
    try:
        fn(*args)
    except OSError as exc:
        return exc.errno or -1
    return 0


def _create(path: str, content: bytes) -> None:
    with open(path, "wb") as f:
        f.write(content)


def _write_at(path: str, offset: int, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, content, offset)
    finally:
        os.close(fd)


def test_model(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    api.init(home, "ds", "dataset", "mutable")
    seed = write_tree(
        tmp_path / "seed",
        {"base/f0": b"zero", "base/d0/f1": b"one" * 100, "base/d1/": b"", "base/f2": "->f0"},
        mtime_ns=OLD,
    )
    api.import_dir(home, "ds@main", seed, "seed")
    mnt = mounter("ds@main")
    plain = tmp_path / "plain"
    shutil.copytree(seed, plain, symlinks=True)
    counter = [0]
    examples = int(os.environ.get("MLGITFS_MODEL_EXAMPLES", "25"))

    class Model(RuleBasedStateMachine):
        @initialize()
        def fresh(self) -> None:
            counter[0] += 1
            self.sub = f"ex{counter[0]}"
            for root in (mnt, plain):
                shutil.copytree(root / "base", root / self.sub, symlinks=True)
            self.check()

        def both(self, fn: object, *rel: str, args: tuple[object, ...] = ()) -> None:
            results = []
            for root in (mnt, plain):
                full = [str(root / self.sub / r) for r in rel]
                results.append(outcome(fn, *full, *args))
            assert results[0] == results[1], (fn, rel, args, results)
            self.check()

        def check(self) -> None:
            assert snapshot(mnt / self.sub) == snapshot(plain / self.sub)

        @rule(path=paths, content=data)
        def create(self, path: str, content: bytes) -> None:
            self.both(_create, path, args=(content,))

        @rule(path=paths, offset=st.integers(0, 300_000), content=st.binary(min_size=1))
        def write_at(self, path: str, offset: int, content: bytes) -> None:
            self.both(_write_at, path, args=(offset, content))

        @rule(path=paths, size=st.integers(0, 250_000))
        def truncate(self, path: str, size: int) -> None:
            self.both(os.truncate, path, args=(size,))

        @rule(src=paths, dst=paths)
        def rename(self, src: str, dst: str) -> None:
            self.both(os.rename, src, dst)

        @rule(path=paths)
        def unlink(self, path: str) -> None:
            self.both(os.unlink, path)

        @rule(path=paths)
        def mkdir(self, path: str) -> None:
            self.both(os.mkdir, path)

        @rule(path=paths)
        def rmdir(self, path: str) -> None:
            self.both(os.rmdir, path)

        @rule(path=paths, link_to=st.sampled_from(NAMES))
        def symlink(self, path: str, link_to: str) -> None:
            results = [
                outcome(os.symlink, link_to, str(root / self.sub / path)) for root in (mnt, plain)
            ]
            assert results[0] == results[1], ("symlink", path, link_to, results)
            self.check()

        @rule(path=paths, mode=modes)
        def chmod(self, path: str, mode: int) -> None:
            self.both(lambda p: os.chmod(p, mode, follow_symlinks=False)
                      if not os.path.islink(p) else None, path)  # fmt: skip

        @rule()
        def remount(self) -> None:
            # The overlay and the inode table come back from disk: same tree, same numbers.
            before = {p: os.lstat(mnt / self.sub / p).st_ino for p in snapshot(mnt / self.sub)}
            api.unmount(home, mnt)
            api.mount(home, "ds@main", mnt)
            self.check()
            after = {p: os.lstat(mnt / self.sub / p).st_ino for p in snapshot(mnt / self.sub)}
            assert after == before

        @rule()
        def commit(self) -> None:
            # status through the control socket must be the commit's diff (issue 13): the
            # diff lists files and symlinks, status directories too.
            st = api.status(home, mnt)
            base = st.base
            r = api.commit(home, mnt, f"step of {self.sub}")
            files = sorted((c.change, c.path, c.old_path) for c in st.changes if c.kind != "dir")
            if r.commit is None:
                assert st.changes == (), st.changes
                return
            d = api.diff(home, f"ds@{base[:16]}", f"ds@{r.commit.id[:16]}")
            assert files == sorted((i.change, i.path, i.old_path) for i in d.items)
            ro = mounter(f"ds@{r.commit.id[:16]}", f"ro{r.commit.id[:8]}")
            try:
                got, want = snapshot(ro), snapshot(plain)
                assert got.keys() == want.keys()
                for k, v in want.items():
                    assert got[k] == (v[0], v[1] & 0o555, v[2]), k
            finally:
                api.unmount(home, ro)

    run_state_machine_as_test(
        Model,
        settings=settings(
            max_examples=examples,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    assert snapshot(mnt) == snapshot(plain)
