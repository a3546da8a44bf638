"""Merges into a writable mount: merge --into MOUNTPOINT, update, resolve, merge --abort.

A merge into a mount is a three-way merge of the mount's tree *as it is* (base commit plus
overlay: ours) with a commit (theirs) against their merge base; `update` is the same merge
with theirs the branch's new head, after which the mount's base is that head. Order
(docs/design.md, "Merges into a writable mount"), all with the gate frozen:

1. stash: the mount's tree is hashed and its chunks and objects written (no commit, no
   ref): ours, which the merge reads and an abort restores from;
2. merge (worker thread, repo/merge.py with the rules of ours' `.mlgitfs/merge.toml`);
   the merged tree's objects and the chunks a `rows` rule wrote go in one transaction;
3. apply: every path where the merged tree differs from ours (for update also every path
   where the new head differs from the old base) is put in the overlay as the merged
   tree's entry (restore.restore_into: a base-backed inode, no copy), and the merge state
   (meta/mergestate.py: theirs, the trees, the paths, the conflicts) is written, all in ONE
   transaction; update moves the checkout's base in it too.

A crash before 3 commits leaves the overlay as it was (objects no ref names); after, the
whole merge. Conflicted paths hold ours' side (a table merged row by row holds the merged
rows with ours' value in each conflicting cell). `resolve` takes a side or the file as it
is; `commit` refuses while conflicts remain and then makes a commit with parents (base,
theirs) (update: one parent) that drops the state; `abort` puts every path the merge
changed (and every conflicted path) back from the stash, and the base back, in one
transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

import trio

from mlgitfs.errors import ConflictError, PathNotFound, UnmergedPaths, UsageError
from mlgitfs.merge.rows import merge_table
from mlgitfs.meta import db, mergestate
from mlgitfs.meta.checkouts import put_checkout
from mlgitfs.meta.env import WriteTxn
from mlgitfs.meta.mergestate import ConflictRecord, MergeState
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.objects import TreeEntry
from mlgitfs.repo.commits import CommitRequest, branch_ref
from mlgitfs.repo.graph import is_ancestor, merge_base
from mlgitfs.repo.merge import Strategy, merge_trees
from mlgitfs.repo.mergebranch import BlobIO, needed_objects
from mlgitfs.repo.mergerules import load_rules, resolver
from mlgitfs.repo.trees import DirView, NewObjects, resolve_path
from mlgitfs.store.facade import Store
from mlgitfs.vfs import commit, restore
from mlgitfs.vfs.journal import Batch
from mlgitfs.vfs.overlay import WritableView
from mlgitfs.vfs.restore import RestoreOutcome
from mlgitfs.vfs.types import ROOT_INODE

log = logging.getLogger(__name__)

SIDES = ("base", "ours", "theirs")
_limiter = trio.CapacityLimiter(1)


@dataclass
class Merged:
    status: str  # up to date, merged, conflicts, updated
    state: MergeState | None
    out: RestoreOutcome = field(default_factory=RestoreOutcome)


def state_of(view: WritableView) -> MergeState | None:
    with view.store.env.read() as txn:
        return mergestate.get(txn, view.record.id)


def head_of(view: WritableView) -> ObjectId | None:
    with view.store.env.read() as txn:
        return db.get_ref(txn, view.repo, branch_ref(view.branch))


def changed_paths(store: Store, a: ObjectId, b: ObjectId) -> list[tuple[bytes, ...]]:
    """The highest paths at which trees a and b differ (kind, content or mode); directories
    equal by id, or pages equal by id, are not opened."""
    out: list[tuple[bytes, ...]] = []
    todo: list[tuple[tuple[bytes, ...], ObjectId, ObjectId]] = [((), a, b)]
    while todo:
        path, x, y = todo.pop()
        if x == y:
            continue
        vx, vy = DirView(store, x), DirView(store, y)
        common = frozenset(vx.pages()) & frozenset(vy.pages())
        ex = {e.name: e for t in vx.page_trees(common) for e in t.entries}
        ey = {e.name: e for t in vy.page_trees(common) for e in t.entries}
        for name in sorted(set(ex) | set(ey)):
            p, q = ex.get(name), ey.get(name)
            if p is not None and q is not None and _same(p, q):
                continue
            if p is not None and q is not None and p.is_dir and q.is_dir and p.mode == q.mode:
                todo.append(((*path, name), ObjectId(p.ref), ObjectId(q.ref)))
            else:
                out.append((*path, name))
    return sorted(out)


def _same(p: TreeEntry, q: TreeEntry) -> bool:
    return (p.kind, p.ref, p.mode) == (q.kind, q.ref, q.mode)


def _highest(paths: list[tuple[bytes, ...]]) -> list[tuple[bytes, ...]]:
    """Paths with none of them below another (sorted: a parent comes right before its
    descendants)."""
    out: list[tuple[bytes, ...]] = []
    for p in sorted(set(paths)):
        if out and p[: len(out[-1])] == out[-1]:
            continue
        out.append(p)
    return out


def _at(store: Store, tree: ObjectId, path: bytes) -> TreeEntry | None:
    try:
        return resolve_path(store, tree, path.split(b"/"))
    except PathNotFound:
        return None


def _stash_and_merge(
    view: WritableView,
    plan: commit.Plan,
    base_commit: ObjectId,
    theirs: ObjectId,
    strategy: Strategy | None,
) -> tuple[ObjectId, ObjectId, list[ConflictRecord]]:
    """Worker thread: (ours' tree, the merged tree, conflicts), everything written."""
    store = view.store
    req = CommitRequest(view.repo, view.branch, "stash", {}, [], None)
    ours = commit.build(view, plan, req, False, stash=True).tree
    base_tree = store.commit(base_commit).tree
    theirs_tree = store.commit(theirs).tree
    writer = store.chunks.writer()
    blob_objects: NewObjects = []
    try:
        tm = merge_trees(
            store, base_tree, ours, theirs_tree, resolver(load_rules(store, ours), strategy),
            BlobIO(store, writer, blob_objects), merge_table, keep_partial=True,
        )  # fmt: skip
        objects = tm.new_objects + blob_objects
        if tm.intermediate:
            objects = needed_objects(tm.tree, objects)
        writer.flush()
        with store.env.write() as txn:
            writer.record(txn)
            store.put_objects(txn, objects)
    except BaseException:
        writer.discard()
        raise
    writer.reset()
    conflicts = []
    for c in tm.conflicts:
        path = c.path.encode("utf-8", "surrogateescape")
        b, o, t = (_at(store, tree, path) for tree in (base_tree, ours, theirs_tree))
        conflicts.append(ConflictRecord(path, c.kind.value, c.detail, b, o, t, c.cells))
    return ours, tm.tree, conflicts


def _move_root(view: WritableView, commit_id: ObjectId, batch: Batch) -> None:
    """The checkout's base (record and root directory) to `commit_id`, in `batch`."""
    root = view.nodes[ROOT_INODE]
    tree = view.store.commit(commit_id).tree
    old_entry, old_base, old_subdirs = root.base, view.record.base, root.subdirs

    def back() -> None:
        root.base, view.record.base, root.subdirs = old_entry, old_base, old_subdirs

    batch.undo(back)
    assert root.base is not None
    root.base = replace(root.base, ref=bytes(tree))
    root.subdirs = None
    view.record.base = commit_id
    rec = view.record
    batch.also.append(lambda txn: put_checkout(txn, view.repo, view.branch, rec))


async def merge(
    view: WritableView, theirs: ObjectId | None, label: str, strategy: Strategy | None
) -> Merged:
    """Merge `theirs` into the mount (None: update to the branch's head)."""
    async with view.frozen():
        if state_of(view) is not None:
            raise UsageError(
                f"a merge into {view.repo}@{view.branch} is in progress: resolve its conflicts "
                "and commit, or run `mlgitfs merge --abort MOUNTPOINT`"
            )
        store, base = view.store, view.record.base
        head = head_of(view)
        if head is None:
            raise UsageError(f"{view.repo} has no branch {view.branch!r} any more")
        update = theirs is None
        if theirs is None:
            theirs = head
            if head == base:
                return Merged("up to date", None)
            mbase = base if is_ancestor(store, base, head) else merge_base(store, base, head)
        else:
            if head != base:
                raise ConflictError(
                    f"{view.repo}@{view.branch} moved to {short_hex(head)} since this mount's "
                    f"base {short_hex(base)}: run `mlgitfs update MOUNTPOINT` first"
                )
            if is_ancestor(store, theirs, base):
                return Merged("up to date", None)
            mbase = merge_base(store, base, theirs)
        if mbase is None:
            raise UsageError(f"{view.repo}@{view.branch} and {label} have no common history")
        plan = commit.plan(view)
        view.flush_base()
        ours, merged, conflicts = await trio.to_thread.run_sync(
            _stash_and_merge, view, plan, mbase, theirs, strategy, limiter=_limiter
        )
        paths = changed_paths(store, ours, merged)
        if update:
            paths += changed_paths(store, store.commit(base).tree, store.commit(head).tree)
        paths = _highest(paths)
        state = MergeState(
            mergestate.UPDATE if update else mergestate.MERGE, theirs, mbase, base, ours, merged,
            label, [b"/".join(p) for p in paths], conflicts,
        )  # fmt: skip
        got = Merged("conflicts" if conflicts else "updated" if update else "merged", state)
        # No checkpoint from here: memory and the one transaction change together.
        with view.change() as batch:
            if update:
                _move_root(view, head, batch)
            target = store.commit(view.record.base).tree
            for parts in paths:
                entry = _at(store, merged, b"/".join(parts))
                restore.restore_into(view, list(parts), entry, merged, target, got.out, batch)
            if conflicts or not update:
                cid = view.record.id
                batch.also.append(lambda txn: mergestate.put(txn, cid, state))
        log.info("%s %s into %s@%s: %d paths changed, %d conflicts", got.status,
                 short_hex(theirs), view.repo, view.branch, len(paths), len(conflicts))  # fmt: skip
        return got


async def resolve(view: WritableView, paths: list[bytes], side: str) -> Merged:
    """Mark conflicted paths resolved, taking `side` (base, ours, theirs; "": the file as it
    is in the mount)."""
    if side and side not in SIDES:
        raise UsageError(f"a side is base, ours or theirs, not {side!r}")
    async with view.exclusive, view.mutating():
        state = state_of(view)
        if state is None:
            raise UsageError(f"no merge is in progress in {view.repo}@{view.branch}")
        by_path = {c.path: c for c in state.conflicts}
        for p in paths:
            if p not in by_path:
                shown = p.decode("utf-8", "surrogateescape")
                raise UsageError(f"{shown} is not a conflicted path (`mlgitfs status` lists them)")
        got = Merged("resolved", state)
        base_tree = view.base_tree()
        with view.change() as batch:
            for p in paths:
                if side:
                    entry = getattr(by_path[p], side)
                    parts = p.split(b"/")
                    if entry is not None:
                        entry = replace(entry, name=parts[-1])
                    restore.restore_into(view, parts, entry, state.merged_tree, base_tree,
                                         got.out, batch, exact=True)  # fmt: skip
            left = [c for c in state.conflicts if c.path not in set(paths)]
            new: MergeState | None = replace_conflicts(state, left)
            cid = view.record.id
            if not left and state.kind == mergestate.UPDATE:
                new = None  # an update has no second parent: nothing is left to conclude
                batch.also.append(lambda txn: mergestate.clear(txn, cid))
            else:
                kept = new
                assert kept is not None
                batch.also.append(lambda txn: mergestate.put(txn, cid, kept))
        got.state = new
        return got


def replace_conflicts(state: MergeState, conflicts: list[ConflictRecord]) -> MergeState:
    return MergeState(state.kind, state.theirs, state.merge_base, state.old_base,
                      state.ours_tree, state.merged_tree, state.label, state.paths,
                      conflicts)  # fmt: skip


async def abort(view: WritableView) -> Merged:
    """Put every path the merge changed, and every conflicted path, back as it was before
    the merge (from the stash), and the base back (update); the state goes, in one
    transaction."""
    async with view.exclusive, view.mutating():
        state = state_of(view)
        if state is None:
            raise UsageError(f"no merge is in progress in {view.repo}@{view.branch}")
        got = Merged("aborted", state)
        paths = _highest(
            [tuple(p.split(b"/")) for p in state.paths]
            + [tuple(c.path.split(b"/")) for c in state.conflicts]
        )
        store = view.store
        with view.change() as batch:
            if view.record.base != state.old_base:
                _move_root(view, state.old_base, batch)
            target = store.commit(state.old_base).tree
            for parts in paths:
                entry = _at(store, state.ours_tree, b"/".join(parts))
                restore.restore_into(view, list(parts), entry, state.ours_tree, target,
                                     got.out, batch)  # fmt: skip
            cid = view.record.id
            batch.also.append(lambda txn: mergestate.clear(txn, cid))
        return got


@dataclass(frozen=True, slots=True)
class Concluding:
    """What a commit needs from the merge it concludes."""

    theirs: ObjectId | None  # the second parent (None: an update's one-parent commit)
    paths: frozenset[bytes]  # changed by the merge: theirs' content, not the user's
    checkout_id: int

    def conclude(self, txn: WriteTxn) -> None:
        mergestate.clear(txn, self.checkout_id)

    def merged(self, path: bytes) -> bool:
        return any(path == p or path.startswith(p + b"/") for p in self.paths)


def before_commit(view: WritableView) -> Concluding | None:
    """The merge a commit concludes (None: none); UnmergedPaths while conflicts remain."""
    state = state_of(view)
    if state is None:
        return None
    if state.conflicts:
        names = ", ".join(c.path.decode("utf-8", "surrogateescape") for c in state.conflicts[:5])
        more = f" and {len(state.conflicts) - 5} more" if len(state.conflicts) > 5 else ""
        raise UnmergedPaths(
            f"{len(state.conflicts)} conflicted path(s) of the merge of {state.label} are not "
            f"resolved: {names}{more}. Resolve each (`mlgitfs resolve PATH --ours|--theirs|"
            "--base`, or edit it and `mlgitfs resolve PATH`) or abort (`mlgitfs merge --abort "
            "MOUNTPOINT`); nothing was committed"
        )
    theirs = state.theirs if state.kind == mergestate.MERGE else None
    return Concluding(theirs, frozenset(state.paths), view.record.id)


__all__ = ["Merged", "abort", "before_commit", "merge", "resolve", "state_of"]
