"""Merges (issue 15): a merge of two branches that each change 1% of the files, spread over
every directory, at 1,000,000 files against the same at 1,000 files (cost follows what
differs, not the repo's size: target <= 2x, and under 1 s for the command at 1,000,000
files); and the same change merged by `git merge` (merge-ort) in a git repository of
100,000 files of the same layout against ours at 100,000 files (target >= 3x).

Each timed run is the `mlgitfs merge --json` command's wall time (process start included),
best of MERGE_ROUNDS, the branch reset to its old head between rounds. The git side is
`git merge --no-edit` in a checked-out repository (it updates the index and the changed
files of the work tree; ours writes no work tree), reset between rounds the same way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.context import QUICK_FACTOR, Context
from bench.ours import Mlgitfs
from bench.peers import tool
from bench.proc import run_module
from bench.registry import Row, case

FRACTION = 0.01
SMALL = 1_000
BIG = 1_000_000
GIT_FILES = 100_000
MERGE_ROUNDS = 3
SCALE_TARGET = 2.0
BIG_SECONDS = 1.0
GIT_TARGET = 3.0


def _shrink(ctx: Context, n: int) -> int:
    return max(SMALL, n // QUICK_FACTOR) if ctx.quick else n


def _store(ctx: Context, files: int) -> tuple[Mlgitfs, dict[str, Any]]:
    home = ctx.work / "merge" / f"store-{files}"
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    info = run_module("mergesynth", str(home), "m", str(files), str(FRACTION))
    ctx.log(
        f"merge: {files} files, {info['changes']} changes a side, built in {info['seconds']:.1f}s"
    )
    return Mlgitfs(home, ctx.work / "logs" / "merge.log"), info


def _time_merge(store: Mlgitfs) -> float:
    """Best wall time of MERGE_ROUNDS merges of right into left, each from left's old head."""
    _, before = store.json("show", "m@left")
    best = float("inf")
    for _ in range(MERGE_ROUNDS):
        secs, out = store.json("merge", "m@right", "--into", "m@left")
        if out["status"] != "merged":
            raise RuntimeError(f"expected a merge commit, got {out['status']}")
        best = min(best, secs)
        store.json("reset", "m@left", f"m@{before['id']}", "--force")
    return best


GIT = ["git"]  # the peer's path, set by the case (bench/peers.py installs git when missing)


def _git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    who = {"NAME": "b", "EMAIL": "b@b"}
    env = {
        **os.environ,
        **{f"GIT_{r}_{k}": v for r in ("AUTHOR", "COMMITTER") for k, v in who.items()},
    }
    return subprocess.run(
        [*GIT, "-C", str(repo), *args], input=stdin, env=env, capture_output=True, check=True
    ).stdout


def _git_repo(ctx: Context, files: int) -> Path:
    """The same layout, contents and changes as bench.mergesynth, as a checked-out git repo
    (built with fast-import: three commits on main, left and right)."""
    from bench.mergesynth import path_of, picks
    from testsupport.synth import CONTENT, layout

    repo = ctx.work / "merge" / f"git-{files}"
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    ndirs, per_dir = layout(files, 10)
    left, right = picks(files, 10, FRACTION)
    out = [b"blob\nmark :1\ndata %d\n%s\n" % (len(CONTENT), CONTENT)]

    def commit(ref: str, mark: int, parent: str | None, body: list[bytes]) -> None:
        out.append(b"commit refs/heads/%s\nmark :%d\n" % (ref.encode(), mark))
        out.append(b"committer b <b@b> 1700000000 +0000\ndata 2\nc\n")
        if parent:
            out.append(b"from %s\n" % parent.encode())
        out.extend(body)

    base = []
    for k in range(ndirs * per_dir):
        d, f = path_of(k, per_dir)
        base.append(b"M 100644 :1 %s/%s\n" % (d.encode(), f.encode()))
    commit("main", 2, None, base)
    for name, mark, picked in (("left", 3, left), ("right", 4, right)):
        body = []
        for k in picked:
            d, f = path_of(k, per_dir)
            data = f"{name} {k}\n".encode()
            body.append(b"M 100644 inline %s/%s\ndata %d\n%s\n" % (d.encode(), f.encode(),
                        len(data), data))  # fmt: skip
        commit(name, mark, ":2", body)
    _git(repo, "fast-import", "--quiet", stdin=b"".join(out))
    _git(repo, "checkout", "-q", "left")
    return repo


def _time_git_merge(repo: Path) -> float:
    before = _git(repo, "rev-parse", "HEAD").decode().strip()
    best = float("inf")
    for _ in range(MERGE_ROUNDS):
        t0 = time.perf_counter()
        _git(repo, "merge", "-q", "--no-edit", "right")
        best = min(best, time.perf_counter() - t0)
        _git(repo, "reset", "-q", "--hard", before)
    return best


@case("merge_branches", "merge")
def merge_branches(ctx: Context) -> list[Row]:
    """Merge two branches that each change 1% of the files: 1,000,000 vs 1,000 files, and vs git."""
    small_store, small = _store(ctx, SMALL)
    t_small = _time_merge(small_store)
    big_store, big = _store(ctx, _shrink(ctx, BIG))
    t_big = _time_merge(big_store)
    rows = [
        Row(
            "merge_branches",
            f"merge, 1% changed a side: {big['files']:,} vs {small['files']:,} files",
            t_big,
            t_small,
            t_big / t_small,
            SCALE_TARGET,
            "max",
            "s",
            f"{small['files']:,} files",
            extra={"big": big, "small": small},
        ),  # fmt: skip
        Row(
            "merge_branches",
            f"merge wall time at {big['files']:,} files",
            t_big,
            BIG_SECONDS,
            t_big / BIG_SECONDS,
            1.0,
            "max",
            "s",
            "1 s budget",
        ),  # fmt: skip
    ]
    GIT[:] = [tool(ctx, "git")]
    ours_store, ours_info = _store(ctx, _shrink(ctx, GIT_FILES))
    t_ours = _time_merge(ours_store)
    t_git = _time_git_merge(_git_repo(ctx, ours_info["files"]))
    rows.append(
        Row(
            "merge_branches",
            f"merge at {ours_info['files']:,} files: git merge (ort) / ours",
            t_ours,
            t_git,
            t_git / t_ours,
            GIT_TARGET,
            "min",
            "s",
            "git merge",
            extra={"ours_seconds": t_ours, "git_seconds": t_git},
        )  # fmt: skip
    )
    if not ctx.keep:
        shutil.rmtree(ctx.work / "merge", ignore_errors=True)
    return rows
