"""Restore and unlock in a checkout: put paths back as they are in a version; allow edits.

`restore` replaces what a path names in the checkout by the entry of a source tree (the
base commit by default): a file or a whole directory comes back as a base-backed inode, with
no copy (content stays in the store until written). Restoring from the base commit drops the
overlay's change at that path outright where the parent is unchanged, so status is clean
again. A path absent from the source is removed. Every step of one path is one transaction.

`unlock` lets a committed file of a `flexible` repo be changed until the next commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlgitfs.errors import PathNotFound, PolicyError, UsageError
from mlgitfs.meta.db import Mutability
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import TreeEntry
from mlgitfs.repo.trees import DirView, resolve_path
from mlgitfs.vfs.nodes import KIND_OF_ENTRY, Node
from mlgitfs.vfs.overlay import Batch, WritableView, now_ns
from mlgitfs.vfs.types import ROOT_INODE, Kind


@dataclass
class RestoreOutcome:
    paths: list[str] = field(default_factory=list)
    # What the kernel must forget: (parent inode, name) entries and inodes whose data changed.
    entries: list[tuple[int, bytes]] = field(default_factory=list)
    inodes: list[int] = field(default_factory=list)


def _lookup(view: WritableView, tree: ObjectId, parts: list[bytes]) -> TreeEntry | None:
    try:
        return resolve_path(view.store, tree, parts)
    except PathNotFound:
        return None


def orphan_tree(view: WritableView, node: Node, batch: Batch) -> None:
    """Detach a node and drop the records of everything materialized below it."""
    if node.kind is Kind.DIR:
        for name in list(node.overrides):
            child = view.nodes[node.children[name]]
            orphan_tree(view, child, batch)
    view.orphan(node, batch)


def restore(
    view: WritableView, paths: list[list[bytes]], source: ObjectId, out: RestoreOutcome
) -> None:
    """Sync, with no checkpoint: call inside `view.mutating()`. A named path that neither the
    source nor the checkout has is refused before anything changes (a typo, not a no-op)."""
    base = view.base_tree()
    for parts in paths:
        if parts and _lookup(view, source, parts) is None and view.resolve(parts) is None:
            shown = b"/".join(parts).decode("utf-8", "surrogateescape")
            raise PathNotFound(
                f"{shown}: no such path in the source version nor in the mount; nothing restored"
            )
    todo: list[list[bytes]] = []
    for parts in paths:
        if parts:
            todo.append(parts)
            continue
        root = view.nodes[ROOT_INODE]
        names = set(root.overrides) | set(root.whiteouts)
        if source != base:
            names |= {n for n, _ in view.child_names(root)}
            names |= {e.name for e in DirView(view.store, source).entries()}
        todo.extend([n] for n in sorted(names))
    for parts in todo:
        _restore_one(view, parts, source, base, out)


def _restore_one(
    view: WritableView, parts: list[bytes], source: ObjectId, base: ObjectId, out: RestoreOutcome
) -> None:
    entry = _lookup(view, source, parts)
    # One change: if its transaction fails, memory is as it was and no file is deleted.
    with view.change() as batch:
        _restore_into(view, parts, entry, source, base, out, batch)


def _restore_into(
    view: WritableView,
    parts: list[bytes],
    entry: TreeEntry | None,
    source: ObjectId,
    base: ObjectId,
    out: RestoreOutcome,
    batch: Batch,
) -> None:
    d = view.nodes[ROOT_INODE]
    for i, part in enumerate(parts[:-1]):
        child = view.find(d, part)
        if child is not None and child.kind is Kind.DIR:
            d = child
            continue
        if entry is None:
            return  # absent in the source and in the checkout: nothing to do
        if child is not None:
            view.unlink_name(d, part, batch)
            orphan_tree(view, child, batch)
            out.inodes.append(child.ino)
        src_dir = _lookup(view, source, parts[: i + 1])
        mode = src_dir.mode if src_dir is not None else 0o755
        node = Node(view.alloc(), Kind.DIR, mode, now_ns(), 0, part, None)
        batch.put(view.nodes, node.ino, node)
        view.link_name(d, part, node, batch)
        out.entries.append((d.ino, part))
        d = node
    name = parts[-1]
    current = view.find(d, name)
    if current is not None:
        view.unlink_name(d, name, batch)
        orphan_tree(view, current, batch)
        out.inodes.append(current.ino)
    out.entries.append((d.ino, name))
    out.paths.append(b"/".join(parts).decode("utf-8", "surrogateescape"))
    if entry is not None:
        here = b"/".join(parts)
        if source == base and _is_base_dir(view, d, parts[:-1], base):
            # The parent is the base's own directory: dropping the change brings the base back.
            batch.discard(d.whiteouts, name)
            batch.discard(d.overrides, name)
            batch.undelta(d.ino, name)
        else:
            node = Node(view.alloc(), KIND_OF_ENTRY[entry.kind], entry.mode, entry.mtime_ns, 0,
                        name, None)  # fmt: skip
            node.set_base(entry)
            node.origin = here if _lookup(view, base, parts) is not None else None
            batch.put(view.nodes, node.ino, node)
            view.link_name(d, name, node, batch)
    view.touch_dir(d, batch)


def _is_base_dir(view: WritableView, d: Node, parts: list[bytes], base: ObjectId) -> bool:
    """True when d lists the base commit's own directory at `parts` (plus its delta)."""
    if d.base is None or view.base_path(d) != b"/".join(parts):
        return False
    if not parts:
        return True
    entry = _lookup(view, base, parts)
    return entry is not None and entry.ref == d.base.ref


def unlock(view: WritableView, paths: list[list[bytes]]) -> list[str]:
    """Mark committed files writable until the next commit (flexible repos)."""
    if view.mutability is Mutability.STRICT:
        raise PolicyError(
            f"{view.repo} is strict: committed files never change; add new files instead"
        )
    done = []
    nodes = []
    for parts in paths:
        node = view.resolve(parts)
        shown = b"/".join(parts).decode("utf-8", "surrogateescape")
        if node is None:
            raise PathNotFound(f"no such path in the mount: {shown}")
        if node.kind is Kind.DIR:
            raise UsageError(f"{shown} is a directory: unlock names files")
        nodes.append(node)
        done.append(shown)
    if view.mutability is Mutability.FLEXIBLE:
        with view.store.env.write() as txn:
            for node in nodes:
                view.table.put_unlocked(txn, node.ino)
        view.unlocked.update(n.ino for n in nodes)
    return done
