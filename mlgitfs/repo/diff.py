"""Differences between two trees, skipping identical subtrees and pages by id."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import Tree, TreeEntry
from mlgitfs.repo.store import Store
from mlgitfs.repo.trees import DirView, walk


class Change(enum.StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    MODIFIED = "modified"


@dataclass(frozen=True, slots=True)
class DiffEntry:
    change: Change
    path: str
    old: TreeEntry | None
    new: TreeEntry | None

    @property
    def old_size(self) -> int:
        return self.old.size if self.old and not self.old.is_dir else 0

    @property
    def new_size(self) -> int:
        return self.new.size if self.new and not self.new.is_dir else 0


def _differing_entries(
    store: Store, a: ObjectId, b: ObjectId
) -> tuple[list[TreeEntry], list[TreeEntry]]:
    """Entries of the pages that differ: a page present on both sides holds the same entries."""
    pa, pb = DirView(store, a).pages(), DirView(store, b).pages()
    common = set(pa) & set(pb)
    ea = [e for p in pa if p not in common for e in store.get(p, Tree).entries]
    eb = [e for p in pb if p not in common for e in store.get(p, Tree).entries]
    return ea, eb


def _all_below(store: Store, change: Change, entry: TreeEntry, path: str) -> Iterator[DiffEntry]:
    """Files and symlinks at or below `entry` (directories themselves are not listed)."""
    removed = change is Change.REMOVED
    if not entry.is_dir:
        yield DiffEntry(change, path, entry if removed else None, None if removed else entry)
        return
    for sub, e in walk(store, ObjectId(entry.ref), path.encode("utf-8", "surrogateescape") + b"/"):
        if not e.is_dir:
            p = sub.decode("utf-8", "surrogateescape")
            yield DiffEntry(change, p, e if removed else None, None if removed else e)


def diff_trees(store: Store, a: ObjectId, b: ObjectId, prefix: str = "") -> Iterator[DiffEntry]:
    if a == b:
        return
    ea, eb = _differing_entries(store, a, b)
    i = j = 0
    while i < len(ea) or j < len(eb):
        x = ea[i] if i < len(ea) else None
        y = eb[j] if j < len(eb) else None
        if y is None or (x is not None and x.name < y.name):
            assert x is not None
            yield from _all_below(
                store, Change.REMOVED, x, prefix + x.name.decode("utf-8", "surrogateescape")
            )
            i += 1
            continue
        if x is None or y.name < x.name:
            yield from _all_below(
                store, Change.ADDED, y, prefix + y.name.decode("utf-8", "surrogateescape")
            )
            j += 1
            continue
        i += 1
        j += 1
        path = prefix + x.name.decode("utf-8", "surrogateescape")
        if x == y:
            continue
        if x.is_dir and y.is_dir:
            yield from diff_trees(store, ObjectId(x.ref), ObjectId(y.ref), path + "/")
        elif x.is_dir or y.is_dir:
            yield from _all_below(store, Change.REMOVED, x, path)
            yield from _all_below(store, Change.ADDED, y, path)
        elif (x.kind, x.ref, x.mode) != (y.kind, y.ref, y.mode):
            yield DiffEntry(Change.MODIFIED, path, x, y)
