"""Editing a directory tree in place: apply name → entry changes, rewriting only the pages hit.

`build_dir` (trees.py) encodes a whole listing; this gives the same objects from an existing
directory and a few changes, for commits whose cost must follow the changes. A `TreeIndex`
is re-split from the first page a change falls in, with the very rule `build_dir` uses, until
a new page ends exactly where an old page ended; from there the old pages are reused as they
are. Boundaries depend only on names (and the MAX_PAGE count from a page start), so the
result is byte-identical to building the whole listing again (tests check it).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from operator import itemgetter

from mlgitfs.model.decode import Row, entry_of
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import (
    MAX_PAGE,
    PageRef,
    Tree,
    TreeEntry,
    TreeIndex,
    object_id,
    tree_from_rows,
)
from mlgitfs.repo.treedelta import plain_rows
from mlgitfs.repo.trees import PAGE_LIMIT, NewObjects, ObjectReader, build_dir, is_boundary

Changes = Mapping[bytes, TreeEntry | None]  # name → new entry, or None to remove it


def _merge(entries: tuple[TreeEntry, ...] | list[TreeEntry], changes: Changes) -> list[TreeEntry]:
    out = {e.name: e for e in entries}
    for name, entry in changes.items():
        if entry is None:
            out.pop(name, None)
        else:
            out[name] = entry
    return [out[n] for n in sorted(out)]


def update_dir(
    store: ObjectReader, old: ObjectId | None, changes: Changes, out: NewObjects
) -> tuple[ObjectId, int]:
    """The directory `old` (None: empty) with `changes` applied: (its id, its entry count)."""
    rows = plain_rows(store, old) if old is not None else None
    if rows is not None:
        return _update_rows(old, rows, changes, out)
    obj = None if old is None else store.get_object(old)
    if obj is None or isinstance(obj, Tree):
        entries = _merge(obj.entries if obj is not None else [], changes)
        return build_dir(entries, out), len(entries)
    assert isinstance(obj, TreeIndex)
    if not changes:
        return old, obj.count  # type: ignore[return-value]
    pages = obj.pages
    firsts = [p.first for p in pages]
    hit: dict[int, dict[bytes, TreeEntry | None]] = {}
    for name, entry in changes.items():
        i = max(0, bisect.bisect_right(firsts, name) - 1)
        hit.setdefault(i, {})[name] = entry
    total = obj.count + sum(
        (e is not None) - (_has(store, pages, firsts, n)) for n, e in changes.items()
    )
    if total <= PAGE_LIMIT:
        # Small again: one Tree, exactly as build_dir makes it.
        merged: list[TreeEntry] = []
        for i, p in enumerate(pages):
            merged.extend(_merge(store.get(p.page, Tree).entries, hit.get(i, {})))
        return build_dir(merged, out), len(merged)
    new_pages: list[PageRef] = []
    pending: list[TreeEntry] = []
    i = 0
    while i < len(pages):
        if i not in hit and not pending:
            new_pages.append(pages[i])
            i += 1
            continue
        entries = _merge(store.get(pages[i].page, Tree).entries, hit.get(i, {}))
        last_page = i + 1 == len(pages)
        for j, e in enumerate(entries):
            pending.append(e)
            end = last_page and j + 1 == len(entries)
            if is_boundary(e.name) or len(pending) >= MAX_PAGE or end:
                new_pages.append(_page(pending, out))
                pending = []
        i += 1
    if pending:  # the last old page lost all its entries
        new_pages.append(_page(pending, out))
    oid, data = object_id(TreeIndex(tuple(new_pages)))
    out.append((oid, data))
    return oid, sum(p.count for p in new_pages)


def _update_rows(
    old: ObjectId | None, rows: list[Row], changes: Changes, out: NewObjects
) -> tuple[ObjectId, int]:
    """update_dir of a plain tree given as wire rows: the rows no change names are kept as
    they are (no entry object each); the result is byte-identical to build_dir's."""
    if not changes and old is not None:
        return old, len(rows)
    fresh = [e for e in changes.values() if e is not None]
    merged = [r for r in rows if r[0] not in changes]
    if fresh:
        merged.extend(tuple(e.to_wire()) for e in fresh)
        merged.sort(key=itemgetter(0))
    if len(merged) > PAGE_LIMIT:
        return build_dir([entry_of(r) for r in merged], out), len(merged)
    oid, data = tree_from_rows(merged, fresh)
    out.append((oid, data))
    return oid, len(merged)


def _page(entries: list[TreeEntry], out: NewObjects) -> PageRef:
    page = Tree(tuple(entries))
    pid, data = object_id(page)
    out.append((pid, data))
    return PageRef(entries[0].name, pid, len(entries))


def _has(store: ObjectReader, pages: tuple[PageRef, ...], firsts: list[bytes], name: bytes) -> bool:
    i = bisect.bisect_right(firsts, name) - 1
    if i < 0:
        return False
    entries = store.get(pages[i].page, Tree).entries
    k = bisect.bisect_left([e.name for e in entries], name)
    return k < len(entries) and entries[k].name == name
