"""The writable mount a checkout command talks to, and paths inside it (shared by the
checkout and the in-mount merge commands)."""

from __future__ import annotations

import os
from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.api.mounts import MountInfo
from mlgitfs.errors import MountError, UsageError
from mlgitfs.store.facade import Store


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
    info = MountInfo(best.revspec, best.commit, best.mountpoint, best.pid, best.read_only,
                     best.fsname)  # fmt: skip
    return store, info, best.control_socket


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
