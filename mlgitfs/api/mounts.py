"""Mounting versions: mount, unmount, mounts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.api.doctor import warn_if_stock
from mlgitfs.errors import MlgitError, UsageError
from mlgitfs.meta.checkouts import dirty_checkouts
from mlgitfs.model.ids import HEX_LEN, ObjectId, is_hex_prefix, to_hex
from mlgitfs.model.revspec import Revspec, parse_repo_branch, parse_revspec
from mlgitfs.repo import mounttrust, refs
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
    # A mount of several versions: each writable branch's directory in it (`@dev`,
    # `labels/@dev`) → REPO@BRANCH; read_only is then False, and every other part is.
    checkouts: dict[str, str] = field(default_factory=dict)


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
    write: Sequence[str] = (),
) -> MountInfo | None:
    """Mount a version, or several (docs/mount.md, "Several versions in one mount"); returns
    once the mount answers (None after a foreground run ends).

    `REPO@REF` mounts that version (a branch writable unless `read_only`); `REPO@REF:PATH`
    one directory of it, read-only; `REPO` alone its branches, tags and commits as `@REF/`
    directories; several revspecs mount side by side, each under its repo's name.
    `recordable`: a read-only mount keeps the kernel's opens coming, so that a read set can
    be recorded in it at any time (daemon/recorder.py), at the cost of an open and a release
    per file opened. `write`: branches shown writable in a mount of several versions (a
    checkout as a mount of the branch alone has, at `@BRANCH/`), each `BRANCH` of a mount of
    one repo, or `REPO@BRANCH`."""
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
        if write and read_only:
            raise UsageError("--write and --read-only contradict each other: choose one")
        return _mount_versions(
            store, parsed, mountpoint, cache_bytes, foreground, allow_other, recordable,
            _writable_branches(store, parsed, write),
        )  # fmt: skip
    if write:
        raise UsageError(
            f"--write is for a mount of several versions (REPO alone, or several revspecs), "
            f"not {parsed[0]}: a branch REPO@BRANCH mounts writable by itself"
        )
    r = refs.resolve(store, parsed[0])
    if r.entry is not None and not r.entry.is_dir:
        raise UsageError(f"{r.spec} is a file: mount a directory (or the whole version)")
    # A branch mounts writable (a checkout with its overlay) unless --read-only; a
    # directory of a version always read-only (an overlay covers a whole version).
    writable = r.branch is not None and not read_only and not r.spec.path
    # A writable mount is recorded under its branch's plain name (not `heads/NAME`).
    shown = f"{r.repo}@{r.branch}" if writable else str(r.spec)
    served = [r.commit_id]
    if writable and r.branch is not None:  # uncommitted changes keep serving their base
        with store.env.read() as txn:
            served += [c.base for c in dirty_checkouts(txn, r.repo, r.branch)]
    mounttrust.check_served(store, r.repo, served, shown)  # before anything is mounted
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


def _writable_branches(
    store: Store, specs: list[Revspec], write: Sequence[str]
) -> dict[str, tuple[str, str]]:
    """Each `--write` branch's directory in a mount of several versions → (repo, branch);
    a branch the mount would not show as `@BRANCH/`, or that is no branch, is refused."""
    single = len(specs) == 1
    whole = {s.repo for s in specs if _repo_only(s)}
    out: dict[str, tuple[str, str]] = {}
    for w in write:
        if "@" in w.lstrip("@"):
            repo, name = parse_repo_branch(w)
        elif single:
            repo, name = specs[0].repo, w.lstrip("@")
        else:
            raise UsageError(f"--write {w}: name its repo too (REPO@BRANCH): the mount shows "
                             "several")  # fmt: skip
        if repo not in whole:
            raise UsageError(
                f"--write {repo}@{name}: the mount shows no @BRANCH/ directories of {repo} "
                f"(name {repo} alone, not one version of it, to write one of its branches)"
            )
        spec = parse_revspec(f"{repo}@{name}")
        r = refs.resolve(store, spec)
        if r.branch is None or spec.path or spec.back is not None:
            raise UsageError(f"--write {w}: {name} is not a branch of {repo} (a tag or a "
                             "commit never changes)")  # fmt: skip
        where = f"@{r.branch}" if single else f"{repo}/@{r.branch}"
        if where in out:
            raise UsageError(f"--write {repo}@{r.branch} is named twice")
        with store.env.read() as txn:  # uncommitted changes keep serving their base
            bases = [c.base for c in dirty_checkouts(txn, repo, r.branch)]
        mounttrust.check_served(store, repo, [r.commit_id, *bases], f"{repo}@{r.branch}")
        out[where] = (repo, r.branch)
    return out


def _mount_versions(
    store: Store,
    specs: list[Revspec],
    mountpoint: Path,
    cache_bytes: int,
    foreground: bool,
    allow_other: bool,
    recordable: bool = False,
    writes: dict[str, tuple[str, str]] | None = None,
) -> MountInfo | None:
    """A mount of several versions: one repo's `@REF/` directories, or each revspec under
    its repo's name, read-only but for the branches in `writes` (their directory in the
    mount → repo and branch), each its checkout (vfs/mixed.py). Every named version is
    resolved now (a bad one changes nothing); `@REF/` directories resolve as they are
    looked up."""
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
            mounttrust.check_served(store, r.repo, [r.commit_id], str(r.spec))
            source |= {"commit": to_hex(r.commit_id), "path": spec.path_str}
        else:
            refs.list_refs(store, spec.repo, "heads")  # an unknown repo is refused now
        sources.append(source)
    shown = " ".join(s.repo if _repo_only(s) else str(s) for s in specs)
    writes = writes or {}
    view_arg: dict[str, object] = {
        "home": str(store.home.resolve()),
        "sources": sources,
        "cache_bytes": cache_bytes,
    }
    if writes:
        view_arg["write"] = [{"repo": r, "branch": b} for r, b in writes.values()]
    checkouts = {where: f"{r}@{b}" for where, (r, b) in writes.items()}
    result = mount_mod.mount(
        "mlgitfs.vfs.factory:mixed_view" if writes else "mlgitfs.vfs.factory:versions_view",
        mountpoint,
        _fsname("+".join(shown.split())),
        view_arg=view_arg,
        read_only=not writes,
        foreground=foreground,
        allow_other=allow_other,
        recordable=recordable,
        run_dir=store.run_dir,
        revspec=shown,
        commit="",
        checkouts=checkouts,
    )
    if result is None:
        return None
    return MountInfo(shown, "", result.mountpoint, result.pid, not writes, result.fsname,
                     checkouts=checkouts)  # fmt: skip


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
        if not m.read_only and not m.checkouts:  # a commit moved its base since the record
            commit = _checkout_base(store, m.revspec) or commit
        expired = _expired(store, m.revspec.partition("@")[0], commit)
        out.append(MountInfo(m.revspec, commit, m.mountpoint, m.pid, m.read_only, m.fsname, alive,
                             expired, dict(m.checkouts)))  # fmt: skip
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
