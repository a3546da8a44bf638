"""Mounting versions: mount, unmount, mounts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.api.doctor import warn_if_stock
from mlgitfs.errors import MlgitError, UsageError
from mlgitfs.model.ids import HEX_LEN, ObjectId, is_hex_prefix, to_hex
from mlgitfs.model.revspec import Revspec, parse_repo_branch, parse_revspec
from mlgitfs.repo import refs
from mlgitfs.repo.expiry import expired_error
from mlgitfs.store.facade import Store, parse_size

# --- mounts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MountInfo:
    revspec: str  # several versions: the revspecs (or repos) mounted, space-separated
    commit: str  # "" when the mount shows several versions
    mountpoint: str
    pid: int
    read_only: bool
    fsname: str
    alive: bool = True  # False: the daemon died and the kernel still holds the mount
    expired: str = ""  # the version expired (retention; gc let its contents go): why


def mount(
    home: Path | None,
    revspec: str | Sequence[str],
    mountpoint: Path,
    *,
    foreground: bool = False,
    allow_other: bool = False,
    cache_size: str | None = None,
    read_only: bool = False,
    recordable: bool = False,
) -> MountInfo | None:
    """Mount a version, or several (docs/mount.md, "Several versions in one mount"); returns
    once the mount answers (None after a foreground run ends).

    `REPO@REF` mounts that version (a branch writable unless `read_only`); `REPO@REF:PATH`
    one directory of it, read-only; `REPO` alone its branches, tags and commits as `@REF/`
    directories; several revspecs mount side by side, each under its repo's name.
    `recordable`: a read-only mount keeps the kernel's opens coming, so that a read set can
    be recorded in it at any time (daemon/recorder.py), at the cost of an open and a release
    per file opened."""
    from mlgitfs.daemon import mount as mount_mod

    warn_if_stock()
    store = open_store(home)
    specs = [revspec] if isinstance(revspec, str) else list(revspec)
    if not specs:
        raise UsageError("name a version to mount (REPO@REF), or a repo (REPO)")
    cache_bytes = parse_size(cache_size) if cache_size else 256 << 20
    home_str = str(store.home.resolve())
    parsed = [parse_revspec(s) for s in specs]
    if len(parsed) > 1 or _repo_only(parsed[0]):
        return _mount_versions(
            store, parsed, mountpoint, cache_bytes, foreground, allow_other, recordable
        )
    r = refs.resolve(store, parsed[0])
    if r.entry is not None and not r.entry.is_dir:
        raise UsageError(f"{r.spec} is a file: mount a directory (or the whole version)")
    # A branch mounts writable (a checkout with its overlay) unless --read-only; a
    # directory of a version always read-only (an overlay covers a whole version).
    writable = r.branch is not None and not read_only and not r.spec.path
    # A writable mount is recorded under its branch's plain name (not `heads/NAME`).
    shown = f"{r.repo}@{r.branch}" if writable else str(r.spec)
    factory, view_arg = (
        "mlgitfs.vfs.factory:snapshot_view",
        {
            "home": home_str,
            "commit": to_hex(r.commit_id),
            "path": r.spec.path_str,
            "cache_bytes": cache_bytes,
            "repo": r.repo,
        },
    )
    if writable:
        factory = "mlgitfs.vfs.factory:checkout_view"
        view_arg = {"home": home_str, "repo": r.repo, "branch": r.branch,
                    "cache_bytes": cache_bytes}  # fmt: skip
    result = mount_mod.mount(
        factory,
        mountpoint,
        _fsname(shown),
        view_arg=view_arg,
        read_only=not writable,
        foreground=foreground,
        allow_other=allow_other,
        run_dir=store.run_dir,
        revspec=shown,
        commit=to_hex(r.commit_id),
        recordable=recordable,
    )
    if result is None:
        return None
    return MountInfo(
        shown, to_hex(r.commit_id), result.mountpoint, result.pid, not writable, result.fsname,
        expired=_expired(store, r.repo, to_hex(r.commit_id)),
    )  # fmt: skip


def _repo_only(spec: Revspec) -> bool:
    """`REPO` alone (no @REF, ~N or :PATH): the repo's versions as `@REF/` directories."""
    return not spec.explicit_ref and spec.back is None and not spec.path


def _fsname(shown: str) -> str:
    """The name /proc/mounts shows: no comma, backslash or blank (a sub-path may hold them)."""
    return "mlgitfs:" + "".join("_" if c in ", \\\t\n" else c for c in shown)


def _mount_versions(
    store: Store,
    specs: list[Revspec],
    mountpoint: Path,
    cache_bytes: int,
    foreground: bool,
    allow_other: bool,
    recordable: bool = False,
) -> MountInfo | None:
    """A read-only mount of several versions: one repo's `@REF/` directories, or each
    revspec under its repo's name. Every named version is resolved now (a bad one changes
    nothing); `@REF/` directories resolve as they are looked up."""
    from mlgitfs.daemon import mount as mount_mod

    single = len(specs) == 1
    seen: set[str] = set()
    sources: list[dict[str, str | None]] = []
    for spec in specs:
        if spec.repo in seen:
            raise UsageError(
                f"{spec.repo} is named twice: side by side, each repo shows once, under its name "
                f"(mount {spec.repo} alone to see all its versions as @REF/ directories)"
            )
        seen.add(spec.repo)
        source: dict[str, str | None] = {"name": "" if single else spec.repo, "repo": spec.repo,
                                         "commit": None, "path": ""}  # fmt: skip
        if not _repo_only(spec):
            r = refs.resolve(store, spec)
            if r.entry is not None and not r.entry.is_dir:
                raise UsageError(f"{r.spec} is a file: mount a directory (or the whole version)")
            source |= {"commit": to_hex(r.commit_id), "path": spec.path_str}
        else:
            refs.list_refs(store, spec.repo, "heads")  # an unknown repo is refused now
        sources.append(source)
    shown = " ".join(s.repo if _repo_only(s) else str(s) for s in specs)
    result = mount_mod.mount(
        "mlgitfs.vfs.factory:versions_view",
        mountpoint,
        _fsname("+".join(shown.split())),
        view_arg={
            "home": str(store.home.resolve()),
            "sources": sources,
            "cache_bytes": cache_bytes,
        },  # fmt: skip
        read_only=True,
        foreground=foreground,
        allow_other=allow_other,
        recordable=recordable,
        run_dir=store.run_dir,
        revspec=shown,
        commit="",
    )
    if result is None:
        return None
    return MountInfo(shown, "", result.mountpoint, result.pid, True, result.fsname)


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
        expired = _expired(store, m.revspec.partition("@")[0], commit)
        out.append(MountInfo(m.revspec, commit, m.mountpoint, m.pid, m.read_only, m.fsname, alive,
                             expired))  # fmt: skip
    return out


def _expired(store: Store, repo: str, commit: str) -> str:
    """Why the version `commit` (hex) shows no file contents, if it expired; else ""."""
    if not is_hex_prefix(commit) or len(commit) != HEX_LEN:
        return ""  # several versions ("-"), or a record this version cannot read
    err = expired_error(store, repo, ObjectId(bytes.fromhex(commit)))
    return "" if err is None else err.message


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
