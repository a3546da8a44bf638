"""Run-wide state shared by the cases: sizes, work directory, memoized fixtures, cache dropping,
and the bookkeeping of the case that runs (`CaseRecord`, added to every row it returns)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_WORK = BENCH_DIR / ".work"
DEFAULT_OUT = BENCH_DIR / "results"


@dataclass(frozen=True)
class Sizes:
    """Data set sizes; ``--quick`` divides them by ``QUICK_FACTOR``."""

    small_files: int = 20_000
    small_mean: int = 100 * KIB
    large_bytes: int = 1 * GIB
    csv_bytes: int = 100 * MIB
    versions: int = 10
    change_fraction: float = 0.01

    def shrunk(self, factor: int) -> Sizes:
        return replace(
            self,
            small_files=max(50, self.small_files // factor),
            large_bytes=max(8 * MIB, self.large_bytes // factor),
            csv_bytes=max(2 * MIB, self.csv_bytes // factor),
        )


QUICK_FACTOR = 20
# Kept in the work directory: dvc-venv (reused across runs) and logs (of the last run).
KEEP_ALWAYS = frozenset({"dvc-venv", "logs"})


def drop_count() -> int | None:
    """How many times anyone wrote to /proc/sys/vm/drop_caches since boot (``drop_pagecache``
    in /proc/vmstat); None where the kernel does not count."""
    try:
        with open("/proc/vmstat", encoding="ascii") as f:
            for line in f:
                if line.startswith("drop_pagecache "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


@dataclass
class CaseRecord:
    """What every row of a case records: the load average at the start and end of the case,
    whether its own cache drops worked, and how often anyone dropped the page cache while it
    ran (other benchmarks on a shared machine turn warm runs cold)."""

    load_start: list[float] = field(default_factory=lambda: loadavg())
    drop_count_start: int | None = field(default_factory=drop_count)
    drops: list[bool] = field(default_factory=list)

    def extra(self) -> dict[str, Any]:
        now = drop_count()
        start = self.drop_count_start
        return {
            "loadavg_start": self.load_start,
            "loadavg_end": loadavg(),
            "caches_dropped": all(self.drops) if self.drops else None,
            "drop_pagecache_during_case": None if now is None or start is None else now - start,
            "own_cache_drops": len(self.drops),
        }


@dataclass
class Context:
    work: Path
    quick: bool = False
    keep: bool = False
    use_dvc: bool = True
    cold: bool = True
    install_peers: bool = True  # install missing peer programs (bench/peers.py)
    seed: int = 20240601
    sizes: Sizes = field(default_factory=Sizes)
    caches_dropped: bool | None = None  # None: never tried; False: tried and could not
    drop_cache_error: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    case: CaseRecord = field(default_factory=CaseRecord)  # the running case's (bench/harness.py)
    _memo: dict[str, Any] = field(default_factory=dict)
    _t0: float = field(default_factory=time.monotonic)

    def log(self, msg: str) -> None:
        print(f"[bench {time.monotonic() - self._t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    def path(self, *parts: str) -> Path:
        p = self.work.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def fresh_dir(self, *parts: str) -> Path:
        p = self.path(*parts)
        if p.exists():
            shutil.rmtree(p)
        p.mkdir(parents=True)
        return p

    def once(self, key: str, make: Callable[[], T]) -> T:
        """Memoize a fixture (generated data, a first import) for the rest of the run."""
        if key not in self._memo:
            self._memo[key] = make()
        value: T = self._memo[key]
        return value

    def forget(self, key: str) -> None:
        self._memo.pop(key, None)

    def settle(self) -> None:
        """Before a warm timed run: flush dirty pages (e.g. of just-generated data) so their
        writeback does not run during the measurement."""
        subprocess.run(["sync"], check=False)

    def drop_caches(self) -> bool:
        """Drop the page cache before a cold run (needs root); records whether it worked.
        Always syncs first, as ``settle`` does."""
        self.settle()
        if not self.cold:
            return False
        try:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3\n")
        except OSError as e:
            self.caches_dropped = False
            self.drop_cache_error = f"{type(e).__name__}: {e}"
            self.case.drops.append(False)
            return False
        if self.caches_dropped is None:
            self.caches_dropped = True
        self.case.drops.append(True)
        return True

    def cleanup(self) -> None:
        if not self.keep:
            for child in self.work.iterdir() if self.work.exists() else []:
                if child.name in KEEP_ALWAYS:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


def cpu_count() -> int:
    return os.cpu_count() or 1


def loadavg() -> list[float]:
    """The machine's load averages, recorded with each case: these machines are shared."""
    return [round(x, 2) for x in os.getloadavg()]
