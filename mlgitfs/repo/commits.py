"""Making a commit durable: chunks, then objects, commit and ref move in one LMDB transaction.

Order (design §4, conventions "children before parents"):
1. new chunks are appended to segment files and fsynced (SegmentWriter.flush);
2. one write transaction records the chunk locations, puts manifests, trees and the commit,
   and moves the branch with a compare-and-swap on the head the caller started from;
3. anything the caller must change with it (stat cache, checkout base) goes in that same
   transaction through `also`; the commit's generation number (repo/graph.py), its
   commit-graph record (repo/commitindex.py, computed from the objects before the
   transaction) and, when signing is on, its author's signed statement (repo/keyring.py,
   model/statement.py) too;
4. a `validate` callable, if given, reads the staged result (repo/staged.py) last, inside
   the transaction: raising refuses the commit and aborts everything.
With a `gate` step (a hook command, which runs in another process and reads through a
mount, so it cannot see a transaction that has not committed), 2 is cut in two: one
transaction puts the chunk locations, objects and commit (no ref names them yet), then
`gate(commit_id, commit)` runs outside any transaction, then a second one moves the branch
by the same compare-and-swap, with `also` and `validate`. A refusal or a crash between the
two leaves only objects no ref reaches.
A crash before 2 commits leaves only unreferenced segment bytes; a failed CAS aborts the
whole transaction, so no ref changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from mlgitfs.errors import ConflictError, UnknownRef, UsageError
from mlgitfs.meta import commitgraph, db, gcstate, statements
from mlgitfs.meta.env import WriteTxn
from mlgitfs.model import statement
from mlgitfs.model.actor import default_actor as default_author
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.objects import Commit, make_commit, object_id
from mlgitfs.repo import keyring, refs
from mlgitfs.repo.commitindex import PendingObjects, make_record
from mlgitfs.repo.gcguard import check_reuse
from mlgitfs.repo.graph import ensure_generations
from mlgitfs.repo.staged import StagedView, Validator
from mlgitfs.store.cache import SegmentWriter
from mlgitfs.store.facade import Store


@dataclass(frozen=True, slots=True)
class CommitRequest:
    repo: str
    branch: str
    message: str
    meta: dict[str, str]
    inputs: list[tuple[str, ObjectId]]
    author: str | None = None
    time_ns: int | None = None  # None: now (a synthetic or replayed history passes its own)


def branch_ref(branch: str) -> str:
    return "heads/" + branch


def write_commit(
    store: Store,
    req: CommitRequest,
    tree: ObjectId,
    parents: tuple[ObjectId, ...],
    expected_head: ObjectId | None,
    writer: SegmentWriter,
    new_objects: list[tuple[ObjectId, bytes]],
    also: Callable[[WriteTxn], None] | None = None,
    validate: Validator | None = None,
    gate: Callable[[ObjectId, Commit], None] | None = None,
) -> tuple[ObjectId, Commit]:
    """Make a commit of `tree` with `parents` and move the branch from `expected_head` (None:
    the branch must not exist yet) to it, in one transaction. A merge passes two parents;
    an import or an overlay commit passes its head (or nothing for a first commit)."""
    if len(set(parents)) != len(parents):
        raise UsageError("a commit cannot name the same parent twice")
    parent_gens = ensure_generations(store, parents)
    commit = make_commit(
        tree,
        parents,
        req.author or default_author(),
        time.time_ns() if req.time_ns is None else req.time_ns,
        req.message,
        req.meta,
        req.inputs,
    )
    cid, data = object_id(commit)
    with store.env.read() as txn:  # the author's key, when signing is on (repo/keyring.py)
        key = keyring.signer(keyring.Keyring(store.home), txn)
    signature = statement.sign_commit(key, cid, commit) if key is not None else None
    parent_tree = store.commit(parents[0]).tree if parents else None
    record = make_record(PendingObjects(store, dict(new_objects)), commit, parent_tree)
    writer.flush()

    def put(txn: WriteTxn) -> None:
        for repo, input_id in req.inputs:
            if not db.has_object(txn, input_id):
                raise UnknownRef(
                    f"input {repo}@{short_hex(input_id)} is not in the store at {txn.store_home}"
                )
        if expected_head is None:  # a new branch: never beside a tag of the same name
            refs.check_no_other_kind(txn, req.repo, "heads", req.branch)
        writer.record(txn)
        store.put_objects(txn, new_objects)
        check_reuse(txn, writer.gc_epoch, [bytes(tree), *map(bytes, parents)], new_objects)
        db.put_object(txn, cid, data)
        if signature is not None:
            statements.put(txn, signature)
        db.put_generation(txn, cid, 1 + max(parent_gens.values(), default=0))
        commitgraph.put_record(txn, cid, record)

    epoch = 0
    if gate is not None:
        with store.env.write() as txn:
            put(txn)
            epoch = gcstate.epoch(txn)
        writer.reset()  # the segments are the store's now: a refusal must not delete them
        gate(cid, commit)
    with store.env.write() as txn:
        if gate is None:
            put(txn)
        elif gcstate.epoch(txn) != epoch:  # no root held the candidate: a sweep may have
            raise ConflictError(  # taken its objects
                f"gc ran while the hooks of {req.repo}@{req.branch} ran; nothing was "
                "committed: run it again"
            )
        try:
            db.set_ref(
                txn,
                req.repo,
                branch_ref(req.branch),
                cid,
                expected_head,
                "commit: " + req.message[:60],
            )
        except ConflictError as exc:
            raise ConflictError(
                f"branch {req.repo}@{req.branch} moved while this commit was being made "
                f"({exc.message}); nothing was committed"
            ) from exc
        if also is not None:
            also(txn)
        if validate is not None:
            staged = {bytes(oid) for oid, _ in new_objects} | {bytes(cid)}
            validate(StagedView(store, txn, req.repo, req.branch, cid, commit, frozenset(staged)))
    return cid, commit
