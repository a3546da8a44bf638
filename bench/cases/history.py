"""History queries (issue 18): `log --path` over a long history of a large repo, with the
commit-graph index against without it (target: at least 10x faster, and under 0.5 s).

The history is bench/logsynth.py's: COMMITS commits over a FILES-file version, each changing
a few files in a few directories, one file changed by every 100th commit. Full size is
10,000 commits of 1,000,000 files (built through the library in minutes); ``--quick`` is
the CI size, 1,000 commits of 100,000 files. Each timed run is `api.log(h, --path P)` in a
fresh process (bench.logsynth query: a cold object cache, the LMDB pages as the OS page
cache has them), best of ROUNDS, with and without the index alternately. A directory's log
is measured the same way, for information.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.proc import run_module
from bench.registry import Row, case

COMMITS, FILES = 10_000, 1_000_000
QUICK_COMMITS, QUICK_FILES = 1_000, 100_000
ROUNDS = 3
SPEEDUP = 10.0
BUDGET = 0.5


def _run(*args: str) -> dict[str, Any]:
    out: dict[str, Any] = run_module("logsynth", *args)
    return out


def _best(home: Path, path: str) -> tuple[float, float, int]:
    """Best seconds with the index, without it, and the commits found (the same both ways)."""
    best = {True: float("inf"), False: float("inf")}
    found: set[int] = set()
    for _ in range(ROUNDS):
        for index in (True, False):
            r = _run("query", str(home), path, *([] if index else ["--no-index"]))
            best[index] = min(best[index], float(r["seconds"]))
            found.add(int(r["found"]))
    if len(found) != 1:
        raise RuntimeError(f"log --path {path}: the index changed the answer ({sorted(found)})")
    return best[True], best[False], found.pop()


@case("log_path", "history")
def log_path(ctx: Context) -> list[Row]:
    """log --path over a long history: with the commit-graph index vs without it."""
    commits, files = (QUICK_COMMITS, QUICK_FILES) if ctx.quick else (COMMITS, FILES)
    home = ctx.work / "history" / f"store-{commits}-{files}"
    shutil.rmtree(home, ignore_errors=True)
    home.parent.mkdir(parents=True, exist_ok=True)
    info = _run("build", str(home), str(commits), str(files))
    ctx.log(f"log: {info['commits']} commits of {info['files']} files in {info['seconds']:.0f}s")
    ctx.settle()
    t_idx, t_full, found = _best(home, str(info["target"]))
    d_idx, d_full, d_found = _best(home, str(info["target_dir"]))
    label = f"{info['commits']:,} commits of {info['files']:,} files"
    extra = {
        **info,
        "file": {"index_s": t_idx, "no_index_s": t_full, "found": found},
        "dir": {"index_s": d_idx, "no_index_s": d_full, "found": d_found},
    }
    rows = [
        Row(
            "log_path",
            f"log --path FILE ({found} hits), {label}: no index / index",
            t_idx,
            t_full,
            t_full / t_idx,
            SPEEDUP,
            "min",
            "s",
            "no index",
            extra=extra,
        ),
        Row(
            "log_path",
            f"log --path FILE with the index, {label}",
            t_idx,
            BUDGET,
            t_idx / BUDGET,
            1.0,
            "max",
            "s",
            "0.5 s budget",
        ),
        Row(
            "log_path",
            f"log --path DIR ({d_found} hits), {label}: no index / index",
            d_idx,
            d_full,
            d_full / d_idx,
            None,
            "min",
            "s",
            "no index",
        ),
    ]
    if not ctx.keep:
        shutil.rmtree(ctx.work / "history", ignore_errors=True)
    return rows
