"""Data and first imports shared between cases (memoized in the Context for the whole run)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench import datagen
from bench.context import QUICK_FACTOR, Context
from bench.dvc import Dvc, copy_tree, ensure_dvc
from bench.harness import Skipped
from bench.ours import Mlgitfs
from bench.proc import CommandFailed


def small_data(ctx: Context) -> datagen.Dataset:
    def make() -> datagen.Dataset:
        root = ctx.fresh_dir("data", "small")
        ctx.log(f"generating {ctx.sizes.small_files} small files in {root}")
        datagen.write_small_files(root, ctx.seed, ctx.sizes.small_files)
        return datagen.dir_stats(root)

    return ctx.once("data:small", make)


def large_data(ctx: Context) -> datagen.Dataset:
    def make() -> datagen.Dataset:
        root = ctx.fresh_dir("data", "large")
        ctx.log(f"generating a {ctx.sizes.large_bytes / 2**20:.0f} MiB file in {root}")
        datagen.write_large_file(root / "big.bin", ctx.seed, ctx.sizes.large_bytes)
        return datagen.dir_stats(root)

    return ctx.once("data:large", make)


@dataclass
class FirstImport:
    store: Mlgitfs
    name: str
    data: datagen.Dataset
    seconds: float
    cold: bool


def first_import(ctx: Context, which: str, data: datagen.Dataset) -> FirstImport:
    """``mlgitfs import`` of a data set into a fresh store, cold when possible."""

    def make() -> FirstImport:
        home = ctx.fresh_dir("homes", which)
        store = Mlgitfs(home, ctx.path("logs", f"mlgitfs-{which}.log"))
        name = f"bench-{which}"
        store.init(name)
        cold = ctx.drop_caches()
        ctx.log(f"mlgitfs import {which} ({data.files} files, {data.bytes / 2**20:.0f} MiB)")
        secs = store.import_dir(name, data.root, f"bench {which}: first import")
        ctx.log(f"  {secs:.2f}s")
        return FirstImport(store, name, data, secs, cold)

    return ctx.once(f"import:{which}", make)


def warm_import(ctx: Context, which: str, data: datagen.Dataset, runs: int = 2) -> list[float]:
    """``mlgitfs import`` into throwaway fresh stores with the input already in the page cache
    (the caller has just read it), so the time is CPU-bound like the raw baseline. Returns the
    seconds of each of ``runs`` runs (the caller takes the best, as for the raw baseline)."""
    times = []
    for i in range(runs):
        home = ctx.fresh_dir("homes", f"{which}-warm")
        store = Mlgitfs(home, ctx.path("logs", f"mlgitfs-{which}-warm.log"))
        name = f"bench-{which}-warm"
        store.init(name)
        ctx.settle()
        ctx.log(f"mlgitfs import {which}, warm, run {i + 1}/{runs}")
        times.append(store.import_dir(name, data.root, f"bench {which}: warm import"))
        ctx.log(f"  {times[-1]:.2f}s")
        shutil.rmtree(home, ignore_errors=True)
    return times


def dvc_exe(ctx: Context) -> Path:
    """DVC in the bench's virtualenv, installed from PyPI when missing (bench/dvc.py); raises
    `Skipped` with the reason when it cannot be (``--no-install``, pip failed)."""

    def make() -> Path | Skipped:
        venv = ctx.work / "dvc-venv"
        log = ctx.path("logs", "dvc-install.log")
        if not ctx.install_peers and not (venv / "bin" / "dvc").exists():
            return Skipped("DVC is not installed and --no-install was given (pip install dvc)")
        ctx.log(f"DVC: using or installing {venv}")
        try:
            return ensure_dvc(venv, log)
        except (CommandFailed, OSError, subprocess.TimeoutExpired) as e:
            return Skipped(f"DVC could not be installed with pip (see {log}): {e}")

    found = ctx.once("dvc:exe", make)
    if isinstance(found, Skipped):
        raise found
    return found


def dvc_add_timed(ctx: Context, which: str, data: datagen.Dataset) -> float:
    """``dvc add`` of a copy of the same directory in a fresh DVC repository, cold."""
    exe = dvc_exe(ctx)
    root = ctx.fresh_dir("dvc", which)
    copy_tree(data.root, root / data.root.name)
    repo = Dvc(exe, root, ctx.path("logs", f"dvc-{which}.log"))
    ctx.meta.setdefault("dvc_version", repo.version())
    repo.fresh()
    ctx.drop_caches()
    ctx.log(f"dvc add {which}")
    secs = repo.add(data.root.name)
    ctx.log(f"  {secs:.2f}s")
    return secs


def tagged(ctx: Context, repo: str, root: Path) -> tuple[Mlgitfs, str]:
    """The mount cases' store (one home for every data set): ``init``, ``import`` of ``root``
    and ``tag REPO@v1`` with the CLI, once per run (not timed); returns it and the revspec."""

    def store() -> Mlgitfs:
        home = ctx.fresh_dir("homes", "mounts")
        return Mlgitfs(home, ctx.path("logs", "mlgitfs-mounts.log"))

    def make() -> tuple[Mlgitfs, str]:
        s = ctx.once("mounts:store", store)
        s.init(repo)
        ctx.log(f"mlgitfs import {root} into {repo} (not timed)")
        secs = s.import_dir(repo, root, f"bench mounts: {repo}")
        ctx.log(f"  {secs:.2f}s")
        s.tag(f"{repo}@v1")
        return s, f"{repo}@v1"

    return ctx.once(f"mounts:tagged:{repo}", make)


def mnt(ctx: Context, name: str) -> Path:
    """A mountpoint path under the work directory (bench/mounting.py empties it)."""
    return ctx.path("mnt", name)


def shrink(ctx: Context, n: int) -> int:
    """``n`` divided by the quick factor under ``--quick``."""
    return n // QUICK_FACTOR if ctx.quick else n
