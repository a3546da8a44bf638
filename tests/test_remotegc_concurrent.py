"""Issue 16's concurrency test, bounded in rounds: writable-mount commits (files written
through a real FUSE mount, `mlgitfs commit`, `mlgitfs push`), imports and pushes from another
store (with garbage branches pushed and deleted), local gc and remote gc each run in a loop,
all in real processes, at the same time. Afterwards every ref of every store passes
`fsck --remote`, the remote holds every ref's history, and every acknowledged commit reads
back byte for byte from a fresh clone (docs/design.md, "gc" and "gc (remote)")."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from mlgitfs import api
from tests.conftest import Cli
from tests.gchelpers import random_files
from tests.test_gc_kill import _Worker
from tests.test_remotegc import PACK
from tests.test_remotegc_kill import GRACE, _Forker, remote_holds_history
from tests.test_sync import Remote, remote
from tests.wmount import MLGITFS, Mounter, mounter, snapshot

__all__ = ["mounter", "remote"]

Files = dict[str, bytes]


def _run(env: dict[str, str], home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MLGITFS, "--home", str(home), "-q", *args], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _ok(env: dict[str, str], home: Path, *args: str, retry_gc: bool = False) -> str:
    """Run the CLI; with `retry_gc`, a commit refused for racing a local gc's sweep (exit
    14, nothing changed) is tried again."""
    for _ in range(10):
        ran = _run(env, home, *args)
        if not (retry_gc and ran.returncode == 14 and "gc removed" in ran.stderr):
            break
    assert ran.returncode == 0, f"mlgitfs {' '.join(args)}: {ran.returncode} {ran.stderr}"
    return ran.stdout


def _loop(errors: list[BaseException], body: Callable[[], None]) -> threading.Thread:
    def run() -> None:
        try:
            body()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run)
    t.start()
    return t


def races(
    cli: Cli, tmp_path: Path, r: Remote, mounter: Mounter, mp_env: pytest.MonkeyPatch,
    rounds: int,
) -> None:  # fmt: skip
    mp_env.setenv("MLGITFS_PACK_TARGET", PACK)
    env = {**os.environ, **r.env, "MLGITFS_PACK_TARGET": PACK}
    home, other = cli.home, tmp_path / "other"  # this machine and another
    random_files(tmp_path / "seed", 12, 40_000, seed=1)
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("config", "reflog-expiry", "0")  # deleted branches are garbage at once
    cli("import", "ds", str(tmp_path / "seed"), "-m", "seed")
    cli("branch", "ds@w", "ds@main")
    cli("remote", "add", "origin", r.url, *r.add_args())
    cli("push", "ds@main")
    cli("push", "ds@w")
    _ok(env, other, "clone", r.url, "ds", *r.add_args())
    _ok(env, other, "config", "reflog-expiry", "0")
    mp = mounter("ds@w")
    api.close_store(home)

    acked: dict[str, Files] = {}  # commit id -> its files
    errors: list[BaseException] = []
    done = threading.Event()
    gcs = {"local": 0, "remote": 0}

    def mount_commits() -> None:
        rnd = random.Random(2)
        for j in range(rounds):
            (mp / f"m{j}.bin").write_bytes(rnd.randbytes(rnd.randint(1, 120_000)))
            if j % 3 == 2:
                (mp / f"m{j - 2}.bin").unlink()
            if j % 4 == 3:  # a seed file's bytes change in place
                victim = next(p for p in sorted(mp.rglob("*.bin")) if p.name.startswith("f"))
                with victim.open("r+b") as f:
                    f.write(rnd.randbytes(100))
            files = {k: v[2] for k, v in snapshot(mp).items() if v[0] == "file"}
            acked[_ok(env, home, "commit", str(mp), "-m", f"m{j}", retry_gc=True).split()[-1]] = (
                files
            )
            _ok(env, home, "push", "ds@w")

    def imports() -> None:
        for i in range(rounds):
            src = tmp_path / f"v{i}"
            shutil.copytree(tmp_path / "seed", src)
            random_files(src, 3, 40_000, seed=100 + i)
            if i % 2 == 0 and i:  # last round's garbage bytes come back where they stay
                shutil.copytree(tmp_path / f"junk{i - 2}", src / "back")
            out = _ok(env, other, "import", "ds@main", str(src), "-m", f"v{i}", retry_gc=True)
            acked[out.split()[-1]] = {
                str(p.relative_to(src)): p.read_bytes() for p in src.rglob("*") if p.is_file()
            }
            _ok(env, other, "push", "ds@main")
            if i % 2:
                continue
            junk = tmp_path / f"junk{i}"  # garbage for the remote gcs and the local ones
            random_files(junk, 3, 40_000, seed=300 + i)
            _ok(env, other, "branch", f"ds@junk{i}", "ds@main")
            _ok(env, other, "import", f"ds@junk{i}", str(junk), "-m", "junk", retry_gc=True)
            _ok(env, other, "push", f"ds@junk{i}")
            _ok(env, other, "push", "--delete", f"ds@junk{i}", "origin", "--force")
            _ok(env, other, "branch", "-d", f"ds@junk{i}", "--force")
            _ok(env, other, "gc")

    def local_gcs() -> None:
        worker = _Worker(home)
        try:
            while not done.is_set():
                worker.start()
                assert worker.wait() == 0
                gcs["local"] += 1
                done.wait(0.5)  # gcs in a loop, not starving the writers of the 2 cores
        finally:
            worker.close()

    def remote_gcs() -> None:
        server = _Forker(r, home)
        try:
            while not done.is_set() or gcs["remote"] < 2:
                code, seen = server.run("none", 0)
                assert code == 0 and "done" in seen, (code, seen)
                gcs["remote"] += 1
                done.wait(0.5)
        finally:
            server.close()

    gc_threads = [_loop(errors, local_gcs), _loop(errors, remote_gcs)]
    writers = [_loop(errors, mount_commits), _loop(errors, imports)]
    for t in writers:
        t.join()
    done.set()
    for t in gc_threads:
        t.join()
    assert not errors, errors
    assert gcs["local"] >= 2 and gcs["remote"] >= 2, gcs
    assert len(acked) == 2 * rounds

    for store in (home, other):  # every ref of every store: its history on the remote
        report = api.fsck(store, check_remote=True)
        api.close_store(store)
        assert report.clean, (store.name, report.damage)
    empty = tmp_path / "empty"
    api.init(empty, "nothing", "dataset", "mutable")
    api.close_store(empty)
    remote_holds_history(r, empty)
    fresh = tmp_path / "fresh"
    _ok(env, fresh, "clone", r.url, "ds", *r.add_args())
    for cid, files in acked.items():  # every acknowledged commit, byte for byte
        out = tmp_path / f"out-{cid[:12]}"
        _ok(env, fresh, "export", f"ds@{cid}", str(out))
        got = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
        assert got == files, cid
        shutil.rmtree(out)
    report = api.fsck(fresh, check_remote=True)
    api.close_store(fresh)
    assert report.clean, report.damage
    print(f"{gcs['local']} local gcs, {gcs['remote']} remote gcs (grace {GRACE} s)")


def test_commits_imports_pushes_beside_gc_loops(
    home: Path, cli: Cli, tmp_path: Path, remote: Remote, mounter: Mounter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    races(cli, tmp_path, remote, mounter, monkeypatch, 6 if remote.url.startswith("file:") else 2)


@pytest.mark.slow
def test_many_rounds_beside_gc_loops(
    home: Path, cli: Cli, tmp_path: Path, mounter: Mounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    races(cli, tmp_path, Remote((tmp_path / "remote").as_uri(), None, {}), mounter, monkeypatch,
          30)  # fmt: skip
