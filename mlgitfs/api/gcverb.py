"""`gc`: reclaim what no root reaches (repo/gc.py has the protocol)."""

from __future__ import annotations

from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.errors import UsageError
from mlgitfs.repo import gc as gc_mod
from mlgitfs.repo.gc import GcResult


def gc(
    home: Path | None, dry_run: bool = False, threshold: float = gc_mod.DEFAULT_THRESHOLD
) -> GcResult:
    """Sweep unreachable objects and chunks and free segment space; with `dry_run`, only
    say what each step would free (nothing is written)."""
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold {threshold} is not between 0 and 1")
    return gc_mod.gc(open_store(home), dry_run, threshold)
