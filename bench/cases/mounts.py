"""Mount cases (issue 3): mount-to-first-read against file count, sequential reads of a large
file, small-file epochs of a DataLoader-like reader, and a metadata walk (``find`` + stat).

Every mount is of a TAG (read-only; branch mounts are writable overlays), made with the CLI and
always unmounted, even when a case fails (bench/mounting.py). Each ratio compares runs made side
by side in this case on the same data: through an mlgitfs mount, from the plain files on the same
disk (ext4), and for sequential reads through a bare pyfuse3 passthrough (bench/passthrough.py),
the limit of the Python FUSE stack.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench import datagen
from bench.cases import fixtures
from bench.context import QUICK_FACTOR, Context, loadavg
from bench.mounting import (
    WarmRuns,
    mlgitfs_mount,
    mount_once,
    passthrough_mount,
    run_reader,
    timed_command,
)
from bench.ours import Mlgitfs
from bench.proc import children_cpu_seconds, cpu_seconds
from bench.registry import Row, case
from testsupport.mounts import clear_under
from testsupport.synth import Synth, synthesize

MB = 1e6
SCALE_TARGET = 1.5
PASSTHROUGH_TARGET = 0.8
WARM_SEQ_TARGET = 0.45
EPOCH1_TARGET = 0.4
EPOCH2_TARGET = 0.3
FIND_TARGET = 0.3

SCALE_SMALL = 1_000
SCALE_BIG = 1_000_000
FLAT_BIG = 100_000
STAT_FILES = 100_000
RUNS = 3
EPOCH_SEED = 1234


def _shrink(ctx: Context, n: int) -> int:
    return n // QUICK_FACTOR if ctx.quick else n


@dataclass
class _Start:
    """What every row of a case records: the load average and whether caches could be dropped."""

    load_start: list[float]
    drops: list[bool]

    def extra(self, **more: Any) -> dict[str, Any]:
        return {
            "loadavg_start": self.load_start,
            "loadavg_end": loadavg(),
            "caches_dropped": all(self.drops) if self.drops else None,
            **more,
        }


def _begin(ctx: Context) -> _Start:
    stale = clear_under(ctx.work)
    if stale:
        ctx.log(f"detached stale mounts: {', '.join(map(str, stale))}")
    return _Start(loadavg(), [])


def _drop(ctx: Context, st: _Start) -> None:
    st.drops.append(ctx.drop_caches())


# -- stores: one home for the imported data sets, one repo (tagged v1) per data set -----------


def _mount_store(ctx: Context) -> Mlgitfs:
    def make() -> Mlgitfs:
        home = ctx.fresh_dir("homes", "mounts")
        return Mlgitfs(home, ctx.path("logs", "mlgitfs-mounts.log"))

    return ctx.once("mounts:store", make)


def _tagged(ctx: Context, repo: str, root: Path) -> tuple[Mlgitfs, str]:
    """``init``, ``import`` of ``root`` and ``tag REPO@v1`` with the CLI; returns the revspec."""

    def make() -> tuple[Mlgitfs, str]:
        store = _mount_store(ctx)
        store.init(repo)
        ctx.log(f"mlgitfs import {root} into {repo} (not timed)")
        secs = store.import_dir(repo, root, f"bench mounts: {repo}")
        ctx.log(f"  {secs:.2f}s")
        store.run("tag", f"{repo}@v1")
        return store, f"{repo}@v1"

    return ctx.once(f"mounts:tagged:{repo}", make)


def _mnt(ctx: Context, name: str) -> Path:
    return ctx.path("mnt", name)


# -- mount_scale ---------------------------------------------------------------------------------


def _synthesize(ctx: Context, home: Path, repo: str, files: int, flat: bool) -> Synth:
    out = synthesize(home, repo, files, flat=flat)
    ctx.log(f"  synthetic {repo}: {out.files} files in {out.seconds:.1f}s")
    return out


def _first_read(ctx: Context, st: _Start, store: Mlgitfs, s: Synth) -> tuple[float, float]:
    """Drop caches, ``mlgitfs mount REPO@v1`` and read one file: (total, read-only) seconds."""
    mnt = _mnt(ctx, f"scale-{s.repo}")
    _drop(ctx, st)
    t0 = time.perf_counter()
    mounted = mount_once(store, f"{s.repo}@v1", mnt)
    try:
        t1 = time.perf_counter()
        with open(mnt / s.sample, "rb") as f:
            data = f.read()
        t2 = time.perf_counter()
    finally:
        mounted.unmount()
    if data != s.content.encode():
        raise AssertionError(f"{s.repo}: {s.sample} read {data!r}, expected {s.content!r}")
    return t2 - t0, t2 - t1


@case("mount_scale", "mount")
def mount_scale(ctx: Context) -> list[Row]:
    """Mount + first read of a commit of 1M files (and a flat dir of 100k) vs 1k files."""
    st = _begin(ctx)
    home = ctx.fresh_dir("homes", "mount-scale")
    store = Mlgitfs(home, ctx.path("logs", "mlgitfs-mount-scale.log"))
    big_n = _shrink(ctx, SCALE_BIG)
    flat_n = _shrink(ctx, FLAT_BIG)
    ctx.log(f"synthetic commits: {SCALE_SMALL} and {big_n} files, flat {SCALE_SMALL} and {flat_n}")
    variants = [
        _synthesize(ctx, home, "small", SCALE_SMALL, False),
        _synthesize(ctx, home, "big", big_n, False),
        _synthesize(ctx, home, "flatsmall", SCALE_SMALL, True),
        _synthesize(ctx, home, "flatbig", flat_n, True),
    ]
    totals: dict[str, list[float]] = {v.repo: [] for v in variants}
    reads: dict[str, list[float]] = {v.repo: [] for v in variants}
    for run in range(RUNS):  # interleaved, so drift on the machine hits every variant alike
        for v in variants:
            total, read = _first_read(ctx, st, store, v)
            totals[v.repo].append(total)
            reads[v.repo].append(read)
        ctx.log(
            f"  run {run + 1}/{RUNS}: "
            + ", ".join(f"{v.repo} {totals[v.repo][-1]:.3f}s" for v in variants)
        )
    rows = []
    for small, big, label in (
        (variants[0], variants[1], "nested, 1,000 per dir"),
        (variants[2], variants[3], "one flat dir (paged tree)"),
    ):
        best_big, best_small = min(totals[big.repo]), min(totals[small.repo])
        med_big = statistics.median(totals[big.repo])
        med_small = statistics.median(totals[small.repo])
        extra = st.extra(
            files=big.files,
            baseline_files=small.files,
            seconds=totals[big.repo],
            baseline_seconds=totals[small.repo],
            read_seconds=reads[big.repo],
            baseline_read_seconds=reads[small.repo],
            median_ratio=med_big / med_small,
        )
        rows.append(
            Row(
                "mount_scale",
                f"mount + first read, {big.files:,} vs {small.files:,} files ({label})",
                best_big,
                best_small,
                best_big / best_small,
                SCALE_TARGET,
                direction="max",
                unit="s",
                baseline_name=f"{small.files:,} files",
                note=f"best of {RUNS}, caches dropped before each; median ratio "
                f"{med_big / med_small:.2f}x",
                extra=extra,
            )
        )
        rb, rs = min(reads[big.repo]), min(reads[small.repo])
        rows.append(
            Row(
                "mount_scale",
                f"first read after mount returns, {big.files:,} vs {small.files:,} ({label})",
                rb * 1000,
                rs * 1000,
                rb / rs,
                None,
                direction="max",
                unit="ms",
                baseline_name=f"{small.files:,} files",
                note="lookups + read of one file only (the part that could grow with size)",
            )
        )
    return rows


# -- seq_read ------------------------------------------------------------------------------------


def _seq(path: Path) -> float:
    """Throughput in bytes/s of one sequential read (1 MiB reads, in a subprocess)."""
    r = run_reader(["seq", str(path)])
    return float(r["bytes"]) / float(r["seconds"])


@dataclass
class _Cpu:
    """CPU seconds per GiB read of a cold read: the FUSE daemon's and the reader's."""

    daemon: list[float]
    reader: list[float]

    def measure(self, pid: int | None, read: Callable[[], float], gib: float) -> float:
        d0, r0 = (cpu_seconds(pid) if pid else 0.0), children_cpu_seconds()
        result = read()
        if pid:
            self.daemon.append((cpu_seconds(pid) - d0) / gib)
        self.reader.append((children_cpu_seconds() - r0) / gib)
        return result


@case("seq_read", "mount")
def seq_read(ctx: Context) -> list[Row]:
    """Sequential read of a 1 GiB file through a tag mount vs pyfuse3 passthrough and ext4."""
    st = _begin(ctx)
    data = fixtures.large_data(ctx)
    store, revspec = _tagged(ctx, "large", data.root)
    name = "big.bin"
    plain = data.root / name
    rounds = 2
    ext_cold: list[float] = []
    ext_warm: list[float] = []
    pt_cold: list[float] = []
    pt_warm: list[float] = []
    ours_first: list[float] = []
    ours_second: list[float] = []
    info: dict[str, Any] = {"bytes": data.bytes}
    warm_reads = 3
    runs = WarmRuns()
    gib = data.bytes / 2**30
    pt_cpu, ours_cpu = _Cpu([], []), _Cpu([], [])
    for r in range(rounds):
        # Both mounts fresh and up at once; each cold read after its own cache drop (the
        # passthrough reads the very ext4 file, so ext4 must be cold for it too); then the
        # warm reads interleaved, so load on the machine hits all three alike.
        with (
            passthrough_mount(
                data.root, _mnt(ctx, "passthrough"), ctx.path("logs", "passthrough.log")
            ) as pt,
            mlgitfs_mount(store, revspec, _mnt(ctx, "seq")) as m,
        ):
            info["passthrough_read_ahead_kb"] = pt.read_ahead_kb
            info["mlgitfs_read_ahead_kb"] = m.read_ahead_kb
            _drop(ctx, st)
            pt_cold.append(
                runs.cold(
                    "pt", lambda: pt_cpu.measure(pt.proc.pid, partial(_seq, pt.path / name), gib)
                )
            )
            _drop(ctx, st)
            ours_first.append(
                runs.cold(
                    "ours", lambda: ours_cpu.measure(m.pid, partial(_seq, m.path / name), gib)
                )
            )
            _drop(ctx, st)
            ext_cold.append(runs.cold("ext4", lambda: _seq(plain)))
            warm = runs.warm(
                {
                    "ext4": lambda: _seq(plain),
                    "pt": lambda: _seq(pt.path / name),
                    "ours": lambda: _seq(m.path / name),
                },
                want=warm_reads,
                max_tries=3 * warm_reads,
            )
            ext_warm += warm["ext4"]
            pt_warm += warm["pt"]
            ours_second += warm["ours"]
        ctx.log(
            f"  round {r + 1}/{rounds} MB/s: ext4 cold {ext_cold[-1] / MB:.0f} "
            f"warm {max(ext_warm) / MB:.0f}; passthrough cold {pt_cold[-1] / MB:.0f} "
            f"warm {max(pt_warm) / MB:.0f}; ours first {ours_first[-1] / MB:.0f} "
            f"second {max(ours_second) / MB:.0f}"
        )
    mbps = {
        "ext4_cold": [x / MB for x in ext_cold],
        "ext4_warm": [x / MB for x in ext_warm],
        "passthrough_cold": [x / MB for x in pt_cold],
        "passthrough_warm": [x / MB for x in pt_warm],
        "ours_first": [x / MB for x in ours_first],
        "ours_second": [x / MB for x in ours_second],
    }
    cpu = {
        "passthrough_daemon": pt_cpu.daemon,
        "passthrough_reader": pt_cpu.reader,
        "ours_daemon": ours_cpu.daemon,
        "ours_reader": ours_cpu.reader,
    }
    extra = st.extra(mb_per_s=mbps, cpu_s_per_gib_cold=cpu, rounds=rounds, **info, **runs.info())
    of, os_, ec, ew, pc, pw = (
        max(ours_first),
        max(ours_second),
        max(ext_cold),
        max(ext_warm),
        max(pt_cold),
        max(pt_warm),
    )
    note = f"best of {rounds} first reads / {warm_reads * rounds} warm reads; 1 MiB reads"
    ours_d, pt_d = min(ours_cpu.daemon, default=0.0), min(pt_cpu.daemon, default=0.0)
    return [
        Row(
            "seq_read",
            "first read vs bare pyfuse3 passthrough (cold)",
            of / MB,
            pc / MB,
            of / pc,
            PASSTHROUGH_TARGET,
            unit="MB/s",
            baseline_name="passthrough cold",
            note=note + "; fresh mount, page cache dropped",
            extra=extra,
        ),
        Row(
            "seq_read",
            "daemon CPU seconds per GiB of a first read, ours vs passthrough",
            ours_d,
            pt_d,
            ours_d / max(pt_d, 1e-9),
            None,
            unit="CPU-s",
            baseline_name="passthrough daemon",
            note=f"least of {rounds}; the reader used "
            f"{min(ours_cpu.reader, default=0.0):.2f} (ours) and "
            f"{min(pt_cpu.reader, default=0.0):.2f} (passthrough) CPU-s per GiB",
        ),
        Row(
            "seq_read",
            "second read vs ext4 warm",
            os_ / MB,
            ew / MB,
            os_ / ew,
            WARM_SEQ_TARGET,
            unit="MB/s",
            baseline_name="ext4 warm",
            note=note + "; keep_cache: served from the page cache",
        ),
        Row(
            "seq_read",
            "first read vs ext4 cold",
            of / MB,
            ec / MB,
            of / ec,
            None,
            unit="MB/s",
            baseline_name="ext4 cold",
        ),
        Row(
            "seq_read",
            "passthrough warm vs ext4 warm (the stack's limit)",
            pw / MB,
            ew / MB,
            pw / ew,
            None,
            unit="MB/s",
            baseline_name="ext4 warm",
        ),
    ]


# -- small_epochs --------------------------------------------------------------------------------


def _epoch(root: Path, procs: int, unbuffered: bool = False) -> dict[str, Any]:
    more = ["--unbuffered"] if unbuffered else []
    return run_reader(["epoch", str(root), "--procs", str(procs), "--seed", str(EPOCH_SEED), *more])


def _patched_pyfuse3() -> bool:
    """Whether the passthrough can answer open with ENOSYS, as the mlgitfs daemon does."""
    proc = subprocess.run(
        [sys.executable, "-c", "import pyfuse3; print(pyfuse3.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return "+mlgitfs.noopen" in proc.stdout


def _check_same(a: dict[str, Any], b: dict[str, Any], what: str) -> None:
    if (a["files"], a["bytes"]) != (b["files"], b["bytes"]):
        raise AssertionError(
            f"{what}: mount read {b['files']} files / {b['bytes']} bytes, "
            f"ext4 {a['files']} / {a['bytes']}"
        )


@case("small_epochs", "mount")
def small_epochs(ctx: Context) -> list[Row]:
    """Shuffled whole-file reads of ~20k 100 KiB files, 1 and 2 readers, epochs 1 and 2."""
    st = _begin(ctx)
    data = fixtures.small_data(ctx)
    store, revspec = _tagged(ctx, "small", data.root)
    rows: list[Row] = []
    no_open = _patched_pyfuse3()
    for procs in (1, 2):
        runs = WarmRuns()
        # Fresh mounts for each reader count; each first epoch after its own cache drop; the
        # second epochs interleaved, so load on the machine hits all alike.
        with (
            mlgitfs_mount(store, revspec, _mnt(ctx, "small")) as m,
            passthrough_mount(
                data.root,
                _mnt(ctx, "small-passthrough"),
                ctx.path("logs", "passthrough.log"),
                no_open=no_open,
            ) as pt,
        ):
            _drop(ctx, st)
            ours1 = runs.cold("ours", partial(_epoch, m.path, procs))
            _drop(ctx, st)
            pt1 = runs.cold("pt", partial(_epoch, pt.path, procs))
            _drop(ctx, st)
            ext1 = runs.cold("ext4", partial(_epoch, data.root, procs))
            warm = runs.warm(
                {
                    "ext4": partial(_epoch, data.root, procs),
                    "ours": partial(_epoch, m.path, procs),
                    "pt": partial(_epoch, pt.path, procs),
                    "ext4 unbuffered": partial(_epoch, data.root, procs, True),
                    "ours unbuffered": partial(_epoch, m.path, procs, True),
                },
                want=2,
                max_tries=5,
            )
            ext2, ours2, pt2 = warm["ext4"], warm["ours"], warm["pt"]
            ext2u, ours2u = warm["ext4 unbuffered"], warm["ours unbuffered"]
        for r in (ours1, *ours2, pt1, *pt2):
            _check_same(ext1, r, f"small_epochs procs={procs}")
        e2 = min(x["seconds"] for x in ext2)
        o2 = min(x["seconds"] for x in ours2)
        p2 = min(x["seconds"] for x in pt2)
        e2u = min(x["seconds"] for x in ext2u)
        o2u = min(x["seconds"] for x in ours2u)
        ctx.log(
            f"  {procs} reader(s): epoch 1 ext4 {ext1['seconds']:.2f}s ours "
            f"{ours1['seconds']:.2f}s passthrough {pt1['seconds']:.2f}s; epoch 2 ext4 "
            f"{e2:.2f}s ours {o2:.2f}s passthrough {p2:.2f}s"
        )
        files = int(ext1["files"])
        extra = st.extra(
            procs=procs,
            files=files,
            bytes=ext1["bytes"],
            ext4=[ext1, *ext2],
            ours=[ours1, *ours2],
            passthrough=[pt1, *pt2],
            ext4_unbuffered=ext2u,
            ours_unbuffered=ours2u,
            passthrough_no_open=no_open,
            **runs.info(),
        )
        rate = "files/s"
        readers = f"{procs} reader{'s' if procs > 1 else ''}"
        pt_name = "passthrough" + (" (no open)" if no_open else "")
        rows += [
            Row(
                "small_epochs",
                f"epoch 1 (cold), {readers}",
                files / ours1["seconds"],
                files / ext1["seconds"],
                ext1["seconds"] / ours1["seconds"],
                EPOCH1_TARGET,
                unit=rate,
                baseline_name="ext4 cold",
                note="caches dropped, fresh mount, chunks in the local store; walk + shuffled "
                "reads",
                extra=extra,
            ),
            Row(
                "small_epochs",
                f"epoch 2 (warm), {readers}",
                files / o2,
                files / e2,
                e2 / o2,
                EPOCH2_TARGET,
                unit=rate,
                baseline_name="ext4 warm",
                note="same mount; best of 2 (runs a cache drop spoiled are retried)",
            ),
            Row(
                "small_epochs",
                f"epoch 2 (warm), {readers}, open(buffering=0)",
                files / o2u,
                files / e2u,
                e2u / o2u,
                None,
                unit=rate,
                baseline_name="ext4 warm, same",
                note="no isatty() per open, so no FUSE_IOCTL round trip per file",
            ),
            Row(
                "small_epochs",
                f"{pt_name} epoch 1 vs ext4 cold, {readers} (the stack's limit)",
                files / pt1["seconds"],
                files / ext1["seconds"],
                ext1["seconds"] / pt1["seconds"],
                None,
                unit=rate,
                baseline_name="ext4 cold",
            ),
            Row(
                "small_epochs",
                f"{pt_name} epoch 2 vs ext4 warm, {readers} (the stack's limit)",
                files / p2,
                files / e2,
                e2 / p2,
                None,
                unit=rate,
                baseline_name="ext4 warm",
            ),
        ]
    return rows


# -- find_stat -----------------------------------------------------------------------------------


def _stat_data(ctx: Context) -> datagen.Dataset:
    def make() -> datagen.Dataset:
        n = _shrink(ctx, STAT_FILES)
        root = ctx.fresh_dir("data", "stat")
        ctx.log(f"generating {n} tiny files in {root}")
        for i in range(n):
            d = root / f"d{i // 1000:03d}"
            if i % 1000 == 0:
                d.mkdir()
            (d / f"f{i:06d}.txt").write_bytes(f"file {i}\n".encode() * (1 + i % 7))
        return datagen.dir_stats(root)

    return ctx.once("data:stat", make)


def _find(root: Path) -> float:
    return timed_command(["find", str(root), "-type", "f", "-printf", "%s\n"])


def _listing(root: Path) -> list[str]:
    """Names, types, and sizes of non-directories (a directory's st_size is fs-specific)."""
    argv = [
        "find", str(root),
        "(", "-type", "d", "-printf", "%P d\n", ")", "-o", "-printf", "%P %y %s\n",
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    return sorted(out.stdout.splitlines())


@case("find_stat", "mount")
def find_stat(ctx: Context) -> list[Row]:
    """``find -type f -printf %s`` over 100k files: a tag mount vs ext4, warm (second run)."""
    st = _begin(ctx)
    data = _stat_data(ctx)
    store, revspec = _tagged(ctx, "stat", data.root)
    runs = WarmRuns()
    with mlgitfs_mount(store, revspec, _mnt(ctx, "stat")) as m:
        _drop(ctx, st)
        ours_cold = runs.cold("ours", lambda: _find(m.path))
        _drop(ctx, st)
        ext_cold = runs.cold("ext4", lambda: _find(data.root))
        warm = runs.warm(
            {"ext4": lambda: _find(data.root), "ours": lambda: _find(m.path)},
            want=3,
            max_tries=8,
        )
        ext_warm, ours_warm = warm["ext4"], warm["ours"]
        same = _listing(m.path) == _listing(data.root)
    ew, ow = min(ext_warm), min(ours_warm)
    ctx.log(
        f"  find: ext4 cold {ext_cold:.2f}s warm {ew:.2f}s; ours cold {ours_cold:.2f}s "
        f"warm {ow:.2f}s; listings equal: {same}"
    )
    extra = st.extra(
        files=data.files,
        ext4_cold=ext_cold,
        ext4_warm=ext_warm,
        ours_cold=ours_cold,
        ours_warm=ours_warm,
        listings_equal=same,
        **runs.info(),
    )
    err = None if same else "find over the mount does not list what find over ext4 lists"
    return [
        Row(
            "find_stat",
            f"find + stat of {data.files:,} files, warm",
            data.files / ow,
            data.files / ew,
            ew / ow,
            FIND_TARGET,
            unit="files/s",
            baseline_name="ext4 warm",
            note="second and later runs (kernel caches warm for both); best of 3",
            extra=extra,
            error=err,
        ),
        Row(
            "find_stat",
            f"find + stat of {data.files:,} files, cold (fresh mount, caches dropped)",
            data.files / ours_cold,
            data.files / ext_cold,
            ext_cold / ours_cold,
            None,
            unit="files/s",
            baseline_name="ext4 cold",
        ),
    ]
