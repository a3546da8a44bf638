"""Merging into a branch: fast-forward, or a three-way tree merge made a two-parent commit.

Order (the commit protocol of docs/design.md, with a merge's extra step first):
1. read the branch head (ours) and the commit merged (theirs); decide: up to date,
   fast-forward, or a merge against their merge base (repo/graph.py);
2. merge the trees in memory (repo/merge.py, rules from `.mlgitfs/merge.toml`); any
   conflict left stops here with MergeConflict: nothing was written;
3. `write_commit`: chunks a rule wrote (rows) fsynced, then one transaction with the new
   objects, the commit with parents (ours, theirs), and the branch moved from ours by
   compare-and-swap. A fast-forward is that CAS alone.
A crash before 3 commits leaves the branch at its old head (and at most unreferenced
segment bytes); after, the whole merge commit. A branch that moved meanwhile loses the CAS
(ConflictError): nothing changes and the merge can be run again.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field

from mlgitfs.errors import MergeConflict, NotFastForward, UnknownRef, UsageError
from mlgitfs.merge.rows import merge_table
from mlgitfs.meta import chunkquotes, db
from mlgitfs.model.conflicts import Conflict, ConflictKind
from mlgitfs.model.decode import decode
from mlgitfs.model.ids import ChunkId, ObjectId, short_hex
from mlgitfs.model.objects import EntryKind, Tree, TreeEntry, TreeIndex
from mlgitfs.repo import filedata
from mlgitfs.repo.commits import CommitRequest, branch_ref, write_commit
from mlgitfs.repo.gate import Gate, HookOptions, HookResult
from mlgitfs.repo.graph import is_ancestor, merge_base
from mlgitfs.repo.hookrun import Candidate
from mlgitfs.repo.merge import Strategy, TreeMerge, merge_trees
from mlgitfs.repo.mergerules import load_rules, resolver
from mlgitfs.repo.signedby import check_signer
from mlgitfs.repo.trees import NewObjects, file_chunks
from mlgitfs.store.cache import SegmentWriter
from mlgitfs.store.chunker import Chunker
from mlgitfs.store.facade import Store


class FastForward(enum.StrEnum):
    AUTO = "auto"  # fast-forward when possible, else merge
    ONLY = "only"  # fast-forward or refuse
    NEVER = "never"  # always a merge commit


@dataclass
class MergeOutcome:
    status: str  # "up to date", "fast-forward", "merged"; with dry_run: what would happen
    ours: ObjectId
    theirs: ObjectId
    base: ObjectId | None = None
    commit: ObjectId | None = None  # the branch's new head (None: unchanged or dry run)
    tree: ObjectId | None = None
    resolved: list[tuple[str, ConflictKind, Strategy]] = field(default_factory=list)
    renames: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    hooks: list[HookResult] = field(default_factory=list)  # the hooks and checks that ran


MERGE_EVENTS = ("pre-merge", "pre-commit")


class BlobIO:
    """File contents for rules that rewrite files (rows): read from the store, written as
    chunks to `writer` and manifests to `out`."""

    def __init__(self, store: Store, writer: SegmentWriter, out: NewObjects) -> None:
        self.store = store
        self.writer = writer
        self.out = out
        self.chunker = Chunker(store.params)

    def read(self, entry: TreeEntry) -> bytes:
        return b"".join(self.store.read_chunk(c.id) for c in file_chunks(self.store, entry))

    def write(self, data: bytes, like: TreeEntry) -> TreeEntry:
        def known(cid: ChunkId) -> bool:
            return self.writer.pending(cid) or self.store.chunks.has(cid)

        quotes = chunkquotes.for_path(like.name)
        chunks = filedata.encode_buffer(data, list(self.chunker.cut(data)), known, quotes)
        kind, ref, size = filedata.finish_file(chunks, self.writer, self.out)
        return TreeEntry(like.name, kind, like.mode, size, time.time_ns(), ref)


def needed_objects(tree: ObjectId, new: NewObjects) -> NewObjects:
    """Those of a merge's new objects that the result tree reaches (renames build
    intermediate trees that the result does not keep)."""
    by_id = {bytes(oid): data for oid, data in new}
    keep: dict[bytes, bytes] = {}
    todo = [bytes(tree)]
    while todo:
        oid = todo.pop()
        if oid in keep or oid not in by_id:
            continue
        keep[oid] = by_id[oid]
        obj = decode(by_id[oid])
        if isinstance(obj, Tree):
            todo.extend(e.ref for e in obj.entries if e.kind in (EntryKind.DIR, EntryKind.CHUNKED))
        elif isinstance(obj, TreeIndex):
            todo.extend(bytes(p.page) for p in obj.pages)
    return [(ObjectId(k), v) for k, v in keep.items()]


def _head(store: Store, repo: str, branch: str) -> ObjectId:
    with store.env.read() as txn:
        db.get_repo(txn, repo)
        head = db.get_ref(txn, repo, branch_ref(branch))
    if head is None:
        raise UnknownRef(f"{repo} has no branch {branch!r}")
    return head


def _conflict_message(repo: str, branch: str, conflicts: list[Conflict]) -> str:
    first = ", ".join(f"{c.path} ({c.kind.value})" for c in conflicts[:3])
    more = f" and {len(conflicts) - 3} more" if len(conflicts) > 3 else ""
    return (
        f"merge into {repo}@{branch} has {len(conflicts)} conflict(s): {first}{more}; nothing "
        "was changed. Add rules to .mlgitfs/merge.toml, or merge again with --strategy"
    )


def merge_into_branch(
    store: Store,
    repo: str,
    branch: str,
    theirs: ObjectId,
    label: str,
    message: str | None = None,
    ff: FastForward = FastForward.AUTO,
    strategy: Strategy | None = None,
    dry_run: bool = False,
    author: str | None = None,
    hooks: HookOptions | None = None,
) -> MergeOutcome:
    """Merge the commit `theirs` (named `label` in messages) into `repo@branch`."""
    ours = _head(store, repo, branch)
    out = MergeOutcome("up to date", ours, theirs, dry_run=dry_run)
    if is_ancestor(store, theirs, ours):
        return out
    gate = (hooks or HookOptions()).gate(store, branch, ours, "merge")
    check_signer(store, repo, branch, gate.rule, "a merge")
    if is_ancestor(store, ours, theirs) and ff is not FastForward.NEVER:
        out.status, out.base, out.tree = "fast-forward", ours, store.commit(theirs).tree
        if not dry_run:
            # The branch moves to a version that exists: the gate runs before the move.
            cand = Candidate(repo, branch, ours, theirs, out.tree, store.commit(ours).tree)
            try:
                gate.run(cand, MERGE_EVENTS)
            finally:
                gate.flush()
            with store.env.write() as txn:
                db.set_ref(txn, repo, branch_ref(branch), theirs, ours, f"merge {label}: ff")
            out.commit = theirs
            gate.record(repo, branch, cand, gate.via)
            gate.post_commit(cand)
            out.hooks = gate.results
        return out
    if ff is FastForward.ONLY:
        raise NotFastForward(
            f"{label} ({short_hex(theirs)}) is not a descendant of {repo}@{branch} "
            f"({short_hex(ours)}): not a fast-forward; merge without --ff-only"
        )
    base = merge_base(store, ours, theirs)
    if base is None:
        raise UsageError(f"{repo}@{branch} and {label} have no common history: nothing to merge")
    out.base = base
    text = message or f"merge {label} into {branch}"
    return _commit_merge(
        store, repo, branch, out, store.commit(base).tree, store.commit(theirs).tree,
        (ours, theirs), text, strategy, author, gate,
    )  # fmt: skip


def apply_change(
    store: Store,
    repo: str,
    branch: str,
    base_tree: ObjectId,
    theirs_tree: ObjectId,
    source: ObjectId,
    message: str,
    strategy: Strategy | None = None,
    dry_run: bool = False,
    author: str | None = None,
    hooks: HookOptions | None = None,
    via: str = "commit",
) -> MergeOutcome:
    """Apply the change from `base_tree` to `theirs_tree` to `repo@branch` as a one-parent
    commit (cherry-pick: a commit's parent → the commit; revert: the commit → its parent).
    `via` names the operation in a refusal (revert, cherry-pick): a direct commit, judged
    by the branch's rules as an import is."""
    ours = _head(store, repo, branch)
    out = MergeOutcome("up to date", ours, source, dry_run=dry_run)
    gate = (hooks or HookOptions()).gate(store, branch, ours, via)
    check_signer(store, repo, branch, gate.rule, f"a {via}")
    return _commit_merge(
        store, repo, branch, out, base_tree, theirs_tree, (ours,), message, strategy, author,
        gate,
    )  # fmt: skip


def _commit_merge(
    store: Store,
    repo: str,
    branch: str,
    out: MergeOutcome,
    base_tree: ObjectId,
    theirs_tree: ObjectId,
    parents: tuple[ObjectId, ...],
    message: str,
    strategy: Strategy | None,
    author: str | None,
    gate: Gate,
) -> MergeOutcome:
    ours = out.ours
    ours_tree = store.commit(ours).tree
    writer = store.chunks.writer()
    blob_objects: NewObjects = []
    try:
        tm: TreeMerge = merge_trees(
            store,
            base_tree,
            ours_tree,
            theirs_tree,
            resolver(load_rules(store, ours_tree), strategy),
            BlobIO(store, writer, blob_objects),
            merge_table,  # the rows strategy: mlgitfs/merge/rows.py
        )
        if tm.conflicts:
            raise MergeConflict(_conflict_message(repo, branch, tm.conflicts), tm.conflicts)
        out.tree, out.resolved, out.renames = tm.tree, tm.resolved, tm.renames
        if len(parents) == 1 and tm.tree == ours_tree:
            writer.discard()  # nothing to apply: the branch has it already
            return out
        out.status = "merged" if len(parents) > 1 else "committed"
        if out.dry_run:
            writer.discard()
            return out
        req = CommitRequest(repo, branch, message, {}, [], author)
        objects = tm.new_objects + blob_objects
        if tm.intermediate:
            objects = needed_objects(tm.tree, objects)
        # A merge is gated as a merge and as a commit; a cherry-pick or revert as a commit.
        events = MERGE_EVENTS if len(parents) > 1 else ("pre-commit",)
        cand = Candidate(repo, branch, ours, tm.tree, tm.tree, ours_tree)
        validate, step = gate.commit_steps(cand, events)
        try:
            out.commit, _ = write_commit(
                store, req, tm.tree, parents, ours, writer, objects, None, validate, step
            )
        finally:
            gate.flush()
    except BaseException:
        writer.discard()
        raise
    writer.reset()
    cand.commit = out.commit
    gate.record(repo, branch, cand, gate.via)
    gate.post_commit(cand)
    out.hooks = gate.results
    return out
