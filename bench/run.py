"""``python -m bench [--cases a,b] [--quick] [--out DIR] [--work DIR] [--keep] [--no-dvc]``:
parse the options, run the selected cases (bench/harness.py), write the report."""

from __future__ import annotations

import argparse
import compileall
import contextlib
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import bench.cases  # noqa: F401 - registers the cases
from bench import report, vm
from bench.context import (
    BENCH_DIR,
    DEFAULT_OUT,
    DEFAULT_WORK,
    QUICK_FACTOR,
    Context,
    Sizes,
    cpu_count,
)
from bench.harness import run_case
from bench.ours import find_script
from bench.proc import run
from bench.registry import CASES, Row, select


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="mlgitfs benchmarks: ratios measured side by side in one run.",
    )
    p.add_argument("--cases", help="comma-separated case names or groups (default: all)")
    p.add_argument(
        "--quick", action="store_true", help=f"sizes divided by {QUICK_FACTOR} (smoke run)"
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    p.add_argument("--work", type=Path, default=DEFAULT_WORK, help="scratch directory for data")
    p.add_argument("--keep", action="store_true", help="keep generated data and stores")
    p.add_argument("--no-dvc", action="store_true", help="skip the DVC baselines")
    p.add_argument(
        "--no-install",
        action="store_true",
        help="do not install missing peers (rclone, s3fs, git, DVC): skip their rows",
    )
    p.add_argument("--warm", action="store_true", help="do not drop page caches before runs")
    p.add_argument(
        "--pause-reclaim",
        action="store_true",
        help="turn the machine's DAMON page reclaim off during the run (see bench/vm.py)",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    return p.parse_args(argv)


def _git_head() -> str | None:
    try:
        ran = run(["git", "rev-parse", "HEAD"], capture=True, cwd=BENCH_DIR, check=False)
    except OSError:
        return None
    return ran.stdout.strip() or None


def _meta(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    return {
        "quick": args.quick,
        "cases": args.cases,
        "sizes": vars(ctx.sizes) if hasattr(ctx.sizes, "__dict__") else str(ctx.sizes),
        "cpu_count": cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "git_head": _git_head(),
        "euid": os.geteuid(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "loadavg_start": os.getloadavg(),
    }


def _compile_package() -> None:
    """Write the package's .pyc files, as a pip install does: with PYTHONDONTWRITEBYTECODE
    set and an editable install, every CLI run would compile its modules again (60 ms)."""
    root = Path(__file__).resolve().parent.parent
    for pkg in ("mlgitfs", "cli"):
        compileall.compile_dir(str(root / pkg), quiet=1)


def _describe_cli(ctx: Context) -> None:
    """Record the CLI's version and start-up time (``mlgitfs --version``, best of 3)."""
    _compile_package()
    try:
        script = find_script()
    except FileNotFoundError as e:
        ctx.meta["mlgitfs"] = str(e)
        return
    times = []
    out = ""
    for _ in range(3):
        ran = run([script, "--version"], capture=True, check=False)
        times.append(ran.seconds)
        out = (ran.stdout or ran.stderr).strip()
    ctx.meta["mlgitfs"] = {"script": str(script), "version": out, "startup_seconds": min(times)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for c in CASES.values():
            print(f"{c.name:20} [{', '.join(c.groups)}] {c.doc}")
        return 0
    cases = select(args.cases)
    sizes = Sizes().shrunk(QUICK_FACTOR) if args.quick else Sizes()
    ctx = Context(
        work=args.work.resolve(),
        quick=args.quick,
        keep=args.keep,
        use_dvc=not args.no_dvc,
        cold=not args.warm,
        install_peers=not args.no_install,
        sizes=sizes,
    )
    ctx.work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(ctx.work / "logs", ignore_errors=True)  # logs of this run only
    ctx.meta.update(_meta(args, ctx))
    _describe_cli(ctx)
    rows: list[Row] = []
    t_start = time.monotonic()
    ctx.meta["damon_reclaim_active"] = vm.reclaim_active()
    ctx.meta["damon_reclaim_paused"] = False
    stack = contextlib.ExitStack()
    try:
        if args.pause_reclaim:
            ctx.meta["damon_reclaim_paused"] = stack.enter_context(vm.reclaim_paused())
        for c in cases:
            ctx.log(f"== {c.name}")
            rows.extend(run_case(ctx, c))
    finally:
        stack.close()
        ctx.meta["total_seconds"] = round(time.monotonic() - t_start, 2)
        ctx.meta["caches_dropped"] = bool(ctx.caches_dropped)
        ctx.meta["drop_caches_attempted"] = ctx.cold
        ctx.meta["drop_caches_error"] = ctx.drop_cache_error
        ctx.cleanup()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    md_path, json_path = report.write(args.out, stamp, rows, ctx.meta)
    print(report.markdown(rows, ctx.meta))
    print(f"written: {md_path} and {json_path}")
    if any(r.error for r in rows):
        return 1
    if args.strict and any(r.passed is False for r in rows):
        return 1
    return 0
