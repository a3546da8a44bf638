"""Memory of commits and imports (issue 12, item 10): the daemon's peak and retained anonymous
memory when committing, from a writable mount, 2 GiB of new incompressible files of 4 MiB and
then one 4 GiB file, and the peak of `mlgitfs import` of the same bytes.

Memory is the process's `RssAnon` (/proc/PID/status: heap and anonymous mappings, not the
page cache or LMDB's file mapping), sampled every 10 ms while the command runs. Retained is
`RssAnon` of the daemon a second after the commit returned, minus the idle daemon's (mounted,
before any write). Targets: peak under 512 MiB, retained under 64 MiB above idle.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from bench.context import Context
from bench.mounting import mlgitfs_mount
from bench.ours import QUIET_ENV, Mlgitfs
from bench.registry import Row, case

MIB = 1 << 20
PEAK_TARGET_MIB = 512.0
RETAINED_TARGET_MIB = 64.0
SMALL_FILE = 4 * MIB
SMALL_TOTAL = 2048 * MIB
LARGE_FILE = 4096 * MIB


def rss_anon(pid: int) -> int | None:
    """The process's anonymous resident bytes, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


class Sampler:
    """The largest `RssAnon` of a process while a block runs (a thread samples it)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = rss_anon(self.pid)
            if value is not None:
                self.peak = max(self.peak, value)
            self._stop.wait(0.01)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _write_random(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 4 * MIB)
            f.write(os.urandom(n))
            left -= n


def _data(ctx: Context) -> tuple[Path, Path, int, int]:
    """The source: `small/` (files of 4 MiB) and `large/big.bin`, incompressible."""
    shrink = 20 if ctx.quick else 1
    small_total, large = SMALL_TOTAL // shrink, LARGE_FILE // shrink
    root = ctx.fresh_dir("memory", "data")
    small, big = root / "small", root / "large"
    small.mkdir()
    big.mkdir()
    for i in range(small_total // SMALL_FILE):
        _write_random(small / f"f{i:04}.bin", SMALL_FILE)
    _write_random(big / "big.bin", large)
    return small, big / "big.bin", small_total, large


def _import_peak(ctx: Context, source: Path) -> tuple[float, float]:
    """(peak MiB, seconds) of `mlgitfs import` of `source` into a fresh store."""
    store = Mlgitfs(ctx.fresh_dir("memory", "import-home"), ctx.work / "logs" / "memory.log")
    store.init("mem")
    argv = [str(a) for a in store.argv("import", "mem", source, "-m", "all")]
    t0 = time.monotonic()
    with open(store.log, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=log, env={**os.environ, **QUIET_ENV})
        with Sampler(proc.pid) as s:
            proc.wait()
    secs = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"mlgitfs import exited {proc.returncode} (see {store.log})")
    shutil.rmtree(store.home, ignore_errors=True)
    return s.peak / MIB, secs


def _settled(pid: int, seconds: float = 1.0) -> int:
    time.sleep(seconds)
    return rss_anon(pid) or 0


def _row(metric: str, mib: float, target_mib: float, extra: dict[str, float]) -> Row:
    """A memory row: ours in MiB against its target, the ratio ours / target (at most 1)."""
    note = f"RssAnon; idle daemon {extra['idle_mib']:.0f} MiB" if "idle_mib" in extra else "RssAnon"
    return Row("memory_commit", metric, mib, target_mib, mib / target_mib, 1.0, "max", "MiB",
               f"target {target_mib:.0f} MiB", note=note, extra=dict(extra))  # fmt: skip


@case("memory_commit", "memory", "checkout")
def memory_commit(ctx: Context) -> list[Row]:
    """Daemon peak/retained memory committing 2 GiB of 4 MiB files and one 4 GiB file; CLI
    import peak of the same."""
    small, big, small_total, large = _data(ctx)
    ctx.log(f"  data: {small_total / MIB:.0f} MiB in 4 MiB files, one {large / MIB:.0f} MiB file")
    home = ctx.fresh_dir("memory", "home")
    store = Mlgitfs(home, ctx.work / "logs" / "memory.log")
    store.init("mem")
    seed = ctx.fresh_dir("memory", "seed")
    (seed / "README").write_text("seed\n")
    store.import_dir("mem", seed, "seed")
    rows: list[Row] = []
    results: dict[str, dict[str, float]] = {}
    with mlgitfs_mount(store, "mem@main", ctx.path("memory", "mnt")) as m:
        pid = m.pid
        assert pid is not None
        idle = _settled(pid)
        for what, copy in (
            ("small", lambda: shutil.copytree(small, m.path / "small")),
            ("large", lambda: shutil.copy(big, m.path / "big.bin")),
        ):
            copy()
            with Sampler(pid) as s:
                secs, out = store.commit(m.path, f"add {what}")
            retained = _settled(pid)
            results[what] = {
                "peak_mib": s.peak / MIB,
                "retained_mib": (retained - idle) / MIB,
                "idle_mib": idle / MIB,
                "commit_seconds": secs,
                "files_hashed": float(out.get("files_hashed", 0)),
            }
            ctx.log(
                f"  commit {what}: peak {s.peak / MIB:.0f} MiB, retained "
                f"{(retained - idle) / MIB:.0f} MiB above idle {idle / MIB:.0f} MiB"
            )
    labels = {
        "small": f"{small_total / MIB:.0f} MiB of 4 MiB files",
        "large": f"one {large / MIB:.0f} MiB file",
    }
    for what, label in labels.items():
        r = results[what]
        rows.append(_row(f"daemon peak, commit of {label}", r["peak_mib"], PEAK_TARGET_MIB, r))
        rows.append(
            _row(f"daemon retained, commit of {label}", r["retained_mib"], RETAINED_TARGET_MIB, r)
        )
    for what, source in (("small", small), ("large", big.parent)):
        label = labels[what]
        peak, secs = _import_peak(ctx, source)
        ctx.log(f"  import {what}: peak {peak:.0f} MiB in {secs:.1f}s")
        rows.append(_row(f"import peak, {label}", peak, PEAK_TARGET_MIB, {"seconds": secs}))
    shutil.rmtree(ctx.path("memory"), ignore_errors=True)
    return rows
