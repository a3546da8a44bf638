"""Writable branch mounts (issue 4): commit and status against repo size, sequential writes
through the copy-on-write overlay, and editing 100 files of a 1,000,000-file data set in a mount
against importing the whole directory again.

Every mount is a writable mount of a BRANCH made with the CLI and always unmounted, even when a
case fails (bench/mounting.py: ``mlgitfs unmount``, then ``fusermount3 -u -z``, then the daemon's
pid). Mounts a crashed run left under ``WORK/checkouts`` are detached at the start of each case.
Each ratio compares runs made side by side in this case, interleaved so load drift on a shared
machine hits both sides alike.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.context import QUICK_FACTOR, Context, loadavg
from bench.mounting import (
    MlgitfsMount,
    drop_count,
    mlgitfs_mount,
    mount_once,
)
from bench.ours import QUIET_ENV, Mlgitfs
from bench.proc import CommandFailed
from bench.registry import Row, case
from testsupport.mounts import clear_under
from testsupport.synth import Synth, dir_name, file_name, synthesize

SCALE_TARGET = 2.0
SEQ_WRITE_TARGET = 0.3
MB = 1e6
MIB = 1 << 20

SCALE_SMALL = 1_000
SCALE_MID = 100_000
SCALE_BIG = 1_000_000
SCALE_CHANGES = 10
MIN_DIRS = 10
SCALE_ROUNDS = 5
SEQ_ROUNDS = 3

EDIT_FILES = 1_000_000
EDIT_PER_DIR = 1_000
EDIT_CHANGES = 100
EDIT_ROUNDS = 3
TREE_FORMAT = 1  # bump when the generated tree's layout changes (a kept tree is regenerated)


def _shrink(ctx: Context, n: int) -> int:
    return n // QUICK_FACTOR if ctx.quick else n


def _root(ctx: Context) -> Path:
    root = ctx.work / "checkouts"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _since(start: int | None) -> int | None:
    now = drop_count()
    return None if start is None or now is None else now - start


@dataclass
class _Start:
    """What every row of a case records: the load average and whether caches were dropped."""

    load_start: list[float]
    drops: list[bool] = field(default_factory=list)
    drop_count_start: int | None = field(default_factory=drop_count)

    def extra(self, **more: Any) -> dict[str, Any]:
        return {
            "loadavg_start": self.load_start,
            "loadavg_end": loadavg(),
            "caches_dropped": all(self.drops) if self.drops else None,
            # cache drops by anyone (this case's own included) while the case ran: other
            # benchmarks on a shared machine turn warm runs cold
            "drop_pagecache_during_case": _since(self.drop_count_start),
            "own_cache_drops": len(self.drops),
            **more,
        }


def _begin(ctx: Context) -> _Start:
    stale = clear_under(_root(ctx))
    if stale:
        ctx.log(f"detached stale mounts: {', '.join(map(str, stale))}")
    return _Start(loadavg())


def _cli_json(store: Mlgitfs, *args: str, timeout: float = 600) -> tuple[float, Any]:
    """``mlgitfs --home H ARGS --json``: (wall seconds, parsed stdout); raises on failure."""
    argv = [str(store.script), "--home", str(store.home), *store.quiet_flags, *args, "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv,
        env={**os.environ, **QUIET_ENV},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    secs = time.perf_counter() - t0
    store.log.parent.mkdir(parents=True, exist_ok=True)
    with store.log.open("a") as log:
        log.write(f"$ {' '.join(argv)}\n{proc.stdout[-2000:]}{proc.stderr}")
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return secs, json.loads(proc.stdout)


def _synthesize(ctx: Context, home: Path, repo: str, files: int) -> Synth:
    """A synthetic repo (testsupport/synth.py) of 10 or more directories, so 10 changes can
    fall in 10 different ones."""
    out = synthesize(home, repo, files, min_dirs=MIN_DIRS)
    ctx.log(f"  synthetic {repo}: {out.files:,} files in {out.seconds:.1f}s")
    return out


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


# -- commit_scaling / status_scaling -------------------------------------------------------------


@dataclass
class _Scaling:
    st: _Start
    files: dict[str, int]
    status: dict[str, list[float]]
    commit: dict[str, list[float]]
    commit_daemon: dict[str, list[float]]


def _spread(ndirs: int, per_dir: int, n: int, salt: int) -> list[tuple[int, int]]:
    """``n`` (dir, file) pairs in ``min(n, ndirs)`` directories spread over the tree."""
    step = max(1, ndirs // n)
    return [((k * step) % ndirs, (7 + salt + k // ndirs) % per_dir) for k in range(n)]


def _scaling(ctx: Context) -> _Scaling:
    """Three writable mounts side by side (1k, 100k, 1M files); each round changes 10 files
    in 10 directories of every mount, then times ``status --json`` and ``commit``."""

    def make() -> _Scaling:
        st = _begin(ctx)
        root = _root(ctx)
        sizes = {
            "small": SCALE_SMALL,
            "mid": _shrink(ctx, SCALE_MID),
            "big": _shrink(ctx, SCALE_BIG),
        }
        ctx.log(f"synthetic repos: {', '.join(f'{n:,}' for n in sizes.values())} files")
        stores: dict[str, Mlgitfs] = {}
        shapes: dict[str, Synth] = {}
        for name, n in sizes.items():
            home = ctx.fresh_dir("checkouts", f"scale-{name}")
            stores[name] = Mlgitfs(home, ctx.path("logs", "mlgitfs-checkouts.log"))
            shapes[name] = _synthesize(ctx, home, "ds", n)
        res = _Scaling(
            st,
            {k: v.files for k, v in shapes.items()},
            {k: [] for k in sizes},
            {k: [] for k in sizes},
            {k: [] for k in sizes},
        )
        with contextlib.ExitStack() as stack:
            mnts: dict[str, Path] = {}
            for name, store in stores.items():
                mnt = root / "mnt" / f"scale-{name}"
                stack.enter_context(mlgitfs_mount(store, "ds@main", mnt))
                mnts[name] = mnt
            ctx.settle()
            for r in range(SCALE_ROUNDS):
                for name, store in stores.items():
                    shape, mnt = shapes[name], mnts[name]
                    for d, i in _spread(shape.dirs, shape.per_dir, SCALE_CHANGES, r):
                        path = mnt / dir_name(d) / file_name(d, i, shape.per_dir)
                        _write(path, b"changed in round %d of %s\n" % (r, name.encode()))
                    secs, out = _cli_json(store, "status", str(mnt))
                    changed = [c for c in out["changes"] if c["change"] == "modified"]
                    if len(out["changes"]) != SCALE_CHANGES or len(changed) != SCALE_CHANGES:
                        raise AssertionError(f"{name}: status shows {out['changes']!r}")
                    res.status[name].append(secs)
                    secs, out = _cli_json(store, "commit", str(mnt), "-m", f"round {r}")
                    if out.get("files_hashed") != SCALE_CHANGES:
                        raise AssertionError(f"{name}: commit hashed {out.get('files_hashed')!r}")
                    res.commit[name].append(secs)
                    res.commit_daemon[name].append(float(out["seconds"]))
                ctx.log(
                    f"  round {r + 1}/{SCALE_ROUNDS}: "
                    + ", ".join(
                        f"{n} status {res.status[n][-1]:.3f}s commit {res.commit[n][-1]:.3f}s"
                        for n in stores
                    )
                )
        return res

    return ctx.once("checkouts:scaling", make)


def _scale_rows(
    res: _Scaling, case_name: str, what: str, runs: dict[str, list[float]], info: bool = False
) -> list[Row]:
    rows = []
    small = statistics.median(runs["small"])
    for name in ("big", "mid"):
        med = statistics.median(runs[name])
        target = None if info or name == "mid" else SCALE_TARGET
        rows.append(
            Row(
                case_name,
                f"{what}, {res.files[name]:,} vs {res.files['small']:,} files",
                med,
                small,
                med / small,
                target,
                direction="max",
                unit="s",
                baseline_name=f"{res.files['small']:,} files",
                note=f"median of {SCALE_ROUNDS}; {SCALE_CHANGES} files changed in 10 dirs",
                extra=res.st.extra(
                    files=res.files[name],
                    baseline_files=res.files["small"],
                    seconds=runs[name],
                    baseline_seconds=runs["small"],
                    best_ratio=min(runs[name]) / min(runs["small"]),
                ),
            )
        )
    return rows


@case("commit_scaling", "checkout")
def commit_scaling(ctx: Context) -> list[Row]:
    """`mlgitfs commit MNT` of 10 changed files: repos of 1M (and 100k) files vs 1k."""
    res = _scaling(ctx)
    return [
        *_scale_rows(res, "commit_scaling", "commit of 10 files (CLI wall time)", res.commit),
        *_scale_rows(
            res,
            "commit_scaling",
            "commit of 10 files (daemon's own seconds, no CLI start-up)",
            res.commit_daemon,
            info=True,
        ),
    ]


@case("status_scaling", "checkout")
def status_scaling(ctx: Context) -> list[Row]:
    """`mlgitfs status MNT --json` after 10 changes: repos of 1M (and 100k) files vs 1k."""
    res = _scaling(ctx)
    return _scale_rows(res, "status_scaling", "status --json, 10 files changed", res.status)


# -- seq_write -----------------------------------------------------------------------------------


def _dd(path: Path, mib: int) -> float:
    """Wall seconds of ``dd if=/dev/zero of=PATH bs=1M count=MIB conv=fsync``."""
    argv = ["dd", "if=/dev/zero", f"of={path}", "bs=1M", f"count={mib}", "conv=fsync"]
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}")
    if path.stat().st_size != mib * MIB:
        raise AssertionError(f"{path}: {path.stat().st_size} bytes after dd of {mib} MiB")
    return secs


@case("seq_write", "checkout")
def seq_write(ctx: Context) -> list[Row]:
    """Sequential 1 GiB write (dd, 1 MiB blocks, fsync) into a writable mount vs ext4."""
    st = _begin(ctx)
    root = _root(ctx)
    mib = max(8, ctx.sizes.large_bytes // MIB)
    home = ctx.fresh_dir("checkouts", "seq-write")
    store = Mlgitfs(home, ctx.path("logs", "mlgitfs-checkouts.log"))
    _synthesize(ctx, home, "ds", SCALE_SMALL)
    ext4 = ctx.fresh_dir("checkouts", "ext4-write")
    ours: list[float] = []
    base: list[float] = []
    with mlgitfs_mount(store, "ds@main", root / "mnt" / "seq-write") as m:
        targets = {"ours": m.path / "big.bin", "ext4": ext4 / "big.bin"}
        for r in range(SEQ_ROUNDS):
            order = ("ours", "ext4") if r % 2 == 0 else ("ext4", "ours")
            for who in order:
                target = targets[who]
                ctx.settle()
                secs = _dd(target, mib)
                (ours if who == "ours" else base).append(secs)
                target.unlink()  # on the mount: the uncommitted overlay file goes at once
                ctx.settle()
            ctx.log(f"  round {r + 1}/{SEQ_ROUNDS}: ours {ours[-1]:.2f}s, ext4 {base[-1]:.2f}s")
    shutil.rmtree(ext4, ignore_errors=True)
    nbytes = mib * MIB
    ours_mbs = nbytes / statistics.median(ours) / MB
    ext4_mbs = nbytes / statistics.median(base) / MB
    return [
        Row(
            "seq_write",
            f"sequential write of {mib} MiB + fsync (dd bs=1M) into a branch mount",
            ours_mbs,
            ext4_mbs,
            ours_mbs / ext4_mbs,
            SEQ_WRITE_TARGET,
            unit="MB/s",
            baseline_name="ext4, same disk",
            note=f"medians of {SEQ_ROUNDS} alternating runs; overlay file on the same ext4",
            extra=st.extra(bytes=nbytes, seconds=ours, baseline_seconds=base),
        )
    ]


# -- edit_vs_reimport ----------------------------------------------------------------------------


def _tree_file(root: Path, d: int, i: int) -> Path:
    return root / f"d{d:05d}" / f"f{d * EDIT_PER_DIR + i:07d}.txt"


def _real_tree(ctx: Context, files: int) -> Path:
    """A real directory of ``files`` tiny files (``files // 1000`` dirs of 1,000), generated once
    and reused while the work directory is kept (``--keep``)."""
    tree = _root(ctx) / f"tree-{files}"
    marker = tree / ".complete"
    want = {"format": TREE_FORMAT, "files": files, "per_dir": EDIT_PER_DIR}
    with contextlib.suppress(OSError, ValueError):
        if json.loads(marker.read_text()) == want:
            ctx.log(f"reusing the real tree of {files:,} files at {tree}")
            return tree
    if tree.exists():
        shutil.rmtree(tree)
    ctx.log(f"generating a real tree of {files:,} tiny files at {tree} (not timed)")
    t0 = time.perf_counter()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for d in range(files // EDIT_PER_DIR):
        sub = tree / f"d{d:05d}"
        sub.mkdir(parents=True)
        for i in range(EDIT_PER_DIR):
            n = d * EDIT_PER_DIR + i
            fd = os.open(_tree_file(tree, d, i), flags, 0o644)
            try:
                os.write(fd, b"sample %d of the data set, version 0\n" % n)
            finally:
                os.close(fd)
    ctx.settle()
    marker.write_text(json.dumps(want))
    ctx.log(f"  {time.perf_counter() - t0:.1f}s")
    return tree


def _edit_targets(files: int, n: int) -> list[tuple[int, int]]:
    return _spread(files // EDIT_PER_DIR, EDIT_PER_DIR, n, 0)


@dataclass
class _EditRun:
    total: float
    mount: float
    edit: float
    commit: float
    unmount: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.__dict__.items()}


def _unmount_timed(m: MlgitfsMount) -> float:
    argv = [str(m.store.script), "--home", str(m.store.home), "unmount", str(m.path)]
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv,
        env={**os.environ, **QUIET_ENV},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise CommandFailed(f"mlgitfs unmount exited {proc.returncode}: {proc.stderr.strip()}")
    return secs


def _edit_in_mount(store: Mlgitfs, mnt: Path, targets: list[tuple[int, int]], tag: str) -> _EditRun:
    """mount REPO@main → overwrite the target files → commit → unmount, all timed."""
    t0 = time.perf_counter()
    m = mount_once(store, "ds@main", mnt)
    try:
        t1 = time.perf_counter()
        for d, i in targets:
            _write(_tree_file(mnt, d, i), b"edited in the mount (%s)\n" % tag.encode())
        t2 = time.perf_counter()
        secs, out = _cli_json(store, "commit", str(mnt), "-m", f"edit {tag}")
        if out.get("files_hashed") != len(targets):
            raise AssertionError(f"commit hashed {out.get('files_hashed')!r}, not {len(targets)}")
        unmount = _unmount_timed(m)
        t4 = time.perf_counter()
    finally:
        m.unmount()  # a no-op when the timed unmount worked; waits for the daemon to exit
    return _EditRun(t4 - t0, t1 - t0, t2 - t1, secs, unmount)


def _edit_real(tree: Path, targets: list[tuple[int, int]], tag: str) -> None:
    for d, i in targets:
        _write(_tree_file(tree, d, i), b"edited in the directory (%s)\n" % tag.encode())


@case("edit_vs_reimport", "checkout")
def edit_vs_reimport(ctx: Context) -> list[Row]:
    """Change 100 files of a 1M-file data set in a branch mount and commit vs re-importing it."""
    st = _begin(ctx)
    root = _root(ctx)
    files = _shrink(ctx, EDIT_FILES)
    tree = _real_tree(ctx, files)
    home = ctx.fresh_dir("checkouts", "edit")
    store = Mlgitfs(home, ctx.path("logs", "mlgitfs-checkouts.log"))
    store.init("ds")
    st.drops.append(ctx.drop_caches())
    ctx.log(f"first import of {files:,} files (cold stat cache, caches dropped)")
    first = store.import_dir("ds", tree, "first import")
    ctx.log(f"  {first:.1f}s")
    targets = _edit_targets(files, EDIT_CHANGES)
    mnt = root / "mnt" / "edit"
    ours: list[_EditRun] = []
    warm: list[float] = []
    for r in range(EDIT_ROUNDS):
        ctx.settle()
        ours.append(_edit_in_mount(store, mnt, targets, f"round {r}"))
        _edit_real(tree, targets, f"round {r}")
        ctx.settle()
        warm.append(store.import_dir("ds", tree, f"re-import {r}"))
        ctx.log(
            f"  round {r + 1}/{EDIT_ROUNDS}: mount+edit+commit+unmount {ours[-1].total:.2f}s "
            f"(commit {ours[-1].commit:.2f}s), re-import {warm[-1]:.1f}s"
        )
    _edit_real(tree, targets, "cold")
    st.drops.append(ctx.drop_caches())
    cold_page = store.import_dir("ds", tree, "re-import, caches dropped")
    ctx.log(f"  re-import after dropping caches {cold_page:.1f}s")
    ctx.settle()
    st.drops.append(ctx.drop_caches())
    ours_cold = _edit_in_mount(store, mnt, targets, "cold")
    ctx.log(f"  mount+edit+commit+unmount after dropping caches {ours_cold.total:.2f}s")

    med = statistics.median(r.total for r in ours)
    med_warm = statistics.median(warm)
    extra = st.extra(
        files=files,
        changed=EDIT_CHANGES,
        ours_runs=[r.as_dict() for r in ours],
        ours_cold_caches=ours_cold.as_dict(),
        first_import_seconds=first,
        reimport_seconds=warm,
        reimport_cold_caches_seconds=cold_page,
    )
    label = f"{EDIT_CHANGES} of {files:,} files"
    note = "mount → overwrite → commit → unmount, median of 3"
    return [
        Row(
            "edit_vs_reimport",
            f"edit {label} in a mount + commit vs re-import (stat cache warm)",
            med,
            med_warm,
            med_warm / med,
            None,
            unit="s",
            baseline_name="mlgitfs import again",
            note=f"{note}; page cache warm for both; ratio = re-import s / ours s",
            extra=extra,
        ),
        Row(
            "edit_vs_reimport",
            f"edit {label} in a mount + commit vs import (stat cache cold)",
            med,
            first,
            first / med,
            None,
            unit="s",
            baseline_name="first import, caches dropped",
            note=f"{note}; the import into a fresh store reads every file",
        ),
        Row(
            "edit_vs_reimport",
            f"the same, both after dropping caches ({label}, stat cache warm)",
            ours_cold.total,
            cold_page,
            cold_page / ours_cold.total,
            None,
            unit="s",
            baseline_name="re-import, caches dropped",
            note="one run each; the re-import lstat()s every file from disk",
        ),
    ]
