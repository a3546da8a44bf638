"""Differences between two trees, skipping identical subtrees and pages by id.

Iterative: one generator per directory level being compared, at most MAX_DEPTH of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from mlgitfs.errors import CorruptObject
from mlgitfs.model.changes import ChangeKind
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import TreeEntry
from mlgitfs.repo.treedelta import differing
from mlgitfs.repo.trees import MAX_DEPTH, ObjectReader, walk


@dataclass(frozen=True, slots=True)
class DiffEntry:
    change: ChangeKind
    path: str
    old: TreeEntry | None
    new: TreeEntry | None
    old_path: str = ""  # where a renamed entry was

    @property
    def old_size(self) -> int:
        return self.old.size if self.old and not self.old.is_dir else 0

    @property
    def new_size(self) -> int:
        return self.new.size if self.new and not self.new.is_dir else 0


def all_below(
    store: ObjectReader, change: ChangeKind, entry: TreeEntry, path: str, dirs: bool = False
) -> Iterator[DiffEntry]:
    """Files and symlinks at or below `entry`, and with `dirs` the directories too."""
    removed = change is ChangeKind.DELETED
    if not entry.is_dir or dirs:
        yield DiffEntry(change, path, entry if removed else None, None if removed else entry)
    if not entry.is_dir:
        return
    for sub, e in walk(store, ObjectId(entry.ref), path.encode("utf-8", "surrogateescape") + b"/"):
        if not e.is_dir or dirs:
            p = sub.decode("utf-8", "surrogateescape")
            yield DiffEntry(change, p, e if removed else None, None if removed else e)


_Sub = tuple[ObjectId, ObjectId, str]  # two directories to compare, and their path


def diff_trees(
    store: ObjectReader, a: ObjectId, b: ObjectId, prefix: str = "", dirs: bool = False
) -> Iterator[DiffEntry]:
    """What changed from tree `a` to tree `b`: files and symlinks whose kind, content or mode
    differ (mtimes are not compared); with `dirs`, directories added, deleted or chmod'ed too
    (a writable mount's status shows those)."""
    stack = [_diff_level(store, a, b, prefix, dirs)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, DiffEntry):
            yield item
        else:
            if len(stack) >= MAX_DEPTH:
                raise CorruptObject(item[2][:80], f"deeper than {MAX_DEPTH} levels")
            stack.append(_diff_level(store, *item, dirs))


def _diff_level(
    store: ObjectReader, a: ObjectId, b: ObjectId, prefix: str, dirs: bool
) -> Iterator[DiffEntry | _Sub]:
    """The differences of one directory level; subdirectories on both sides are handed back
    to `diff_trees` to compare (no recursion)."""
    if a == b:
        return
    ea, eb = differing(store, a, b)
    i = j = 0
    while i < len(ea) or j < len(eb):
        x = ea[i] if i < len(ea) else None
        y = eb[j] if j < len(eb) else None
        if y is None or (x is not None and x.name < y.name):
            assert x is not None
            yield from all_below(
                store,
                ChangeKind.DELETED,
                x,
                prefix + x.name.decode("utf-8", "surrogateescape"),
                dirs,
            )
            i += 1
            continue
        if x is None or y.name < x.name:
            yield from all_below(
                store, ChangeKind.ADDED, y, prefix + y.name.decode("utf-8", "surrogateescape"), dirs
            )
            j += 1
            continue
        i += 1
        j += 1
        path = prefix + x.name.decode("utf-8", "surrogateescape")
        if x == y:
            continue
        if x.is_dir and y.is_dir:
            if dirs and x.mode != y.mode:
                yield DiffEntry(ChangeKind.MODIFIED, path, x, y)
            yield ObjectId(x.ref), ObjectId(y.ref), path + "/"
        elif x.is_dir or y.is_dir:
            yield from all_below(store, ChangeKind.DELETED, x, path, dirs)
            yield from all_below(store, ChangeKind.ADDED, y, path, dirs)
        elif (x.kind, x.ref, x.mode) != (y.kind, y.ref, y.mode):
            yield DiffEntry(ChangeKind.MODIFIED, path, x, y)


def content_key(e: TreeEntry) -> tuple[int, bytes]:
    """What an exact rename keeps: the kind of content and its id (or a symlink's target)."""
    return (1 if e.is_file else int(e.kind), e.ref)


def find_renames(
    deleted: Iterable[tuple[str, TreeEntry]], added: Iterable[tuple[str, TreeEntry]]
) -> dict[str, str]:
    """Exact renames, old path → new path: a deleted and an added file or symlink with the
    same content id, paired only when that id is deleted once and added once (so a rename is
    never a guess among copies)."""
    gone: dict[tuple[int, bytes], list[str]] = {}
    new: dict[tuple[int, bytes], list[str]] = {}
    for path, e in deleted:
        if not e.is_dir:  # directories (a status's `dirs` lines) are never paired
            gone.setdefault(content_key(e), []).append(path)
    for path, e in added:
        if not e.is_dir:
            new.setdefault(content_key(e), []).append(path)
    return {
        olds[0]: new[k][0]
        for k, olds in gone.items()
        if len(olds) == 1 and len(new.get(k, ())) == 1
    }


def with_renames(entries: Iterable[DiffEntry]) -> list[DiffEntry]:
    """A diff's entries with each exact rename as one RENAMED entry at its new path."""
    items = list(entries)
    moves = find_renames(
        ((d.path, d.old) for d in items if d.change is ChangeKind.DELETED and d.old),
        ((d.path, d.new) for d in items if d.change is ChangeKind.ADDED and d.new),
    )
    if not moves:
        return items
    targets = {new: old for old, new in moves.items()}
    old_entries = {d.path: d.old for d in items if d.path in moves}
    out = []
    for d in items:
        if d.change is ChangeKind.DELETED and d.path in moves:
            continue
        if d.change is ChangeKind.ADDED and d.path in targets:
            d = replace(
                d, change=ChangeKind.RENAMED, old=old_entries[targets[d.path]],
                old_path=targets[d.path],
            )  # fmt: skip
        out.append(d)
    return out
