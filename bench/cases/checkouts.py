"""Writable branch mounts (issue 4): commit and status against repo size, and sequential writes
through the copy-on-write overlay (bench/cases/checkouts_edit.py: editing 100 files of a
1,000,000-file data set in a mount against importing the whole directory again).

Every mount is a writable mount of a BRANCH made with the CLI and always unmounted, even when a
case fails (bench/mounting.py: ``mlgitfs unmount``, then ``fusermount3 -u -z``, then the daemon's
pid). Mounts a crashed run left under the work directory are detached before each case.
Each ratio compares runs made side by side in this case, interleaved so load drift on a shared
machine hits both sides alike.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.cases import fixtures
from bench.context import Context
from bench.mounting import mlgitfs_mount
from bench.ours import Mlgitfs
from bench.proc import run
from bench.registry import Row, case
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


def checkouts_root(ctx: Context) -> Path:
    root = ctx.work / "checkouts"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _synthesize(ctx: Context, home: Path, repo: str, files: int) -> Synth:
    """A synthetic repo (testsupport/synth.py) of 10 or more directories, so 10 changes can
    fall in 10 different ones."""
    out = synthesize(home, repo, files, min_dirs=MIN_DIRS)
    ctx.log(f"  synthetic {repo}: {out.files:,} files in {out.seconds:.1f}s")
    return out


def write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


# -- commit_scaling / status_scaling -------------------------------------------------------------


@dataclass
class _Scaling:
    files: dict[str, int]
    status: dict[str, list[float]]
    commit: dict[str, list[float]]
    commit_daemon: dict[str, list[float]]
    # the bookkeeping of the case that measured (status_scaling reuses commit_scaling's runs)
    record: dict[str, Any] = field(default_factory=dict)


def spread(ndirs: int, per_dir: int, n: int, salt: int) -> list[tuple[int, int]]:
    """``n`` (dir, file) pairs in ``min(n, ndirs)`` directories spread over the tree."""
    step = max(1, ndirs // n)
    return [((k * step) % ndirs, (7 + salt + k // ndirs) % per_dir) for k in range(n)]


def _scaling(ctx: Context) -> _Scaling:
    """Three writable mounts side by side (1k, 100k, 1M files); each round changes 10 files
    in 10 directories of every mount, then times ``status --json`` and ``commit``."""

    def make() -> _Scaling:
        root = checkouts_root(ctx)
        sizes = {
            "small": SCALE_SMALL,
            "mid": fixtures.shrink(ctx, SCALE_MID),
            "big": fixtures.shrink(ctx, SCALE_BIG),
        }
        ctx.log(f"synthetic repos: {', '.join(f'{n:,}' for n in sizes.values())} files")
        stores: dict[str, Mlgitfs] = {}
        shapes: dict[str, Synth] = {}
        for name, n in sizes.items():
            home = ctx.fresh_dir("checkouts", f"scale-{name}")
            stores[name] = Mlgitfs(home, ctx.path("logs", "mlgitfs-checkouts.log"))
            shapes[name] = _synthesize(ctx, home, "ds", n)
        res = _Scaling(
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
                    for d, i in spread(shape.dirs, shape.per_dir, SCALE_CHANGES, r):
                        path = mnt / dir_name(d) / file_name(d, i, shape.per_dir)
                        write_file(path, b"changed in round %d of %s\n" % (r, name.encode()))
                    secs, out = store.status(mnt)
                    changed = [c for c in out["changes"] if c["change"] == "modified"]
                    if len(out["changes"]) != SCALE_CHANGES or len(changed) != SCALE_CHANGES:
                        raise AssertionError(f"{name}: status shows {out['changes']!r}")
                    res.status[name].append(secs)
                    secs, out = store.commit(mnt, f"round {r}")
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
        res.record = ctx.case.extra()
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
                extra=dict(
                    res.record,
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
    secs = run(argv, capture=True, timeout=1800).seconds
    if path.stat().st_size != mib * MIB:
        raise AssertionError(f"{path}: {path.stat().st_size} bytes after dd of {mib} MiB")
    return secs


@case("seq_write", "checkout")
def seq_write(ctx: Context) -> list[Row]:
    """Sequential 1 GiB write (dd, 1 MiB blocks, fsync) into a writable mount vs ext4."""
    root = checkouts_root(ctx)
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
            extra=dict(bytes=nbytes, seconds=ours, baseline_seconds=base),
        )
    ]
