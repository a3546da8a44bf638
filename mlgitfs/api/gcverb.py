"""`gc`: reclaim what no root reaches (repo/gc.py has the protocol)."""

from __future__ import annotations

from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.daemon import registry
from mlgitfs.errors import UsageError
from mlgitfs.repo import gc as gc_mod
from mlgitfs.repo.gc import GcResult
from mlgitfs.store.facade import Store


def gc(
    home: Path | None, dry_run: bool = False, threshold: float = gc_mod.DEFAULT_THRESHOLD
) -> GcResult:
    """Sweep unreachable objects and chunks and free segment space; with `dry_run`, only
    say what each step would free (nothing is written)."""
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold {threshold} is not between 0 and 1")
    store = open_store(home)
    return gc_mod.gc(store, dry_run, threshold, mounted=lambda: mounted_commits(store))


def mounted_commits(store: Store) -> list[bytes]:
    """The commits live mounts of the store serve (gc roots). A mount of several versions
    records no one commit: its versions are kept by refs."""
    return [bytes.fromhex(m.commit) for m in registry.list_mounts(store.run_dir) if m.commit]
