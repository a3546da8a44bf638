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

from mlgitfs.errors import FsError, PathNotFound, PolicyError, UsageError
from mlgitfs.meta.db import Mutability
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.repo.diff import diff_trees
from mlgitfs.repo.pathcommit import policy_message
from mlgitfs.repo.trees import DirView, resolve_path
from mlgitfs.vfs.nodes import KIND_OF_ENTRY, Node
from mlgitfs.vfs.overlay import Batch, WritableView, now_ns
from mlgitfs.vfs.types import ROOT_INODE, Caller, Kind


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
    order = [node]  # parents first; orphaned children first (no recursion: any depth)
    for n in order:
        if n.kind is Kind.DIR:
            order.extend(view.nodes[n.children[name]] for name in list(n.overrides))
    for n in reversed(order):
        view.orphan(n, batch)


def replaced_files(
    view: WritableView, parts: list[bytes], source: ObjectId, base: ObjectId
) -> list[str]:
    """Files of the base commit at or below `parts` whose content the source's differs from
    (what restoring `parts` from `source` would change; removals are not listed)."""
    here = b"/".join(parts).decode("utf-8", "surrogateescape")
    if not parts:
        was: TreeEntry | None = TreeEntry(b"", EntryKind.DIR, 0o755, 0, 0, bytes(base))
        now: TreeEntry | None = TreeEntry(b"", EntryKind.DIR, 0o755, 0, 0, bytes(source))
    else:
        was, now = _lookup(view, base, parts), _lookup(view, source, parts)
    if was is None or now is None:
        return []
    if was.is_file and not now.is_dir:
        return [here] if (was.kind, was.ref) != (now.kind, now.ref) else []
    if not (was.is_dir and now.is_dir):
        return []
    prefix = here + "/" if here else ""
    return [
        d.path
        for d in diff_trees(view.store, ObjectId(was.ref), ObjectId(now.ref), prefix)
        if d.old is not None and d.new is not None and d.old.is_file
        and (d.old.kind, d.old.ref) != (d.new.kind, d.new.ref)
    ]  # fmt: skip


def restore(
    view: WritableView, paths: list[list[bytes]], source: ObjectId, out: RestoreOutcome,
    caller: Caller | None = None,
) -> None:  # fmt: skip
    """Sync, with no checkpoint: call inside `view.mutating()`. A named path that neither the
    source nor the checkout has is refused before anything changes (a typo, not a no-op); so
    is a restore the policies refuse for any committed file it would change."""
    base = view.base_tree()
    for parts in paths:
        if parts and _lookup(view, source, parts) is None and view.resolve(parts) is None:
            shown = b"/".join(parts).decode("utf-8", "surrogateescape")
            raise PathNotFound(
                f"{shown}: no such path in the source version nor in the mount; nothing restored"
            )
    if source != base:
        refused = []
        for parts in paths:
            for path in replaced_files(view, parts, source, base):
                try:
                    view.check("restore", path.encode("utf-8", "surrogateescape"), True, caller)
                except FsError as exc:
                    refused.append(exc.message)
        if refused:
            raise PolicyError(policy_message("restore", refused))
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
        restore_into(view, parts, entry, source, base, out, batch)


def restore_into(
    view: WritableView,
    parts: list[bytes],
    entry: TreeEntry | None,
    source: ObjectId,
    base: ObjectId,
    out: RestoreOutcome,
    batch: Batch,
    *,
    exact: bool = False,
) -> None:
    """Put `entry` (None: nothing) at `parts` in the checkout, in `batch`; missing parent
    directories take their modes from `source`. From the base commit (`source == base`)
    under the base's own parent the delta is dropped instead, unless `exact`."""
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
        if source == base and not exact and _is_base_dir(view, d, parts[:-1], base):
            # The parent is the base's own directory: dropping the change brings the base back.
            batch.discard(d.whiteouts, name)
            batch.discard(d.overrides, name)
            d.subdirs = None
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
    """Let committed files of a flexible repo change until the next commit, by path: whatever
    gives the path new content (write, rename over it, unlink and create) is then allowed."""
    if view.mutability is Mutability.STRICT:
        raise PolicyError(
            f"{view.repo} is strict: committed files never change; add new files instead"
        )
    done = []
    for parts in paths:
        node = view.resolve(parts)
        path = b"/".join(parts)
        shown = path.decode("utf-8", "surrogateescape")
        if node is not None and node.kind is Kind.DIR:
            raise UsageError(f"{shown} is a directory: unlock names files")
        if node is None and view.committed_file(path) is None:
            raise PathNotFound(f"no such file in the mount or its base commit: {shown}")
        done.append(path)
    if view.mutability is Mutability.FLEXIBLE:
        with view.store.env.write() as txn:
            for path in done:
                view.table.put_unlocked(txn, path)
        view.unlocked.update(done)
    return [p.decode("utf-8", "surrogateescape") for p in done]
