"""Committing path → content changes onto a branch from its head: no directory, no mount.

The one entry point for writes that name paths (fsspec's `open(..., "wb")`, `rm`, `mv`, a
transaction). New contents are chunked into the store as an import's files are
(repo/filedata.py), the tree is edited along the changed paths only (`edit_paths`: untouched
subtrees and pages keep their ids) and `write_commit` moves the branch by compare-and-swap
from the head the caller read, gated by the branch's rules and pre-commit hooks as an import
is. Refused before any ref moves, leaving nothing behind (new segment bytes are discarded):

- a branch that moved since `head` was read: ConflictError;
- a committed file given other content where the caller's `guard` (the repo's mutability)
  says no: PolicyError listing every such path;
- a branch whose checkout holds uncommitted changes (a writable mount's work): UnsafeOperation,
  checked again inside the commit's transaction;
- a path below a file, a file written over a directory, a missing path removed: UsageError,
  PathNotFound.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from mlgitfs.errors import ConflictError, PathNotFound, PolicyError, UnsafeOperation, UsageError
from mlgitfs.meta import checkouts, chunkquotes, db
from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.model.ids import ChunkId, ObjectId, short_hex
from mlgitfs.model.names import split_path
from mlgitfs.model.objects import TreeEntry, clamp_time_ns
from mlgitfs.repo import filedata, refs
from mlgitfs.repo.commits import CommitRequest, branch_ref, write_commit
from mlgitfs.repo.filedata import EncodedChunk
from mlgitfs.repo.gate import Gate, HookOptions, HookResult
from mlgitfs.repo.hookrun import Candidate
from mlgitfs.repo.mergeedit import edit_paths
from mlgitfs.repo.signedby import check_signer
from mlgitfs.repo.trees import DirView
from mlgitfs.store.cache import SegmentWriter
from mlgitfs.store.chunker import Chunker
from mlgitfs.store.facade import Store

FILE_MODE = 0o644  # a new file's mode; a rewritten file keeps its own
SHOWN_REFUSALS = 20  # a refusal lists this many paths, then counts the rest

Content = bytes | Path | TreeEntry | None
# A committed file's path whose content would change → why that is refused, or None.
Guard = Callable[[str], str | None]


@dataclass(frozen=True, slots=True)
class PathEdit:
    """One path's new content: bytes, a file to read (a spilled buffer), an entry of this
    store to place as it is (a copy or move: no bytes read), or None to remove the path
    (a file, a symlink or a whole directory)."""

    path: str
    content: Content


@dataclass(frozen=True, slots=True)
class PathCommitOutcome:
    commit: ObjectId  # the new commit; the head when nothing changed
    tree: ObjectId
    parent: ObjectId | None
    changed: bool
    paths: tuple[str, ...]  # the edited paths, sorted
    bytes_stored: int = 0
    hooks: list[HookResult] = field(default_factory=list)


def policy_message(op: str, reasons: list[str]) -> str:
    """One message for several refusals of one operation: each reason names the policy, the
    path and the way out; past SHOWN_REFUSALS of them, a count of the rest."""
    if len(reasons) == 1:
        return f"{op} refused: {reasons[0]}"
    shown = reasons[:SHOWN_REFUSALS]
    more = len(reasons) - len(shown)
    tail = f"\n  ... and {more} more" if more else ""
    return f"{op} refused for {len(reasons)} paths:\n  " + "\n  ".join(shown) + tail


def check_writable(txn: ReadTxn, repo: str, branch: str) -> None:
    """UnsafeOperation when the branch's checkout holds uncommitted changes: moving the
    branch under them would leave its mount unable to commit (as `branch -d` refuses)."""
    if checkouts.dirty_checkouts(txn, repo, branch):
        raise UnsafeOperation(
            f"{repo}@{branch} has uncommitted changes in its checkout (a writable mount's work, "
            "see 'mlgitfs status'): commit or restore them there first; nothing was committed"
        )


def commit_paths(
    store: Store,
    req: CommitRequest,
    head: ObjectId | None,
    edits: Sequence[PathEdit],
    *,
    guard: Guard | None = None,
    hooks: HookOptions | None = None,
    via: str = "write",
) -> PathCommitOutcome:
    """One commit on `req.branch` from `head` (None: the branch must not exist yet) with
    `edits` applied (a later edit of a path wins); none when the tree does not change."""
    todo: dict[tuple[bytes, ...], PathEdit] = {}
    written: set[tuple[bytes, ...]] = set()  # paths given content by an earlier edit
    for e in edits:
        parts = tuple(split_path(e.path))
        if not parts:
            raise UsageError("a write names a path inside the version, not its root")
        if parts in todo and todo[parts].content is not None:
            written.add(parts)
        todo[parts] = e
    with store.env.read() as txn:
        db.get_repo(txn, req.repo)
        now = db.get_ref(txn, req.repo, branch_ref(req.branch))
        if now != head:
            raise ConflictError(_moved(req, head, now))
        if head is None:
            refs.check_no_other_kind(txn, req.repo, "heads", req.branch)
        check_writable(txn, req.repo, req.branch)
    gate = (hooks or HookOptions()).gate(store, req.branch, head, via)  # rules before bytes
    check_signer(store, req.repo, req.branch, gate.rule, f"a {via}")
    base_tree = store.commit(head).tree if head is not None else None
    writer = store.chunks.writer()
    try:
        new_objects: list[tuple[ObjectId, bytes]] = []
        tree_edits, refused = _encode(store, writer, base_tree, todo, written, guard,
                                      new_objects)  # fmt: skip
        if refused:
            raise PolicyError(policy_message("write", refused) + "\nnothing was committed")
        tree = edit_paths(store, base_tree, tree_edits, new_objects, time.time_ns())[0]
        paths = tuple(sorted(e.path.strip("/") for e in todo.values()))
        if head is not None and tree == base_tree:
            writer.discard()  # like import: no empty commit
            return PathCommitOutcome(head, tree, head, False, paths)

        def also(txn: WriteTxn) -> None:  # a mount may have begun changing the branch since
            check_writable(txn, req.repo, req.branch)

        cid, cand = gated_commit(store, gate, req, head, tree, base_tree, writer, new_objects, also)
    except BaseException:
        writer.discard()
        raise
    stored = writer.bytes_written
    writer.reset()
    gate.post_commit(cand)
    return PathCommitOutcome(cid, tree, head, True, paths, stored, gate.results)


def gated_commit(
    store: Store,
    gate: Gate,
    req: CommitRequest,
    head: ObjectId | None,
    tree: ObjectId,
    base_tree: ObjectId | None,
    writer: SegmentWriter,
    new_objects: list[tuple[ObjectId, bytes]],
    also: Callable[[WriteTxn], None] | None = None,
) -> tuple[ObjectId, Candidate]:
    """`write_commit` of `tree` on top of `head` (import, path writes), gated by the branch's
    pre-commit hooks and checks; `also` runs in the transaction that moves the branch. The
    caller runs `gate.post_commit` on the candidate once it has settled the writer."""
    cand = Candidate(req.repo, req.branch, head, tree, tree, base_tree)
    validate, step = gate.commit_steps(cand, ("pre-commit",))
    parents = (head,) if head is not None else ()
    try:
        cid, _ = write_commit(
            store, req, tree, parents, head, writer, new_objects, also, validate, step
        )
    finally:
        gate.flush()
    cand.commit = cid
    return cid, cand


def _moved(req: CommitRequest, head: ObjectId | None, now: ObjectId | None) -> str:
    was = short_hex(head) if head is not None else "nothing"
    is_ = short_hex(now) if now is not None else "deleted"
    return (
        f"branch {req.repo}@{req.branch} moved since it was read ({was}, now {is_}); "
        "nothing was committed: read it again and write again"
    )


def _lookup(
    store: Store, root: ObjectId | None, parts: tuple[bytes, ...]
) -> tuple[TreeEntry | None, str | None]:
    """(the entry at `parts` in `root`, or None; the first ancestor that is not a directory)."""
    entry: TreeEntry | None = None
    ref = root
    for i, name in enumerate(parts):
        if ref is None:
            return None, None
        if entry is not None and not entry.is_dir:
            return None, b"/".join(parts[:i]).decode("utf-8", "surrogateescape")
        entry = DirView(store, ref).lookup(name)
        if entry is None:
            return None, None
        ref = ObjectId(entry.ref)
    return entry, None


def _encode(
    store: Store,
    writer: SegmentWriter,
    base_tree: ObjectId | None,
    todo: dict[tuple[bytes, ...], PathEdit],
    written: set[tuple[bytes, ...]],
    guard: Guard | None,
    new_objects: list[tuple[ObjectId, bytes]],
) -> tuple[dict[tuple[bytes, ...], TreeEntry | None], list[str]]:
    """Each edit as the tree entry to put at its path (None: remove), its new chunks with
    the writer; and the refusals of `guard`."""
    chunker = Chunker(store.params)

    def known(cid: ChunkId) -> bool:
        return writer.pending(cid) or store.chunks.has(cid)

    removed = {p for p, e in todo.items() if e.content is None}
    out: dict[tuple[bytes, ...], TreeEntry | None] = {}
    refused: list[str] = []
    mtime = clamp_time_ns(time.time_ns())
    with ThreadPoolExecutor(min(8, os.cpu_count() or 2), "mlgitfs-write") as pool:
        for parts, e in todo.items():
            path = "/".join(p.decode("utf-8", "surrogateescape") for p in parts)
            was, blocked = _lookup(store, base_tree, parts)
            if blocked is not None and not any(parts[:i] in removed for i in range(len(parts))):
                raise UsageError(f"cannot write {path}: {blocked} is a file, not a directory")
            if e.content is None:
                if was is None and parts not in written:
                    raise PathNotFound(f"cannot remove {path}: no such path in the branch's head")
                if was is not None:  # else written, then removed, in this one change: nothing
                    out[parts] = None
                continue
            if was is not None and was.is_dir and not isinstance(e.content, TreeEntry):
                raise UsageError(f"cannot write {path}: it is a directory")
            new = _entry(e.content, parts[-1], was, mtime, chunker, known, writer, pool,
                         new_objects)  # fmt: skip
            if was is not None and was.is_file and (was.kind, was.ref) != (new.kind, new.ref):
                why = guard(path) if guard is not None else None
                if why is not None:
                    refused.append(why)
            out[parts] = new
    return out, refused


def _entry(
    content: bytes | Path | TreeEntry,
    name: bytes,
    was: TreeEntry | None,
    mtime: int,
    chunker: Chunker,
    known: Callable[[ChunkId], bool],
    writer: SegmentWriter,
    pool: ThreadPoolExecutor,
    new_objects: list[tuple[ObjectId, bytes]],
) -> TreeEntry:
    """The tree entry of one new content; an unchanged file keeps its committed entry."""
    if isinstance(content, TreeEntry):
        return TreeEntry(name, content.kind, content.mode, content.size, content.mtime_ns,
                         content.ref)  # fmt: skip
    chunks: list[EncodedChunk]
    quotes = chunkquotes.for_path(name)
    if isinstance(content, bytes):
        chunks = filedata.encode_buffer(content, list(chunker.cut(content)), known, quotes)
    else:
        fd = os.open(content, os.O_RDONLY | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            if size <= filedata.WHOLE_FILE_LIMIT:
                chunks = filedata.read_whole(fd, chunker, known, quotes)
            else:
                chunks = filedata.encode_large(
                    pool, writer, fd, size, chunker, known, str(content), quotes
                )
        finally:
            os.close(fd)
    kind, ref, size = filedata.finish_file(chunks, writer, new_objects)
    if was is not None and was.is_file and (was.kind, was.ref) == (kind, ref):
        return was
    mode = was.mode if was is not None and was.is_file else FILE_MODE
    return TreeEntry(name, kind, mode, size, mtime, ref)
