"""Remote gc killed with SIGKILL at random points across its phases, the issue's 50 kills on
file:// in the normal suite (a few on SeaweedFS): after each kill the remote still holds
every ref's history and no index without its pack (a cheap check by the remote gc's own
mark, from a store that holds nothing), every few kills and at the end a fresh clone reads
main byte for byte and `fsck --remote` is clean, and a rerun finishes the job
(docs/design.md, "gc (remote)", crash table)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.repo.remotegcmark import ObjectSource, list_packs, live_ids, mark, read_view
from mlgitfs.store.packs import CHUNKS, META
from tests.conftest import Cli
from tests.gchelpers import random_files
from tests.test_remotegc import PACK, build, clone_check
from tests.test_sync import Remote
from testsupport.s3server import S3Server

REPO_ROOT = Path(__file__).resolve().parent.parent
PHASES = ("announce", "mark", "repack", "condemn", "grace", "delete")
GRACE = 0.3  # also the lease's ttl: a killed gc's lease is stale this long after it renewed


class _Forker:
    """tests/remotegcforker.py: one forked gc per `run`, killed as told."""

    def __init__(self, r: Remote, home: Path) -> None:
        env = {**os.environ, **r.env, "PYTHONPATH": str(REPO_ROOT), "MLGITFS_PACK_TARGET": PACK}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.remotegcforker", str(home), str(GRACE), PACK],
            cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        assert self.stdout.readline() == "ready\n"

    def run(self, target: str, delay: float) -> tuple[int, dict[str, float]]:
        """Exit code and when each phase began (and "done", if it finished)."""
        self.stdin.write(f"{target} {delay}\n")
        self.stdin.flush()
        seen: dict[str, float] = {}
        for line in self.stdout:
            name, _, value = line.strip().partition(" ")
            if name == "exit":
                return int(value), seen
            seen[name] = float(value)
        raise AssertionError(f"the gc server died: {self.proc.wait()}")

    def close(self) -> None:
        self.stdin.close()
        self.proc.wait(timeout=60)


def remote_holds_history(r: Remote, empty: Path) -> None:
    """Every ref's history is on the remote (the gc's mark, reading meta packs only, since
    the store at `empty` holds nothing), each chunk it reaches is in an indexed chunk pack,
    and no index is left without its pack."""
    t = r.transport()
    try:
        view = read_view(t)
        marker, _ = mark(ObjectSource(api.open_store(empty), t, view), view.refs.items(),
                         {}, 0, expired=frozenset(view.let_go))  # fmt: skip
        held = {k: {e.id for (kind, _), i in view.indexes.items() if kind == k for e in i.entries}
                for k in (META, CHUNKS)}  # fmt: skip
        assert live_ids(marker, META) <= held[META]
        assert not live_ids(marker, CHUNKS) - held[CHUNKS], "chunks reachable but in no pack"
        orphans = [p for p, suffixes in list_packs(t).items() if "idx" in suffixes
                   and "pack" not in suffixes]  # fmt: skip
        assert not orphans, f"indexes without their packs: {orphans}"
    finally:
        t.close()
        api.close_store(empty)


def _garbage(cli: Cli, tmp_path: Path, k: int) -> None:
    """The next gc's work: a branch pushed and deleted on the remote, whose packs also hold
    the chunks of a branch kept (pushed after it, so it reuses them): dead packs and sparse
    ones (repacked)."""
    keep, scratch = tmp_path / f"keep{k}", tmp_path / f"scratch{k}"
    random_files(keep, 3, 30_000, seed=400 + k)
    shutil.copytree(keep, scratch)
    random_files(scratch / "more", 2, 30_000, seed=200 + k)
    cli("branch", f"ds@keep{k}", "ds@main")
    cli("import", f"ds@keep{k}", str(keep), "-m", "kept")
    cli("branch", f"ds@tmp{k}", "ds@main")
    cli("import", f"ds@tmp{k}", str(scratch), "-m", "garbage")
    cli("push", f"ds@tmp{k}")
    cli("push", f"ds@keep{k}")
    cli("push", "--delete", f"ds@tmp{k}", "origin", "--force")
    cli("branch", "-d", f"ds@tmp{k}", "--force")


def kill_rounds(
    cli: Cli, tmp_path: Path, r: Remote, mp: pytest.MonkeyPatch, kills: int, full_every: int
) -> None:
    mp.setenv("MLGITFS_PACK_TARGET", PACK)
    main_dir, _ = build(cli, tmp_path, r)
    empty = tmp_path / "empty"
    api.init(empty, "nothing", "dataset", "mutable")
    api.close_store(empty)
    rnd = random.Random(16)
    server = _Forker(r, cli.home)
    killed: list[str] = []
    try:
        # one unkilled gc measures each phase, to aim the kills inside them
        code, seen = server.run("none", 0)
        assert code == 0 and "done" in seen
        order = [*PHASES, "done"]
        span = {p: seen[order[i + 1]] - seen[p] for i, p in enumerate(PHASES)}
        _garbage(cli, tmp_path, 0)
        for k in range(kills * 3):
            if len(killed) >= kills:
                break
            target = PHASES[k % len(PHASES)]
            code, seen = server.run(target, rnd.uniform(0.0, span[target] * 1.2))
            assert code in (0, -signal.SIGKILL), (target, code)
            last = max(seen, key=lambda p: seen[p])
            if code == -signal.SIGKILL:
                killed.append(last)
            remote_holds_history(r, empty)
            if len(killed) % full_every == 0 and code != 0:
                clone_check(tmp_path, r, f"after{k}", {"main": main_dir})
            if last in ("delete", "done"):  # its garbage is (partly) gone: make more
                _garbage(cli, tmp_path, k + 1)
            if code == -signal.SIGKILL:  # wait out the dead gc's lease: it may have renewed
                time.sleep(GRACE + 0.1)  # it at any instant up to the kill
        assert len(killed) >= kills, f"only {len(killed)} gcs were still running when killed"
        if kills >= 3 * len(PHASES):  # every phase was hit
            assert set(PHASES) <= set(killed), killed
        print("kills by phase:", {p: killed.count(p) for p in PHASES})
        time.sleep(GRACE + 0.05)
        code, seen = server.run("none", 0)  # a rerun finishes
        assert code == 0 and "done" in seen
    finally:
        server.close()
    again = json.loads(cli("gc", "--remote", "origin", "--grace", "0", "--json").stdout)
    assert (again["packs_dead"], again["packs_repacked"], again["packs_unindexed"]) == (0, 0, 0)
    remote_holds_history(r, empty)
    clone_check(tmp_path, r, "final", {"main": main_dir})


def test_fifty_kills_of_remote_gc_on_file(
    home: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = Remote((tmp_path / "remote").as_uri(), None, {})
    kill_rounds(cli, tmp_path, r, monkeypatch, 50, 10)


@pytest.mark.s3
def test_kills_of_remote_gc_on_seaweedfs(
    home: Path, cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, s3_server: S3Server
) -> None:
    r = Remote(f"s3://{s3_server.new_bucket()}/team/data", s3_server.endpoint_url, s3_server.env)
    kill_rounds(cli, tmp_path, r, monkeypatch, 4, 4)
