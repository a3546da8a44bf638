"""Commit from the overlay: turn a frozen checkout's materialized inodes into a new commit.

Three steps (docs/overlay.md, "commit protocol"):
1. `plan` (event loop, no checkpoint): copy what changed — the materialized directories with
   their deltas, overlay files, renamed or chmod'ed entries — into an immutable plan, O(changes);
2. `build` (worker thread): chunk and hash the overlay files on a thread pool, rebuild the
   changed directories bottom-up with `update_dir` (untouched subtrees and pages keep their
   ids), then `write_commit`: chunks fsynced, then ONE transaction with the objects, the
   commit, the branch CAS on the checkout's base, and (`also`) the checkout moved to the new
   base with its overlay records cleared;
3. `dematerialize` (event loop, no checkpoint): every materialized inode keeps its number and
   is served from the new commit; overlay files are deleted afterwards (a crash in between
   leaves files no record names, removed at the next mount).
"""

from __future__ import annotations

import contextlib
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from mlgitfs.errors import ConflictError
from mlgitfs.meta import chunkquotes, db
from mlgitfs.meta.checkouts import get_checkout, put_checkout
from mlgitfs.meta.env import WriteTxn
from mlgitfs.model.ids import ChunkId, ObjectId
from mlgitfs.model.objects import EntryKind, TreeEntry, clamp_time_ns
from mlgitfs.repo import filedata
from mlgitfs.repo.commits import CommitRequest, branch_ref, write_commit
from mlgitfs.repo.filedata import EncodedChunk
from mlgitfs.repo.gate import Gate, HookOptions
from mlgitfs.repo.hookrun import Candidate
from mlgitfs.repo.hooks import HooksFile
from mlgitfs.repo.treeedit import update_dir
from mlgitfs.repo.trees import DirView
from mlgitfs.store.cache import SegmentWriter
from mlgitfs.store.chunker import Chunker
from mlgitfs.vfs.nodes import Node
from mlgitfs.vfs.overlay import WritableView
from mlgitfs.vfs.policy import Proposal
from mlgitfs.vfs.types import ROOT_INODE, Caller, Kind


@dataclass(frozen=True, slots=True)
class Item:
    """One materialized inode as it will be committed."""

    ino: int
    name: bytes
    kind: Kind
    mode: int
    mtime_ns: int
    base: TreeEntry | None
    overlay: str | None = None  # path of the overlay file with the content
    target: bytes = b""
    changes: dict[bytes, Item | None] | None = None  # dirs: delta (None = whiteout)


@dataclass
class Plan:
    root: Item
    base_commit: ObjectId
    overrides: list[tuple[int, bytes, int]] = field(default_factory=list)
    whiteouts: list[tuple[int, bytes]] = field(default_factory=list)
    files: list[Item] = field(default_factory=list)


@dataclass
class Outcome:
    commit: ObjectId | None
    tree: ObjectId
    entries: dict[int, TreeEntry]  # ino → its entry in the new tree
    files_hashed: int = 0
    bytes_hashed: int = 0
    bytes_stored: int = 0
    gate: Gate | None = None  # the hooks that gated the commit (post-commit runs them later)
    candidate: Candidate | None = None


def plan(view: WritableView) -> Plan:
    """Copy the overlay's changes (call with the gate frozen; no checkpoint inside)."""
    root = view.nodes[ROOT_INODE]
    out = Plan(root=_item(view, root, None), base_commit=view.record.base)

    # Changed directories, parents first, then built children first: no recursion, as a
    # change may lie thousands of levels deep.
    dirs = [root]
    for d in dirs:
        dirs.extend(c for n in d.overrides if (c := view.nodes[d.children[n]]).kind is Kind.DIR)
    below: dict[int, dict[bytes, Item | None]] = {}
    for d in reversed(dirs):
        changes: dict[bytes, Item | None] = {}
        for name in d.whiteouts:
            changes[name] = None
            out.whiteouts.append((d.ino, name))
        for name in d.overrides:
            child = view.nodes[d.children[name]]
            out.overrides.append((d.ino, name, child.ino))
            item = _item(view, child, below.pop(child.ino) if child.kind is Kind.DIR else None)
            if item.overlay is not None:
                out.files.append(item)
            changes[name] = item
        below[d.ino] = changes
    out.root = _item(view, root, below[root.ino])
    return out


def _item(view: WritableView, n: Node, changes: dict[bytes, Item | None] | None) -> Item:
    target = n.target or (n.base.ref if n.kind is Kind.SYMLINK and n.base else b"")
    overlay = str(view.files / str(n.ino)) if n.overlay else None
    mtime = clamp_time_ns(n.mtime_ns)  # an overlay file's own time may lie outside the range
    return Item(n.ino, n.name, n.kind, n.mode, mtime, n.base, overlay, target, changes)


Chunks = list[EncodedChunk]


def _encode_small(
    path: str, chunker: Chunker, known: Callable[[ChunkId], bool], quotes: bool
) -> Chunks:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return filedata.read_whole(fd, chunker, known, quotes)
    finally:
        os.close(fd)


def _encode_files(
    files: list[Item], writer: SegmentWriter, chunker: Chunker, known: Callable[[ChunkId], bool],
    threads: int | None,
) -> dict[int, Chunks]:  # fmt: skip
    """Every overlay file's chunks, stripped (ids and lengths): each file's new chunks go to
    the segment writer as soon as they are encoded, and no more than the write budget of
    file bytes is held at once (a commit of 300 new 4 MiB files held all 1.2 GB, and the
    daemon kept it), so memory is bounded whatever the size of the change."""
    encoded: dict[int, Chunks] = {}
    budget = filedata.write_budget()
    held: deque[tuple[int, int, Future[Chunks]]] = deque()
    held_bytes = 0

    def settle(keep_bytes: int) -> None:
        nonlocal held_bytes
        while held and (held_bytes > keep_bytes or held[0][2].done()):
            ino, size, future = held.popleft()
            encoded[ino] = filedata.hand_over(writer, future.result())
            held_bytes -= size

    workers = threads or min(8, os.cpu_count() or 2)
    with ThreadPoolExecutor(workers, thread_name_prefix="mlgitfs-commit") as pool:
        try:
            for it in files:
                assert it.overlay is not None
                size = os.stat(it.overlay).st_size
                quotes = chunkquotes.for_path(it.name)
                if size > filedata.WHOLE_FILE_LIMIT:
                    fd = os.open(it.overlay, os.O_RDONLY | os.O_CLOEXEC)
                    try:
                        encoded[it.ino] = filedata.encode_large(
                            pool, writer, fd, size, chunker, known, it.overlay, quotes
                        )
                    finally:
                        os.close(fd)
                    continue
                future = pool.submit(_encode_small, it.overlay, chunker, known, quotes)
                held.append((it.ino, size, future))
                held_bytes += size
                settle(budget)
            settle(-1)
        finally:
            for _, _, future in held:
                future.cancel()
    return encoded


def build(
    view: WritableView,
    p: Plan,
    req: CommitRequest,
    dry_run: bool,
    threads: int | None = None,
    hooks: HookOptions | None = None,
    *,
    theirs: ObjectId | None = None,
    conclude: Callable[[WriteTxn], None] | None = None,
    stash: bool = False,
    caller: Caller | None = None,
) -> Outcome:
    """Worker thread: hash the overlay files, rebuild the changed trees, write the commit,
    gated by the branch's pre-commit hooks (a refusal raises; the overlay is untouched).

    A merge into the mount is concluded by a commit with the parents (base, `theirs`), made
    even when its tree is the base's, and `conclude` runs in its transaction (it drops the
    merge state). `stash` writes the tree's chunks and objects, and no commit and no hook:
    the mount's tree as it is, for a merge to read (vfs/mountmerge.py). Before the commit's
    transaction the view's policies admit it (vfs/policy.py, with `caller`): a refusal
    raises and writes nothing (the chunks hashed so far are discarded)."""
    store = view.store
    chunker = Chunker(store.params)
    writer = store.chunks.writer()
    new_objects: list[tuple[ObjectId, bytes]] = []
    entries: dict[int, TreeEntry] = {}

    def known(cid: ChunkId) -> bool:
        return writer.pending(cid) or store.chunks.has(cid)

    out = Outcome(None, ObjectId(b""), entries)
    try:
        changed = [it for it in p.files if it.overlay is not None]
        encoded = _encode_files(changed, writer, chunker, known, threads)

        def entry_of(top: Item, top_was: TreeEntry | None) -> TreeEntry:
            # Items with the base commit's entry at their path, parents first; their entries
            # are made children first (no recursion: a change may lie thousands deep).
            todo: list[tuple[Item, TreeEntry | None]] = [(top, top_was)]
            for it, was in todo:
                if it.kind is Kind.DIR and it.changes:
                    below = (
                        DirView(store, ObjectId(was.ref))
                        if was is not None and was.is_dir
                        else None
                    )
                    todo.extend(
                        (c, below.lookup(n) if below else None)
                        for n, c in it.changes.items()
                        if c is not None
                    )
            for it, was in reversed(todo):
                entries[it.ino] = one_entry(it, was)
            return entries[top.ino]

        def one_entry(it: Item, was: TreeEntry | None) -> TreeEntry:
            # `was`: the base commit's entry at this path. An entry whose kind, content and
            # mode are unchanged stays as committed (its mtime too): status compares by
            # content, and a commit must change exactly what status shows.
            if it.kind is Kind.DIR:
                base_ref = ObjectId(it.base.ref) if it.base is not None else None
                changes = {
                    n: (None if c is None else entries[c.ino])
                    for n, c in (it.changes or {}).items()
                }
                tree, count = update_dir(store, base_ref, changes, new_objects)
                e = TreeEntry(it.name, EntryKind.DIR, it.mode, count, it.mtime_ns, bytes(tree))
            elif it.kind is Kind.SYMLINK:
                e = TreeEntry(it.name, EntryKind.SYMLINK, 0o777, len(it.target), it.mtime_ns,
                              it.target)  # fmt: skip
            elif it.overlay is not None:
                kind, fref, size = filedata.finish_file(encoded[it.ino], writer, new_objects)
                out.files_hashed += 1
                out.bytes_hashed += size
                e = TreeEntry(it.name, kind, it.mode, size, it.mtime_ns, fref)
            else:
                assert it.base is not None
                b = it.base
                e = TreeEntry(it.name, b.kind, it.mode, b.size, it.mtime_ns, b.ref)
            if was is not None and (was.kind, was.ref, was.mode) == (e.kind, e.ref, e.mode):
                e = was
            return e

        base_tree = store.commit(p.base_commit).tree
        root_was = TreeEntry(b"", EntryKind.DIR, p.root.mode, 0, p.root.mtime_ns, bytes(base_tree))
        root = entry_of(p.root, root_was)
        out.tree = ObjectId(root.ref)
        if dry_run or (out.tree == base_tree and (theirs is None or stash)):
            writer.discard()
            return out
        out.bytes_stored = writer.bytes_written
        if stash:
            writer.flush()
            with store.env.write() as txn:
                writer.record(txn)
                store.put_objects(txn, new_objects)
            writer.reset()
            return out

        def also(txn: WriteTxn) -> None:
            rec = get_checkout(txn, view.repo, view.branch)
            if rec is None or rec.base != p.base_commit or rec.id != view.record.id:
                raise ConflictError(
                    f"the checkout of {view.repo}@{view.branch} changed under this mount; "
                    "nothing was committed"
                )
            # (base inode numbers allocated before the freeze were flushed by the caller)
            for parent, name in p.whiteouts:
                view.table.del_base_ino(txn, parent, name)
            for parent, name, ino in p.overrides:
                view.table.put_base_ino(txn, parent, name, ino)
            view.table.clear(txn, b"dnup")
            # write_commit moved the branch earlier in this very transaction: its head is the
            # new commit, which becomes the checkout's base atomically with it.
            head = db.get_ref(txn, view.repo, branch_ref(view.branch))
            assert head is not None
            rec.base = head
            put_checkout(txn, view.repo, view.branch, rec)
            if conclude is not None:
                conclude(txn)

        # Rules and hooks come from the branch's head, which is the checkout's base (the CAS
        # holds it); a policy refuses by raising, and the one with hooks gives their gate.
        proposal = Proposal(view.repo, view.branch, p.base_commit, caller, hooks or HookOptions())
        gate = view.policy.admit(proposal) or Gate(store, HooksFile(), None)
        cand = Candidate(view.repo, view.branch, p.base_commit, out.tree, out.tree, base_tree)
        validate, step = gate.commit_steps(cand, ("pre-commit",))
        parents = (p.base_commit,) if theirs is None else (p.base_commit, theirs)
        try:
            cid, _ = write_commit(
                store, req, out.tree, parents, p.base_commit, writer, new_objects,
                also, validate, step,
            )  # fmt: skip
        finally:
            out.gate, out.candidate = gate, cand
            gate.flush()
        writer.reset()
        out.commit = cid
        return out
    except BaseException:
        writer.discard()
        raise


def dematerialize(view: WritableView, p: Plan, out: Outcome) -> list[str]:
    """After the commit: serve every changed inode from the new commit (same numbers).

    Runs in the event loop with the gate frozen, no checkpoint inside. Returns the overlay
    files to delete (after this returns; a crash before leaves orphans the next mount removes).
    """
    assert out.commit is not None
    view.record.base = out.commit
    doomed: list[str] = []

    todo = [p.root]  # no recursion: a change may lie thousands of levels deep
    while todo:
        it = todo.pop()
        node = view.nodes[it.ino]
        entry = out.entries[it.ino]
        if node.ino == ROOT_INODE:
            node.base = entry
        else:
            node.set_base(entry)
            # An entry kept as committed (same content) brings its committed mtime back.
            node.mtime_ns, node.mode = entry.mtime_ns, entry.mode
        node.subdirs = None
        node.recorded = False
        node.origin = None
        if it.overlay is not None:
            node.overlay = False
            node.read = None
            if node.fd >= 0:
                os.close(node.fd)
                node.fd = -1
            doomed.append(it.overlay)
        if it.changes is not None:
            node.whiteouts.clear()
            node.overrides.clear()
            todo.extend(c for c in it.changes.values() if c is not None)
    view.unlocked.clear()
    view.refs.known.clear()
    return doomed


def remove_files(paths: list[str]) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
