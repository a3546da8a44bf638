"""The writable mount a checkout command talks to, and paths inside it (shared by the
checkout and the in-mount merge commands)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from mlgitfs.api._common import open_store
from mlgitfs.api.mounts import MountInfo
from mlgitfs.errors import MountError, UsageError
from mlgitfs.store.facade import Store

if TYPE_CHECKING:
    from mlgitfs.daemon.registry import MountRecord


def writable_mount(home: Path | None, where: Path | None) -> tuple[Store, MountInfo, str]:
    """The writable mount containing `where` (default: the current directory) and its
    control socket."""
    from mlgitfs.daemon import registry

    store = open_store(home)
    target = os.path.abspath(where if where is not None else os.getcwd())
    best = None
    for m in registry.list_mounts(store.run_dir):
        inside = target == m.mountpoint or target.startswith(m.mountpoint.rstrip("/") + "/")
        if inside and (best is None or len(m.mountpoint) > len(best.mountpoint)):
            best = m
    if best is None:
        raise MountError(
            f"{target} is not inside a mount of the store at {store.home} (see 'mlgitfs "
            "mounts'; a mount of another store needs its --home or MLGITFS_HOME)"
        )
    if best.read_only or not best.control_socket:
        raise MountError(f"{best.mountpoint} is a read-only mount ({best.revspec}): "
                         "mount a branch without --read-only to change it")  # fmt: skip
    if best.checkouts:
        return store, _checkout_at(best, target), best.control_socket
    info = MountInfo(best.revspec, best.commit, best.mountpoint, best.pid, best.read_only,
                     best.fsname)  # fmt: skip
    return store, info, best.control_socket


def _checkout_at(m: MountRecord, target: str) -> MountInfo:
    """In a mount of several versions, the writable branch whose directory holds `target`,
    as if it were a mount of its own there (its REPO@BRANCH names it on the socket)."""
    for where, ref in sorted(m.checkouts.items()):
        root = os.path.join(m.mountpoint, where)
        if target == root or target.startswith(root + "/"):
            return MountInfo(ref, "", root, m.pid, False, m.fsname)
    shown = ", ".join(os.path.join(m.mountpoint, w) for w in sorted(m.checkouts))
    raise MountError(f"{target} is in a read-only part of the mount at {m.mountpoint} "
                     f"({m.revspec}): only {shown} change")  # fmt: skip


def mount_paths(paths: list[Path], mountpoint: str) -> list[str]:
    """`paths` as paths inside the mount at `mountpoint` (\"\" for the mountpoint itself)."""
    out = []
    for p in paths:
        full = os.path.abspath(p)
        if full == mountpoint:
            out.append("")
        elif full.startswith(mountpoint.rstrip("/") + "/"):
            out.append(full[len(mountpoint.rstrip("/")) + 1 :])
        else:
            raise UsageError(f"{p} is not inside the mount at {mountpoint}")
    return out


def repo_branch(revspec: str) -> tuple[str, str]:
    """(repo, branch) of a writable mount's revspec."""
    repo, _, ref = revspec.partition("@")
    return repo, ref
