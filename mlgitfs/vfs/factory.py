"""Builds the view a mount daemon serves, inside the daemon process (after its fork).

The daemon calls `snapshot_view(arg)` with the JSON argument `api.mount` passed: the store is
opened here, in the process that serves it, never before a fork (LMDB).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlgitfs.model.ids import ObjectId, from_hex
from mlgitfs.repo.store import Store
from mlgitfs.vfs.snapshot import SnapshotView


def snapshot_view(arg: dict[str, Any]) -> SnapshotView:
    store = Store.open(Path(arg["home"]))
    commit = store.commit(ObjectId(from_hex(arg["commit"])))
    return SnapshotView(
        store,
        commit.tree,
        time_ns=commit.time_ns,
        cache_bytes=int(arg.get("cache_bytes", 256 << 20)),
    )
