"""Remotes: remote add/list/remove, push, fetch, pull, clone, prefetch."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from mlgitfs.api._common import Progress, close_store, open_store, repo_result
from mlgitfs.api.erasing import purge_learnt
from mlgitfs.api.results import RepoResult
from mlgitfs.daemon.hookviews import hook_options
from mlgitfs.errors import UsageError
from mlgitfs.meta.remotes import RemoteRecord
from mlgitfs.model.ids import to_hex
from mlgitfs.model.names import check_repo_name
from mlgitfs.model.revspec import branch_name, parse_repo_branch, parse_revspec
from mlgitfs.repo import prefetch as prefetch_mod
from mlgitfs.repo import push as push_mod
from mlgitfs.repo import remotes as remotes_mod
from mlgitfs.repo import sync as sync_mod
from mlgitfs.repo import trust
from mlgitfs.repo.merge import Strategy
from mlgitfs.repo.remoterefs import delete_remote_ref
from mlgitfs.store import packs as packs_mod
from mlgitfs.store.facade import default_home

# --- remotes ----------------------------------------------------------------------------------
# Remotes, push, fetch, pull, clone, prefetch (mlgitfs/repo/: remotes, push, sync, prefetch).


@dataclass(frozen=True, slots=True)
class RemoteResult:
    name: str
    url: str
    endpoint_url: str | None
    conditional_writes: bool | None  # False: ignores preconditions, push refused; None: unproven


@dataclass(frozen=True, slots=True)
class RefUpdateResult:
    ref: str  # "heads/main" or "tags/v1"
    old: str | None
    new: str | None
    status: str  # created, updated, up to date, rejected, deleted
    message: str


@dataclass(frozen=True, slots=True)
class SyncResult:
    verb: str  # push, fetch, pull
    remote: str
    repo: str
    updates: tuple[RefUpdateResult, ...]
    packs: int  # chunk packs uploaded
    meta_packs: int
    chunks: int
    objects: int
    bytes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class CloneResult:
    repo: RepoResult
    remote: str
    url: str
    fetch: SyncResult


@dataclass(frozen=True, slots=True)
class PrefetchResult:
    revspec: str
    chunks: int
    objects: int
    bytes: int
    requests: int
    seconds: float


def _remote_result(r: RemoteRecord) -> RemoteResult:
    return RemoteResult(r.name, r.url, r.endpoint_url, r.conditional_writes)


def _sync_result(verb: str, out: sync_mod.SyncOutcome) -> SyncResult:
    s = out.stats
    updates = tuple(
        RefUpdateResult(
            u.ref,
            to_hex(u.old) if u.old else None,
            to_hex(u.new) if u.new else None,
            u.status,
            u.message,
        )
        for u in out.updates
    )
    return SyncResult(
        verb,
        out.remote,
        out.repo,
        updates,
        s.packs,
        s.meta_packs,
        s.chunks,
        s.objects,
        s.bytes,
        s.seconds,
    )


def remote_add(
    home: Path | None, name: str, url: str, endpoint_url: str | None = None
) -> RemoteResult:
    return _remote_result(remotes_mod.add(open_store(home), name, url, endpoint_url))


def remote_list(home: Path | None) -> list[RemoteResult]:
    return [_remote_result(r) for r in remotes_mod.list_all(open_store(home))]


def remote_remove(home: Path | None, name: str) -> RemoteResult:
    return _remote_result(remotes_mod.remove(open_store(home), name))


def push(
    home: Path | None,
    target: str,
    remote: str | None = None,
    all_refs: bool = False,
    progress: Progress | None = None,
    no_verify: bool = False,
) -> SyncResult:
    """Push REPO[@BRANCH] (or every branch and tag with `all_refs`) to a remote, gated by each
    branch's pre-push hooks (`no_verify`: skipped, where the branch allows).

    MLGITFS_PACK_TARGET (bytes) overrides the pack size, for tests and tuning."""
    spec = parse_revspec(target)
    if spec.back is not None or spec.path:
        raise UsageError(f"{target!r}: expected REPO[@BRANCH]")
    if all_refs and spec.explicit_ref:
        raise UsageError("--all pushes every branch and tag: name just the repo")
    branch = branch_name(spec.ref)
    pack_target = int(os.environ.get("MLGITFS_PACK_TARGET", packs_mod.PACK_TARGET))
    store = open_store(home)
    out = push_mod.push(
        store, spec.repo, branch, remote, all_refs, progress, pack_target,
        hooks=hook_options(store, no_verify),
    )  # fmt: skip
    return _sync_result("push", out)


def push_delete(
    home: Path | None, target: str, remote: str | None = None, force: bool = False
) -> SyncResult:
    """Delete branch or tag REPO@NAME on a remote (repo/remoterefs.py has the guards)."""
    spec = parse_revspec(target)
    if not spec.explicit_ref or spec.back is not None or spec.path:
        raise UsageError(f"{target!r}: name the remote ref to delete as REPO@BRANCH or REPO@TAG")
    out = delete_remote_ref(open_store(home), spec.repo, spec.ref, remote, force)
    return _sync_result("push", out)


def fetch(
    home: Path | None, repo: str, remote: str | None = None, progress: Progress | None = None
) -> SyncResult:
    """Fetch REPO's refs and history; `progress` counts objects (commits, root trees)."""
    store = open_store(home)
    out = sync_mod.fetch(store, check_repo_name(repo), remote, progress)
    purge_learnt(store, out)
    return _sync_result("fetch", out)


def pull(
    home: Path | None,
    target: str,
    remote: str | None = None,
    ff_only: bool = False,
    strategy: str | None = None,
    progress: Progress | None = None,
) -> SyncResult:
    """Fetch, then fast-forward REPO@BRANCH, or merge the remote's branch into it when the
    two diverged (unless `ff_only`): MergeConflict when that merge has conflicts."""
    repo, branch = parse_repo_branch(target)
    if strategy is not None and strategy not in ("ours", "theirs"):
        raise UsageError(f"--strategy is ours or theirs, not {strategy!r}")
    chosen = Strategy(strategy) if strategy is not None else None
    store = open_store(home)
    out = sync_mod.pull(store, repo, branch, remote, progress, ff_only, chosen, hook_options(store))
    purge_learnt(store, out)
    return _sync_result("pull", out)


def clone(
    home: Path | None,
    url: str,
    repo: str,
    local_name: str | None = None,
    endpoint_url: str | None = None,
    remote: str = "origin",
    progress: Progress | None = None,
    trust_key: str | None = None,
) -> CloneResult:
    """Clone REPO from URL: its refs and history (`progress` counts those objects: commits
    and root trees, and their bytes); file contents come on demand. `trust_key` (a key id
    in hex, or a key ring name) pins the remote's access policy to that admin's key."""
    where = (home or default_home()).absolute()
    fresh = not where.exists()  # a clone that fails leaves no store it made behind
    store = open_store(where, create=True)
    try:
        pin = trust.pin_key(store, trust_key) if trust_key is not None else None
        rec, out = sync_mod.clone(store, url, repo, local_name, endpoint_url, remote, progress, pin)
    except BaseException:
        if fresh:
            close_store(where)
            shutil.rmtree(where, ignore_errors=True)
        raise
    return CloneResult(repo_result(store, rec), out.remote, url, _sync_result("fetch", out))


def prefetch(home: Path | None, revspec: str, progress: Progress | None = None) -> PrefetchResult:
    s = prefetch_mod.prefetch(open_store(home), revspec, progress)
    return PrefetchResult(revspec, s.chunks, s.objects, s.bytes, s.requests, s.seconds)
