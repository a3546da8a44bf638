"""Reflog and repo removal: seeing every move of a ref, and deleting a whole repo safely.

`repos_rm` refuses while any mount of the repo is live (read-only or writable), holds the
lock of each of its checkouts so no writable mount starts meanwhile, and refuses, unless
forced, a repo whose branches or tags hold commits no remote-tracking ref holds. It drops
refs, reflog, checkouts (their overlays too) and retention rules in one transaction; the
objects stay for gc.
"""

from __future__ import annotations

import datetime as dt
import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.errors import MountError, UnknownRef, UnsafeOperation, UsageError
from mlgitfs.meta import checkouts, db, reflog, retention, trustbreaches
from mlgitfs.model.ids import ObjectId, short_hex, to_hex
from mlgitfs.model.names import check_repo_name
from mlgitfs.model.revspec import parse_revspec
from mlgitfs.repo import refs
from mlgitfs.repo.graph import is_ancestor
from mlgitfs.store.facade import Store
from mlgitfs.vfs import checkout


@dataclass(frozen=True, slots=True)
class ReflogResult:
    ref: str  # as a revspec's REF names it: main, v1, origin/main
    selector: str  # REF@{N}: names this entry's new value (REF@{N+1} its old value)
    time_ns: int
    time: str  # ISO 8601, UTC
    who: str
    old: str  # full hex; "" when the ref did not exist before
    new: str  # full hex; "" when the move deleted the ref
    why: str


@dataclass(frozen=True, slots=True)
class RepoRemoveResult:
    name: str
    refs: int
    checkouts: int


def _iso(time_ns: int) -> str:
    return dt.datetime.fromtimestamp(time_ns // 1_000_000_000, dt.UTC).isoformat()


def reflog_show(home: Path | None, target: str) -> list[ReflogResult]:
    """The reflog of REPO@REF (a branch, tag or remote-tracking ref, deleted ones too), or
    of every ref of REPO: newest first."""
    store = open_store(home)
    spec = parse_revspec(target)
    if spec.back is not None or spec.path:
        raise UsageError(f"{target!r}: expected REPO or REPO@REF")
    with store.env.read() as txn:
        db.get_repo(txn, spec.repo)
        if spec.explicit_ref:
            found = next(
                (moves for ref, _ in refs.candidates(spec.ref)
                 if (moves := list(reflog.entries(txn, spec.repo, ref)))),
                None,
            )  # fmt: skip
            if found is None:
                raise UnknownRef(f"{spec.repo} has no reflog for {spec.ref!r}")
            groups = [found]
        else:
            by_ref: dict[str, list[reflog.ReflogEntry]] = {}
            for e in reflog.entries(txn, spec.repo):
                by_ref.setdefault(e.ref, []).append(e)
            groups = list(by_ref.values())
    out = []
    for entries in groups:
        for n, e in enumerate(reversed(entries)):
            label = refs.ref_label(e.ref)
            out.append(ReflogResult(label, f"{label}@{{{n}}}", e.time_ns, _iso(e.time_ns),
                                    e.who, _hex(e.old), _hex(e.new), e.why))  # fmt: skip
    return sorted(out, key=lambda r: r.time_ns, reverse=True)


def _hex(oid: ObjectId | None) -> str:
    return "" if oid is None else to_hex(oid)


def repos_rm(home: Path | None, name: str, force: bool = False) -> RepoRemoveResult:
    from mlgitfs.daemon import registry

    store = open_store(home)
    name = check_repo_name(name)
    with store.env.read() as txn:
        db.get_repo(txn, name)
        all_refs = list(db.list_refs(txn, name))
        recs = [(b, rec) for repo, b, rec in checkouts.list_checkouts(txn) if repo == name]
    live = [m for m, _ in registry.mount_states(store.run_dir) if name in _repos_of(m.revspec)]
    if live:
        raise MountError(
            f"{name} is mounted at {live[0].mountpoint}: unmount every mount of it first "
            "(see 'mlgitfs mounts')"
        )
    with ExitStack() as locks:
        for _, rec in recs:
            lock = checkout.try_lock(store.home, rec, f"{name} checkout {rec.id}")
            if lock is None:
                raise MountError(f"a branch of {name} is mounted writable: unmount it first")
            locks.callback(lock.release)
        if not force:
            _refuse_unpushed(store, name, all_refs)
        with store.env.write() as txn:
            now = {b for repo, b, _ in checkouts.list_checkouts(txn) if repo == name}
            if now - {b for b, _ in recs}:  # a writable mount began meanwhile
                raise MountError(f"a branch of {name} was just mounted: unmount it first")
            for branch, _ in recs:
                checkouts.drop_checkout(txn, name, branch)
            db.delete_repo(txn, name)
            retention.drop_repo(txn, name)
            trustbreaches.drop_repo(txn, name)  # a repo cloned again under the name is new
        for _, rec in recs:
            shutil.rmtree(checkout.overlay_dir(store.home, rec.id), ignore_errors=True)
    return RepoRemoveResult(name, len(all_refs), len(recs))


def _repos_of(revspec: str) -> set[str]:
    """The repos a mount record's revspec names: a mount of several versions records them
    space-separated (api.mounts), each `REPO`, `REPO@REF` or `REPO@REF:PATH`."""
    return {part.partition("@")[0].partition(":")[0] for part in revspec.split()}


def _refuse_unpushed(store: Store, name: str, all_refs: list[tuple[str, ObjectId]]) -> None:
    tracking = tuple(o for r, o in all_refs if r.startswith(refs.TRACKING_PREFIX))
    for ref, oid in all_refs:
        if ref.startswith(refs.TRACKING_PREFIX):
            continue
        if not any(is_ancestor(store, oid, t) for t in tracking):
            raise UnsafeOperation(
                f"{name}@{refs.ref_label(ref)} ({short_hex(oid)}) holds commits no remote "
                f"holds: push them, or remove {name} with --force"
            )
