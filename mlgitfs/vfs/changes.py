"""Status of a checkout: what the overlay changed against the base commit, in O(changes).

Walks only materialized directories (their deltas: overrides and whiteouts), never the whole
tree. A recorded inode whose origin (its path in the base commit) differs from where it is
now was renamed; one without an origin was added; a whiteout whose name is no renamed
inode's origin is a deletion; a file with overlay content, or a changed mode, is modified.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlgitfs.errors import PathNotFound
from mlgitfs.model.changes import ORDER, ChangeKind
from mlgitfs.repo.trees import resolve_path
from mlgitfs.vfs.nodes import Node
from mlgitfs.vfs.overlay import WritableView
from mlgitfs.vfs.types import ROOT_INODE, Kind


@dataclass(frozen=True, slots=True)
class Change:
    change: ChangeKind
    path: str
    kind: str  # file, dir, symlink
    old_path: str = ""  # for renamed


def _s(path: bytes) -> str:
    return path.decode("utf-8", "surrogateescape")


def _kind(node: Node) -> str:
    return {Kind.FILE: "file", Kind.DIR: "dir", Kind.SYMLINK: "symlink"}[node.kind]


def status(view: WritableView) -> list[Change]:
    out: list[Change] = []
    deleted: dict[bytes, str] = {}
    moved_from: set[bytes] = set()

    def join(prefix: bytes, name: bytes) -> bytes:
        return prefix + b"/" + name if prefix else name

    def walk(d: Node, path: bytes, under_new: bool) -> None:
        for name in sorted(d.whiteouts):
            entry = view.base_entry(d, name)
            deleted[join(path, name)] = "dir" if entry is not None and entry.is_dir else "file"
        for name in sorted(d.overrides):
            child = view.nodes[d.children[name]]
            cpath = join(path, name)
            kind = _kind(child)
            if under_new or child.origin is None:
                out.append(Change(ChangeKind.ADDED, _s(cpath), kind))
                if child.kind is Kind.DIR:
                    walk(child, cpath, True)
                continue
            if child.origin != cpath:
                moved_from.add(child.origin)
                out.append(Change(ChangeKind.RENAMED, _s(cpath), kind, _s(child.origin)))
            if child.kind is Kind.DIR:
                walk(child, cpath, False)
            elif _modified(view, child, child.origin):
                out.append(Change(ChangeKind.MODIFIED, _s(cpath), kind))

    walk(view.nodes[ROOT_INODE], b"", False)
    for path in sorted(deleted):
        if path not in moved_from:
            out.append(Change(ChangeKind.DELETED, _s(path), deleted[path]))
    out.sort(key=lambda c: (ORDER[c.change], c.path))
    return out


def _modified(view: WritableView, node: Node, path: bytes) -> bool:
    if node.overlay:
        return True
    try:
        before = resolve_path(view.store, view.base_tree(), path.split(b"/"))
    except PathNotFound:
        return True
    now = node.base
    if before is None or now is None:
        return True
    if node.kind is Kind.SYMLINK:
        return (node.target or now.ref) != before.ref
    return (now.kind, now.ref, node.mode, node.mtime_ns) != (
        before.kind, before.ref, before.mode, before.mtime_ns
    )  # fmt: skip
