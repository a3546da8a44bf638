"""Remote gc against real processes (file:// and SeaweedFS): pushes from another store,
reusing the contents of a deleted branch that the gc condemns, race a gc and lose nothing
(docs/design.md, "gc (remote)"). Kills: tests/test_remotegc_kill.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mlgitfs import api
from tests.conftest import Cli
from tests.gchelpers import random_files
from tests.test_remotegc import PACK, build, clone_check
from tests.test_sync import Remote, remote

__all__ = ["remote"]

REPO_ROOT = Path(__file__).resolve().parent.parent
GC_ROUNDS = 2


def _env(r: Remote) -> dict[str, str]:
    return {**os.environ, **r.env, "PYTHONPATH": str(REPO_ROOT), "MLGITFS_PACK_TARGET": PACK}


def _mlgitfs(env: dict[str, str], home: Path, *args: str) -> str:
    ran = subprocess.run(
        [sys.executable, "-c", "from mlgitfs_cli.entry import main; main()",
         "--home", str(home), "-q", *args],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ran.returncode == 0, f"mlgitfs {' '.join(args)}: {ran.returncode} {ran.stderr}"
    return ran.stdout


def _gc(env: dict[str, str], home: Path, grace: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.remotegcworker", str(home), str(grace)],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_pushes_racing_gcs_lose_nothing(
    home: Path, cli: Cli, tmp_path: Path, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rounds of import + push (reusing the deleted branch's files, which the gcs condemn),
    of garbage pushed and deleted, and of local gc, in real processes from another store,
    while remote gcs run one after another: every acknowledged commit reads back."""
    monkeypatch.setenv("MLGITFS_PACK_TARGET", PACK)
    _, all_dir = build(cli, tmp_path, remote)
    env = _env(remote)
    other = tmp_path / "other"  # another machine
    _mlgitfs(env, other, "clone", remote.url, "ds", *remote.add_args())
    outputs: list[tuple[int, str]] = []

    def gcs() -> None:
        for _ in range(GC_ROUNDS):
            gc = _gc(env, home, 1.5)
            out, _ = gc.communicate(timeout=300)
            outputs.append((gc.returncode, out))

    loop = threading.Thread(target=gcs)
    loop.start()
    versions: list[tuple[str, Path]] = []
    try:
        for i in range(40):  # before, during and after each gc's condemn, grace and delete
            src = tmp_path / f"v{i}"
            shutil.copytree(all_dir, src)  # side's files: garbage the gcs condemn
            random_files(src, 3, 20_000, seed=100 + i)
            _mlgitfs(env, other, "import", "ds@main", str(src), "-m", f"v{i}")
            _mlgitfs(env, other, "push", "ds@main")
            head = json.loads(_mlgitfs(env, other, "show", "ds@main", "--json"))["id"]
            versions.append((head, src))
            if i % 3 == 1:  # garbage for the next gc, and a local gc beside it all
                junk = tmp_path / f"junk{i}"
                random_files(junk, 4, 20_000, seed=300 + i)
                _mlgitfs(env, other, "branch", f"ds@junk{i}", "ds@main")
                _mlgitfs(env, other, "import", f"ds@junk{i}", str(junk), "-m", "junk")
                _mlgitfs(env, other, "push", f"ds@junk{i}")
                _mlgitfs(env, other, "push", "--delete", f"ds@junk{i}", "origin", "--force")
                _mlgitfs(env, other, "gc")
            if not loop.is_alive() and i >= 4:
                break
    finally:
        loop.join()
    assert [code for code, _ in outputs] == [0] * GC_ROUNDS, outputs
    assert sum(json.loads(out.splitlines()[-1])["packs_dead"] for _, out in outputs) > 0
    fresh = tmp_path / "fresh"
    clone_check(tmp_path, remote, "fresh", {"main": versions[-1][1]})
    for head, src in versions:  # every acknowledged commit reads back byte for byte
        out_dir = tmp_path / f"out-{head[:8]}"
        Cli(fresh)("export", f"ds@{head}", str(out_dir))
        got = {p.relative_to(out_dir): p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}
        assert got == {p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    api.close_store(fresh)
    report = api.fsck(other, check_remote=True)
    api.close_store(other)
    assert report.clean, report.damage
