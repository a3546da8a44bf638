"""Branches and tags: create, list and delete, with the guards that keep deletion safe.

`branch_delete` refuses, unless forced: the default branch; a branch with a live writable
mount (its daemon holds the checkout's lock) or with uncommitted changes in its checkout;
a branch whose head no other ref of the repo holds (branch, tag or remote-tracking ref), as
its commits would be reachable from nothing. A deleted branch's checkout (record, inode
table, overlay files) goes with it, so a new branch of the same name starts clean.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.api.results import RefResult
from mlgitfs.errors import MountError, UnknownRef, UnsafeOperation, UsageError
from mlgitfs.meta import checkouts, db
from mlgitfs.model.ids import ObjectId, short_hex, to_hex
from mlgitfs.model.names import check_repo_name
from mlgitfs.model.revspec import DEFAULT_BRANCH, branch_name, parse_revspec
from mlgitfs.repo import refs
from mlgitfs.repo.gate import Gate
from mlgitfs.store.facade import Store
from mlgitfs.vfs import checkout


@dataclass(frozen=True, slots=True)
class DeleteResult:
    name: str
    commit: str
    checkout_dropped: bool  # the branch's checkout state (overlay) was removed with it


def _new_ref(text: str, what: str) -> tuple[str, str]:
    spec = parse_revspec(text)
    if not spec.explicit_ref or spec.back is not None or spec.path:
        raise UsageError(f"name the {what} as REPO@NAME, not {text!r}")
    return spec.repo, spec.ref


def _start(store: Store, repo: str, start: str | None, what: str) -> ObjectId:
    r = refs.resolve(store, parse_revspec(start or f"{repo}@{DEFAULT_BRANCH}", default_repo=repo))
    if r.repo != repo:
        raise UsageError(f"a {what} of {repo} must name a commit of {repo}, not of {r.repo}")
    if r.spec.path:
        raise UsageError(f"a {what} names a commit, not a path inside it ({start})")
    return r.commit_id


def branch_create(home: Path | None, repo_branch: str, start: str | None = None) -> RefResult:
    """Create REPO@BRANCH at START (default REPO@main; `@REF` means a ref of REPO)."""
    store = open_store(home)
    repo, name = _new_ref(repo_branch, "branch")
    oid = _start(store, repo, start, "branch")
    refs.create_ref(store, repo, "heads", name, oid)
    return RefResult(name, to_hex(oid))


def branch_list(home: Path | None, repo: str) -> list[RefResult]:
    store = open_store(home)
    return [
        RefResult(n, to_hex(o)) for n, o in refs.list_refs(store, check_repo_name(repo), "heads")
    ]


def tag_create(home: Path | None, repo_tag: str, target: str | None = None) -> RefResult:
    """Create tag REPO@TAG at TARGET (default REPO@main; `@REF` means a ref of REPO)."""
    store = open_store(home)
    repo, name = _new_ref(repo_tag, "tag")
    oid = _start(store, repo, target, "tag")
    refs.create_ref(store, repo, "tags", name, oid)
    return RefResult(name, to_hex(oid))


def tag_list(home: Path | None, repo: str) -> list[RefResult]:
    store = open_store(home)
    return [
        RefResult(n, to_hex(o)) for n, o in refs.list_refs(store, check_repo_name(repo), "tags")
    ]


def tag_delete(home: Path | None, repo_tag: str) -> RefResult:
    """Delete a tag (tags never move, but they can go); its commits stay while reachable."""
    store = open_store(home)
    repo, name = _new_ref(repo_tag, "tag")
    if name.startswith("tags/"):
        name = name[len("tags/") :]
    return RefResult(name, to_hex(refs.delete_ref(store, repo, "tags", name)))


@contextmanager
def checkout_guard(store: Store, repo: str, branch: str) -> Iterator[tuple[bool, bool]]:
    """For a command that moves or deletes a branch: (has a checkout, it holds uncommitted
    changes), with the checkout's lock held throughout, so no writable mount starts meanwhile.
    A live writable mount of the branch is a MountError."""
    with store.env.read() as txn:
        rec = checkouts.get_checkout(txn, repo, branch)
        dirty = rec is not None and checkouts.has_changes(txn, rec.id)
    lock = None if rec is None else checkout.try_lock(store.home, rec, f"{repo}@{branch}")
    if rec is not None and lock is None:
        raise MountError(
            f"{repo}@{branch} is mounted writable: unmount it first (see 'mlgitfs mounts'); "
            "changing the branch under it would leave the mount unable to commit"
        )
    try:
        yield rec is not None, dirty
    finally:
        if lock is not None:
            lock.release()


def branch_delete(home: Path | None, repo_branch: str, force: bool = False) -> DeleteResult:
    store = open_store(home)
    repo, given = _new_ref(repo_branch, "branch")
    name = branch_name(given)
    ref = "heads/" + name
    with store.env.read() as txn:
        db.get_repo(txn, repo)
        head = db.get_ref(txn, repo, ref)
    if head is None:
        raise UnknownRef(f"{repo} has no branch {name!r}")
    Gate.load(store, name, head, None, via="delete")  # a protected branch, --force or not
    with checkout_guard(store, repo, name) as (has_checkout, dirty):
        if not force:
            _refuse_unsafe(store, repo, name, head, dirty)
        with store.env.write() as txn:
            db.set_ref(txn, repo, ref, None, head, f"delete {ref}")
            dropped = checkouts.drop_checkout(txn, repo, name)
        if dropped is not None:
            shutil.rmtree(checkout.overlay_dir(store.home, dropped.id), ignore_errors=True)
    return DeleteResult(name, to_hex(head), has_checkout)


def _refuse_unsafe(store: Store, repo: str, name: str, head: ObjectId, dirty: bool) -> None:
    if name == DEFAULT_BRANCH:
        raise UnsafeOperation(
            f"{repo}@{name} is the default branch: revspecs without @REF name it; "
            "delete it with --force"
        )
    if dirty:
        raise UnsafeOperation(
            f"{repo}@{name} has uncommitted changes in its checkout (mount it and run "
            "'mlgitfs status'): commit or restore them, or delete with --force to drop them"
        )
    if not refs.held_elsewhere(store, repo, "heads/" + name, head):
        raise UnsafeOperation(
            f"{repo}@{name} ({short_hex(head)}) holds commits that no other branch, tag or "
            "remote holds: push or merge them, tag the head, or delete with --force"
        )
