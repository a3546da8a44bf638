"""Mounting versions: mount, unmount, mounts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.api.doctor import warn_if_stock
from mlgitfs.errors import MlgitError, UsageError
from mlgitfs.model.ids import to_hex
from mlgitfs.model.revspec import parse_repo_branch
from mlgitfs.repo import refs
from mlgitfs.store.facade import Store, parse_size

# --- mounts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MountInfo:
    revspec: str
    commit: str
    mountpoint: str
    pid: int
    read_only: bool
    fsname: str
    alive: bool = True  # False: the daemon died and the kernel still holds the mount


def mount(
    home: Path | None,
    revspec: str,
    mountpoint: Path,
    *,
    foreground: bool = False,
    allow_other: bool = False,
    cache_size: str | None = None,
    read_only: bool = False,
) -> MountInfo | None:
    """Mount a version; returns once the mount answers (None after a foreground run ends)."""
    from mlgitfs.daemon import mount as mount_mod

    warn_if_stock()
    store = open_store(home)
    r = refs.resolve(store, revspec)
    if r.spec.path:
        raise UsageError("mount a whole version (REPO@REF), not a path inside it")
    # A branch mounts writable (a checkout with its overlay) unless --read-only.
    writable = r.branch is not None and not read_only
    cache_bytes = parse_size(cache_size) if cache_size else 256 << 20
    # A writable mount is recorded under its branch's plain name (not `heads/NAME`).
    shown = f"{r.repo}@{r.branch}" if writable else str(r.spec)
    fsname = f"mlgitfs:{shown}"
    home_str = str(store.home.resolve())
    factory, view_arg = (
        "mlgitfs.vfs.factory:snapshot_view",
        {
            "home": home_str,
            "commit": to_hex(r.commit_id),
            "cache_bytes": cache_bytes,
        },
    )
    if writable:
        factory = "mlgitfs.vfs.factory:checkout_view"
        view_arg = {"home": home_str, "repo": r.repo, "branch": r.branch,
                    "cache_bytes": cache_bytes}  # fmt: skip
    result = mount_mod.mount(
        factory,
        mountpoint,
        fsname,
        view_arg=view_arg,
        read_only=not writable,
        foreground=foreground,
        allow_other=allow_other,
        run_dir=store.run_dir,
        revspec=shown,
        commit=to_hex(r.commit_id),
    )
    if result is None:
        return None
    return MountInfo(
        shown, to_hex(r.commit_id), result.mountpoint, result.pid, not writable, result.fsname
    )


def unmount(home: Path | None, mountpoint: Path, lazy: bool = False) -> None:
    from mlgitfs.daemon import mount as mount_mod

    mount_mod.unmount(mountpoint, lazy=lazy, run_dir=open_store(home).run_dir)


def mounts(home: Path | None) -> list[MountInfo]:
    from mlgitfs.daemon import registry

    """The store's mounts, live and dead (a dead one answers nothing until unmounted)."""
    store = open_store(home)
    out = []
    for m, alive in registry.mount_states(store.run_dir):
        commit = m.commit
        if not m.read_only:  # a commit from the mount moved its base since the record
            commit = _checkout_base(store, m.revspec) or commit
        out.append(MountInfo(m.revspec, commit, m.mountpoint, m.pid, m.read_only, m.fsname, alive))
    return out


def _checkout_base(store: Store, revspec: str) -> str | None:
    """The commit a writable mount of `revspec` (a branch) now serves: its checkout's base."""
    from mlgitfs.meta.checkouts import get_checkout

    try:
        repo, branch = parse_repo_branch(revspec)
        with store.env.read() as txn:
            rec = get_checkout(txn, repo, branch)
    except MlgitError:  # a record this version cannot read: show it as written
        return None
    return None if rec is None else to_hex(rec.base)
