"""Mount cases (issue 3), part one: mount-to-first-read against file count and sequential reads
of a large file (bench/cases/mounts_epochs.py has the small-file epochs and the metadata walk).

Every mount is of a TAG (read-only; branch mounts are writable overlays), made with the CLI and
always unmounted, even when a case fails (bench/mounting.py). Each ratio compares runs made side
by side in this case on the same data: through an mlgitfs mount, from the plain files on the same
disk (ext4), and for sequential reads through a bare pyfuse3 passthrough (bench/passthrough.py),
the limit of the Python FUSE stack.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from bench.cases import fixtures
from bench.context import Context
from bench.mounting import mlgitfs_mount, mount_and_read_one, passthrough_mount, run_reader
from bench.ours import Mlgitfs
from bench.proc import children_cpu_seconds, cpu_seconds
from bench.registry import Row, case
from bench.warm import WarmRuns
from testsupport.synth import Synth, synthesize

MB = 1e6
SCALE_TARGET = 1.5
PASSTHROUGH_TARGET = 0.8
WARM_SEQ_TARGET = 0.45

SCALE_SMALL = 1_000
SCALE_BIG = 1_000_000
FLAT_BIG = 100_000
RUNS = 3


# -- mount_scale ---------------------------------------------------------------------------------


def _synthesize(ctx: Context, home: Path, repo: str, files: int, flat: bool) -> Synth:
    out = synthesize(home, repo, files, flat=flat)
    ctx.log(f"  synthetic {repo}: {out.files} files in {out.seconds:.1f}s")
    return out


def _first_read(ctx: Context, store: Mlgitfs, s: Synth) -> tuple[float, float]:
    """Drop caches, ``mlgitfs mount REPO@v1`` and read one file: (total, read-only) seconds."""
    ctx.drop_caches()
    r = mount_and_read_one(
        store, f"{s.repo}@v1", fixtures.mnt(ctx, f"scale-{s.repo}"), s.sample, s.content.encode()
    )
    return r.total, r.read


@case("mount_scale", "mount")
def mount_scale(ctx: Context) -> list[Row]:
    """Mount + first read of a commit of 1M files (and a flat dir of 100k) vs 1k files."""
    home = ctx.fresh_dir("homes", "mount-scale")
    store = Mlgitfs(home, ctx.path("logs", "mlgitfs-mount-scale.log"))
    big_n = fixtures.shrink(ctx, SCALE_BIG)
    flat_n = fixtures.shrink(ctx, FLAT_BIG)
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
            total, read = _first_read(ctx, store, v)
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
        extra = dict(
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
    data = fixtures.large_data(ctx)
    store, revspec = fixtures.tagged(ctx, "large", data.root)
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
                data.root, fixtures.mnt(ctx, "passthrough"), ctx.path("logs", "passthrough.log")
            ) as pt,
            mlgitfs_mount(store, revspec, fixtures.mnt(ctx, "seq")) as m,
        ):
            info["passthrough_read_ahead_kb"] = pt.read_ahead_kb
            info["mlgitfs_read_ahead_kb"] = m.read_ahead_kb
            ctx.drop_caches()
            pt_cold.append(
                runs.cold(
                    "pt", lambda: pt_cpu.measure(pt.proc.pid, partial(_seq, pt.path / name), gib)
                )
            )
            ctx.drop_caches()
            ours_first.append(
                runs.cold(
                    "ours", lambda: ours_cpu.measure(m.pid, partial(_seq, m.path / name), gib)
                )
            )
            ctx.drop_caches()
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
    extra = dict(mb_per_s=mbps, cpu_s_per_gib_cold=cpu, rounds=rounds, **info, **runs.info())
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
