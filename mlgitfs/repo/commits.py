"""Making a commit durable: chunks, then objects, commit and ref move in one LMDB transaction.

Order (design §4, conventions "children before parents"):
1. new chunks are appended to segment files and fsynced (SegmentWriter.flush);
2. one write transaction records the chunk locations, puts manifests, trees and the commit,
   and moves the branch with a compare-and-swap on the head the caller started from;
3. anything the caller must change with it (stat cache, checkout base) goes in that same
   transaction through `also`.
A crash before 2 commits leaves only unreferenced segment bytes; a failed CAS aborts the
whole transaction, so no object, location or ref changes.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from mlgitfs.errors import ConflictError, UnknownRef
from mlgitfs.meta import db
from mlgitfs.meta.env import WriteTxn
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.objects import Commit, make_commit, object_id
from mlgitfs.repo.store import Store
from mlgitfs.store.cache import SegmentWriter


def default_author() -> str:
    env = os.environ.get("MLGITFS_AUTHOR")
    if env:
        return env
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True, slots=True)
class CommitRequest:
    repo: str
    branch: str
    message: str
    meta: dict[str, str]
    inputs: list[tuple[str, ObjectId]]
    author: str | None = None


def branch_ref(branch: str) -> str:
    return "heads/" + branch


def write_commit(
    store: Store,
    req: CommitRequest,
    tree: ObjectId,
    expected_head: ObjectId | None,
    writer: SegmentWriter,
    new_objects: list[tuple[ObjectId, bytes]],
    also: Callable[[WriteTxn], None] | None = None,
) -> tuple[ObjectId, Commit]:
    parents = (expected_head,) if expected_head is not None else ()
    commit = make_commit(
        tree,
        parents,
        req.author or default_author(),
        time.time_ns(),
        req.message,
        req.meta,
        req.inputs,
    )
    cid, data = object_id(commit)
    writer.flush()
    with store.env.write() as txn:
        for repo, input_id in req.inputs:
            if not txn.has("objects", bytes(input_id)):
                raise UnknownRef(f"input {repo}@{short_hex(input_id)} is not in this store")
        writer.record(txn)
        store.put_objects(txn, new_objects)
        db.put_object(txn, cid, data)
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
    return cid, commit
