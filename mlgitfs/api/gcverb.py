"""`gc`: reclaim what no root reaches (repo/gc.py has the protocol)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.daemon import registry
from mlgitfs.errors import UsageError
from mlgitfs.repo import gc as gc_mod
from mlgitfs.repo.gc import GcResult
from mlgitfs.repo.remotegc import DEFAULT_GRACE, RemoteGcResult, gc_remote
from mlgitfs.store import packs
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


_GRACE = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_grace(text: str | None) -> float:
    """Seconds of `--grace` (`90s`, `30m`, `1h`, `2d`; a bare number is seconds)."""
    if text is None:
        return DEFAULT_GRACE
    m = _GRACE.match(text.strip())
    if m is None:
        raise UsageError(f"--grace {text!r}: expected a duration such as 90s, 30m, 1h or 2d")
    return float(m.group(1)) * _UNIT[m.group(2)]


def gc_remote_verb(
    home: Path | None,
    remote: str | None,
    dry_run: bool = False,
    threshold: float = gc_mod.DEFAULT_THRESHOLD,
    grace: str | None = None,
) -> RemoteGcResult:
    """Remote gc (repo/remotegc.py): reclaim the remote's packs no ref reaches (retention
    as the remote's rules say), repacking sparse ones; with `dry_run`, only say what it
    would do. MLGITFS_PACK_TARGET (bytes) overrides the repack's pack size."""
    seconds = parse_grace(grace)
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold {threshold} is not between 0 and 1")
    target = int(os.environ.get("MLGITFS_PACK_TARGET", packs.PACK_TARGET))
    return gc_remote(open_store(home), remote, dry_run, threshold, seconds, pack_target=target)
