"""Status of a checkout: what its next commit would change against the base commit.

The answer is by content, and it is exactly the diff (`repo/diff.diff_trees` with `dirs`)
between the base commit's tree and the tree the commit builds: a path whose entry was
replaced (renamed over, unlinked and created again, restored) is `modified` when its kind,
content or mode differ and absent when they do not; mtimes are not compared, and a commit
keeps the committed entry of a path whose content and mode are unchanged (commit.py). Exact
renames are paired as `mlgitfs diff` pairs them (`repo/diff.with_renames`: a content id
deleted once and added once); directories added, deleted or chmod'ed have lines of their
own (diff_trees' `dirs`).

The walk visits only materialized directories (overrides and whiteouts), so it costs
O(changes); a directory whose base tree is not the base commit's tree at its path (renamed,
restored from another version) is compared with that tree page by page (diff_trees skips
identical pages and subtrees). Overlay files are compared by size first; one of the same size
as its committed counterpart is hashed (not compressed) once per version of its bytes
(`RefCache`), on a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import trio

from mlgitfs.model.changes import ORDER, ChangeKind
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.repo.diff import DiffEntry, all_below, diff_trees, find_renames
from mlgitfs.repo.trees import DirView
from mlgitfs.vfs.hashcache import RefCache
from mlgitfs.vfs.nodes import Node
from mlgitfs.vfs.overlay_base import OverlayBase
from mlgitfs.vfs.types import ROOT_INODE, Kind


@dataclass(frozen=True, slots=True)
class Change:
    change: ChangeKind
    path: str
    kind: str  # file, dir, symlink
    old_path: str = ""  # for renamed


@dataclass(frozen=True, slots=True)
class Side:
    """What a path holds on one side: kind, content ref (None: an overlay file not hashed
    yet), mode and size."""

    kind: EntryKind
    ref: bytes | None
    mode: int
    size: int


def same_content(a: Side, b: Side) -> bool:
    """Equal kind and bytes (modes aside); an unhashed overlay file counts as different."""
    if (a.kind is EntryKind.SYMLINK) != (b.kind is EntryKind.SYMLINK) or a.size != b.size:
        return False
    return a.ref is not None and (a.kind, a.ref) == (b.kind, b.ref)


@dataclass(frozen=True, slots=True)
class Delta:
    change: ChangeKind  # added, deleted or modified (renames are paired by `report`)
    path: bytes
    old: Side | None
    new: Side | None
    ino: int = 0  # an overlay file whose content is not hashed yet


_KIND_NAME = {
    EntryKind.FILE: "file",
    EntryKind.CHUNKED: "file",
    EntryKind.DIR: "dir",
    EntryKind.SYMLINK: "symlink",
}


def _s(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape")


def _b(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def _join(prefix: bytes, name: bytes) -> bytes:
    return prefix + b"/" + name if prefix else name


def side_of(e: TreeEntry) -> Side:
    return Side(e.kind, e.ref, e.mode, e.size)


def same(a: Side, b: Side) -> bool | None:
    """Equal kind, content and mode; None when an unhashed overlay file leaves it open."""
    if a.kind is EntryKind.DIR or b.kind is EntryKind.DIR:
        return a.kind is b.kind and a.mode == b.mode
    if (a.kind is EntryKind.SYMLINK) != (b.kind is EntryKind.SYMLINK) or a.mode != b.mode:
        return False
    if a.size != b.size:
        return False
    if a.ref is None or b.ref is None:
        return None
    return (a.kind, a.ref) == (b.kind, b.ref)


class _Walk:
    """One walk of the overlay against the base tree; `need` collects unhashed files."""

    def __init__(self, view: OverlayBase, refs: RefCache) -> None:
        self.view = view
        self.store = view.store
        self.refs = refs
        self.need: list[int] = []
        self.out: list[Delta] = []
        # calls still to make, last first: the walk is as deep as the tree (thousands of
        # levels), so compare and walk_dir queue each other instead of recursing
        self.todo: list[Callable[[], None]] = []

    def run(self, d: Node, path: bytes, was: ObjectId | None) -> None:
        self.todo.append(partial(self.walk_dir, d, path, was))
        while self.todo:
            self.todo.pop()()

    def new_side(self, node: Node, compare_with: Side | None) -> Side:
        """What the commit would record for this node (an overlay file's ref only when it
        was hashed; it is asked for when `compare_with` has the same size)."""
        if node.kind is Kind.DIR:
            return Side(EntryKind.DIR, None, node.mode, 0)
        if node.kind is Kind.SYMLINK:
            target = node.target or (node.base.ref if node.base is not None else b"")
            return Side(EntryKind.SYMLINK, target, 0o777, len(target))
        if not node.overlay:
            assert node.base is not None
            return Side(node.base.kind, node.base.ref, node.mode, node.base.size)
        hit = self.refs.get(node.ino)
        if hit is not None:
            return Side(hit[0], hit[1], node.mode, node.size)
        if compare_with is not None and compare_with.size == node.size:
            self.need.append(node.ino)
        return Side(EntryKind.FILE, None, node.mode, node.size)

    def add(self, change: ChangeKind, path: bytes, old: Side | None, new: Side | None,
            ino: int = 0) -> None:  # fmt: skip
        self.out.append(Delta(change, path, old, new, ino))

    def take(self, d: DiffEntry) -> None:
        old = None if d.old is None else side_of(d.old)
        self.add(d.change, _b(d.path), old, None if d.new is None else side_of(d.new))

    def entries(self, change: ChangeKind, e: TreeEntry, path: bytes) -> None:
        for d in all_below(self.store, change, e, _s(path), dirs=True):
            self.take(d)

    def compare(self, path: bytes, old: TreeEntry | None, node: Node | None) -> None:
        """The base commit's entry at `path` (or None) against what the checkout has there."""
        if node is None:
            if old is not None:
                self.entries(ChangeKind.DELETED, old, path)
            return
        if node.kind is Kind.DIR:
            if old is not None and old.is_dir:
                if node.mode != old.mode:
                    self.add(ChangeKind.MODIFIED, path, side_of(old), self.new_side(node, None))
                self.todo.append(partial(self.walk_dir, node, path, ObjectId(old.ref)))
                return
            if old is not None:
                self.entries(ChangeKind.DELETED, old, path)
            self.add(ChangeKind.ADDED, path, None, self.new_side(node, None))
            self.todo.append(partial(self.walk_dir, node, path, None))
            return
        if old is not None and old.is_dir:
            self.entries(ChangeKind.DELETED, old, path)
            old = None
        was = None if old is None else side_of(old)
        new = self.new_side(node, was)
        if was is None:
            self.add(ChangeKind.ADDED, path, None, new, node.ino if new.ref is None else 0)
        elif same(was, new) is not True:
            self.add(ChangeKind.MODIFIED, path, was, new)

    def walk_dir(self, d: Node, path: bytes, was: ObjectId | None) -> None:
        """d is a directory at `path`; `was` the base commit's tree there, if it had one."""
        handled = d.overrides | d.whiteouts
        mine = ObjectId(d.base.ref) if d.base is not None else None
        prefix = _s(path) + "/" if path else ""
        if mine is not None and mine != was:
            # Renamed or restored from another version: tree against tree, skipping the
            # names the delta decides.
            if was is None:
                for e in DirView(self.store, mine).entries():
                    if e.name not in handled:
                        self.entries(ChangeKind.ADDED, e, _join(path, e.name))
            else:
                for dd in diff_trees(self.store, was, mine, prefix, dirs=True):
                    if _b(dd.path[len(prefix) :]).split(b"/", 1)[0] not in handled:
                        self.take(dd)
        elif mine is None and was is not None:
            for e in DirView(self.store, was).entries():
                if e.name not in handled:
                    self.entries(ChangeKind.DELETED, e, _join(path, e.name))
        base = DirView(self.store, was) if was is not None else None
        calls = []
        for name in sorted(handled):
            old = base.lookup(name) if base is not None else None
            child = self.view.nodes[d.children[name]] if name in d.overrides else None
            calls.append(partial(self.compare, _join(path, name), old, child))
        self.todo.extend(reversed(calls))  # taken in name order, each subtree before the next


def deltas(view: OverlayBase) -> tuple[list[Delta], list[int]]:
    """The diff of the checkout against its base (see the module docstring), and the overlay
    files that must be hashed to decide it: those of the same size as the committed file
    they replace, and added ones of the same size as a deleted file (a rename candidate)."""
    w = _Walk(view, view.refs)
    w.run(view.nodes[ROOT_INODE], b"", view.base_tree())
    sizes = {
        d.old.size
        for d in w.out
        if d.change is ChangeKind.DELETED and d.old is not None and d.old.kind is not EntryKind.DIR
    }
    w.need += [d.ino for d in w.out if d.ino and d.new is not None and d.new.size in sizes]
    return w.out, w.need


async def compute(view: OverlayBase) -> list[Delta]:
    """`deltas`, after hashing on a worker thread the overlay files it needs."""
    out, need = deltas(view)
    if need:
        await trio.to_thread.run_sync(view.refs.compute, need, limiter=view.io_limiter)
        out, _ = deltas(view)
    return out


def _entry(side: Side) -> TreeEntry:
    return TreeEntry(b"", side.kind, side.mode, side.size, 0, side.ref or b"")


def report(items: list[Delta]) -> list[Change]:
    """Status lines: the deltas, exact renames paired as `diff` pairs them. Content not
    decided (an overlay file that could not be hashed) counts as modified, never renamed."""
    moves = find_renames(
        ((_s(d.path), _entry(d.old)) for d in items if d.change is ChangeKind.DELETED and d.old),
        (
            (_s(d.path), _entry(d.new))
            for d in items
            if d.change is ChangeKind.ADDED and d.new and d.new.ref is not None
        ),
    )
    targets = {new: old for old, new in moves.items()}
    out: list[Change] = []
    for d in items:
        side = d.new or d.old
        assert side is not None
        kind = _KIND_NAME[side.kind]
        path = _s(d.path)
        if d.change is ChangeKind.DELETED and path in moves:
            continue
        if d.change is ChangeKind.ADDED and path in targets:
            out.append(Change(ChangeKind.RENAMED, path, kind, targets[path]))
            continue
        out.append(Change(d.change, path, kind))
    out.sort(key=lambda c: (ORDER[c.change], c.path))
    return out


async def status(view: OverlayBase) -> list[Change]:
    return report(await compute(view))


__all__ = ["Change", "Delta", "compute", "deltas", "report", "status"]
