"""Builds the view a mount daemon serves, inside the daemon process (after its fork).

The daemon calls `snapshot_view(arg, context)`, `versions_view(arg, context)`,
`mixed_view(arg, context)` or `checkout_view(arg, context)` with the JSON argument `api.mount`
passed and its collaborators (vfs/types.ViewContext): the store is opened here, in the
process that serves it, never before a fork (LMDB).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlgitfs.errors import FsError, MountError, UnknownRef
from mlgitfs.meta import checkouts, db, mergestate
from mlgitfs.meta.env import Transactions
from mlgitfs.model.ids import ObjectId, from_hex, short_hex
from mlgitfs.model.names import split_path
from mlgitfs.repo.commits import branch_ref
from mlgitfs.store.facade import Store
from mlgitfs.vfs import checkout
from mlgitfs.vfs.checkout_view import CheckoutView
from mlgitfs.vfs.mixed import MixedView
from mlgitfs.vfs.mountpolicy import mount_policies
from mlgitfs.vfs.multi import Source, VersionsView, sub_tree
from mlgitfs.vfs.overlay_files import OverlayFiles
from mlgitfs.vfs.policy import Policy, unlocked_in
from mlgitfs.vfs.snapshot import SnapshotView
from mlgitfs.vfs.types import ViewContext

log = logging.getLogger(__name__)


def _path(arg: dict[str, Any]) -> tuple[bytes, ...]:
    return tuple(split_path(str(arg.get("path") or "")))


def _sub_tree(store: Store, commit: ObjectId, path: tuple[bytes, ...]) -> tuple[ObjectId, int]:
    try:
        return sub_tree(store, commit, path)
    except FsError as exc:
        raise MountError(f"cannot mount {exc.message}: mount a directory") from exc


def snapshot_view(arg: dict[str, Any], context: ViewContext) -> SnapshotView:
    """One version, or one directory of it (`path`)."""
    store = Store.open(Path(arg["home"]))
    commit = ObjectId(from_hex(arg["commit"]))
    tree, time_ns = _sub_tree(store, commit, _path(arg))
    return SnapshotView(
        store,
        tree,
        time_ns=time_ns,
        cache_bytes=int(arg.get("cache_bytes", 256 << 20)),
        prefill=context.prefill,
        inodes=context.inodes.take(),
        commit=commit,
        repo=str(arg.get("repo", "")),
        prefix=str(arg.get("path") or "").strip("/"),
    )


def _sources(store: Store, arg: dict[str, Any]) -> list[Source]:
    sources = []
    for s in arg["sources"]:
        commit = None if s.get("commit") is None else ObjectId(from_hex(s["commit"]))
        src = Source(str(s["name"]).encode(), str(s["repo"]), commit, _path(s))
        if commit is not None:
            _sub_tree(store, commit, src.path)  # a file is refused now, not at first lookup
        sources.append(src)
    return sources


def versions_view(arg: dict[str, Any], context: ViewContext) -> VersionsView:
    """Several versions: `sources` lists each name's repo and commit (or null: its refs)."""
    store = Store.open(Path(arg["home"]))
    cache_bytes = int(arg.get("cache_bytes", 256 << 20))
    return VersionsView(
        store, _sources(store, arg), cache_bytes=cache_bytes, prefill=context.prefill,
        inodes=context.inodes,
    )  # fmt: skip


def mixed_view(arg: dict[str, Any], context: ViewContext) -> MixedView:
    """Several versions with writable branches among them: `write` lists each branch
    (`repo`, `branch`) whose `@BRANCH/` directory is its checkout (vfs/mixed.py)."""
    store = Store.open(Path(arg["home"]))
    cache_bytes = int(arg.get("cache_bytes", 256 << 20))
    sources = _sources(store, arg)
    own = context.inodes.take()  # the mount's root and own directories: the first range
    checkouts: list[CheckoutView] = []
    try:
        for w in arg["write"]:
            checkouts.append(open_checkout_view(
                store, str(w["repo"]), str(w["branch"]), cache_bytes, context=context
            ))  # fmt: skip
        return MixedView(store, sources, checkouts, own=own, inodes=context.inodes,
                         cache_bytes=cache_bytes)  # fmt: skip
    except BaseException:
        for c in checkouts:
            c.close()
        raise


def open_checkout_view(
    store: Store,
    repo: str,
    branch: str,
    cache_bytes: int,
    *,
    files: Callable[[Path], OverlayFiles] = OverlayFiles,
    meta: Transactions | None = None,
    context: ViewContext | None = None,
    policies: tuple[Policy, ...] = (),
) -> CheckoutView:
    """The writable view of repo@branch: its checkout (made at the first mount), locked.

    `files` makes the overlay's file operations from its directory and `meta` is where its
    records are written: the seams fault tests replace (tests/faultdoubles.py). `context`:
    the daemon's (its inode numbers; the view enters its checkouts); None: one of its own.
    `policies`: asked after the mount's own rules, before its hooks (vfs/mountpolicy.py)."""
    context = ViewContext() if context is None else context
    if f"{repo}@{branch}" in context.checkouts:
        raise MountError(f"{repo}@{branch} is served twice by one daemon")
    with store.env.write() as txn:
        rec_repo = db.get_repo(txn, repo)
        head = db.get_ref(txn, repo, branch_ref(branch))
        if head is None:
            raise UnknownRef(f"{repo} has no branch {branch!r}")
        rec = checkouts.get_checkout(txn, repo, branch)
        if rec is None:
            rec = checkouts.new_checkout(txn, repo, branch, head)
    overlay = checkout.overlay_dir(store.home, rec.id)
    lock = checkout.CheckoutLock(overlay / "lock", f"{repo}@{branch}")
    try:
        with store.env.write() as txn:
            rec = checkouts.get_checkout(txn, repo, branch) or rec
            head = db.get_ref(txn, repo, branch_ref(branch)) or head
            merging = mergestate.get(txn, rec.id) is not None
            if rec.base != head and not checkouts.has_changes(txn, rec.id) and not merging:
                # Nothing uncommitted: follow the branch (an import or another mount moved it).
                log.info("checkout of %s@%s follows the branch to %s", repo, branch,
                         short_hex(head))  # fmt: skip
                rec.base = head
                checkouts.InodeTable(rec.id).clear(txn, b"bup")
                checkouts.put_checkout(txn, repo, branch, rec)
            elif rec.base != head:
                log.warning("%s@%s moved to %s since this checkout's base %s: commits will be "
                            "refused until `mlgitfs update`", repo, branch,
                            short_hex(head), short_hex(rec.base))  # fmt: skip
        commit = store.commit(rec.base)
        # The policies are made here and handed in: the view asks them, the mutability
        # policy reads the unlocked paths the view keeps (one set, filled when it loads).
        unlocked: set[bytes] = set()
        policy = mount_policies(store, repo, os.getuid(), rec_repo.mutability,
                                unlocked_in(unlocked), policies)  # fmt: skip
        view = CheckoutView(
            store, repo, branch, rec, overlay, mutability=rec_repo.mutability,
            base_tree=commit.tree, base_time_ns=commit.time_ns, cache_bytes=cache_bytes, lock=lock,
            files=files(overlay / "files"), meta=meta, inodes=context.inodes.take(),
            policy=policy, unlocked=unlocked,
        )  # fmt: skip
    except BaseException:
        lock.release()
        raise
    context.checkouts[view.ref] = view
    return view


def checkout_view(arg: dict[str, Any], context: ViewContext) -> CheckoutView:
    store = Store.open(Path(arg["home"]))
    return open_checkout_view(
        store, str(arg["repo"]), str(arg["branch"]), int(arg.get("cache_bytes", 256 << 20)),
        context=context,
    )  # fmt: skip
