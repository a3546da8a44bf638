"""The tree edits of a merge: a reader over the objects it built and not wrote, entries put
or removed at paths, and the rewrite that follows one side's renames (repo/merge.py's module
note says when)."""

from __future__ import annotations

from dataclasses import replace

from mlgitfs.errors import PathNotFound
from mlgitfs.model.changes import ChangeKind
from mlgitfs.model.decode import decode
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import EntryKind, KindT, Object, TreeEntry, of_kind
from mlgitfs.repo.diff import DiffEntry, diff_trees, find_renames
from mlgitfs.repo.treedelta import warm
from mlgitfs.repo.treeedit import update_dir
from mlgitfs.repo.trees import DirView, NewObjects, ObjectReader, resolve_path
from mlgitfs.store.facade import Store

DIR_MODE = 0o755  # a directory the rename step has to create


def _files(entries: list[DiffEntry]) -> tuple[dict[str, TreeEntry], dict[str, TreeEntry]]:
    deleted = {d.path: d.old for d in entries if d.change is ChangeKind.DELETED and d.old}
    added = {d.path: d.new for d in entries if d.change is ChangeKind.ADDED and d.new}
    return deleted, added


def split_path(path: str) -> tuple[bytes, ...]:
    """A slash-separated path as the names edit_paths takes."""
    return tuple(path.encode("utf-8", "surrogateescape").split(b"/"))


class PendingReader:
    """The store plus the objects a merge has built and not written (an ObjectReader); a
    pending object is decoded only when asked for."""

    def __init__(self, store: Store, out: NewObjects) -> None:
        self.store = store
        self.out = out
        self._raw: dict[bytes, bytes] = {}
        self._mine: dict[bytes, Object] = {}
        self._seen = 0

    def get_object(self, oid: ObjectId) -> Object:
        key = bytes(oid)
        obj = self._mine.get(key)
        if obj is not None:
            return obj
        self._catch_up()
        data = self._raw.get(key)
        if data is None:
            return self.store.get_object(oid)
        obj = self._mine[key] = decode(data, oid)
        return obj

    def get_raw(self, oid: ObjectId) -> bytes | None:
        self._catch_up()
        data = self._raw.get(bytes(oid))
        return self.store.get_raw(oid) if data is None else data

    def _catch_up(self) -> None:
        if self._seen < len(self.out):
            self._raw.update((bytes(i), d) for i, d in self.out[self._seen :])
            self._seen = len(self.out)

    def get(self, oid: ObjectId, kind: type[KindT]) -> KindT:
        return of_kind(self.get_object(oid), oid, kind)


def entry_at(reader: ObjectReader, root: ObjectId, path: str) -> tuple[bool, TreeEntry | None]:
    """(reachable, entry): unreachable when an ancestor of `path` is not a directory."""
    try:
        return True, resolve_path(reader, root, split_path(path))
    except PathNotFound as exc:
        return "not a directory" not in exc.message, None


def edit_paths(
    reader: ObjectReader,
    root: ObjectId | None,
    edits: dict[tuple[bytes, ...], TreeEntry | None],
    out: NewObjects,
    dir_mtime_ns: int = 0,
) -> tuple[ObjectId, int]:
    """`root` (None: empty) with entries put, or removed (None), at paths: (its id, entry
    count). Missing directories are created with mode DIR_MODE and mtime `dir_mtime_ns`;
    emptied ones stay. Only the directories and pages on the edited paths are rewritten."""
    direct: dict[bytes, TreeEntry | None] = {}
    nested: dict[bytes, dict[tuple[bytes, ...], TreeEntry | None]] = {}
    for path, e in edits.items():
        if len(path) == 1:
            direct[path[0]] = None if e is None else replace(e, name=path[0])
        else:
            nested.setdefault(path[0], {})[path[1:]] = e
    for name, sub in nested.items():
        cur = DirView(reader, root).lookup(name) if root is not None else None
        if cur is not None and cur.is_dir:
            ref, count = edit_paths(reader, ObjectId(cur.ref), sub, out, dir_mtime_ns)
            mode, mtime = cur.mode, cur.mtime_ns
        else:
            ref, count = edit_paths(reader, None, sub, out, dir_mtime_ns)
            mode, mtime = DIR_MODE, dir_mtime_ns
        direct[name] = TreeEntry(name, EntryKind.DIR, mode, count, mtime, bytes(ref))
    return update_dir(reader, root, direct, out)


def follow_renames(
    reader: ObjectReader,
    base: ObjectId,
    sides: tuple[ObjectId, ObjectId],
    out: NewObjects,
    conflicts: list[tuple[str, str, str]],
) -> tuple[ObjectId, tuple[ObjectId, ObjectId], dict[str, str]]:
    """Rewrite base and sides so that a change made on one side to a file the other side
    renamed lands on the renamed file (see repo/merge.py's module note). Returns the new base,
    sides, the renames followed, and records rename/rename pairs (source, ours' target,
    theirs')."""
    warm(reader, base, *sides)
    diffs = [list(diff_trees(reader, base, side)) for side in sides]
    files = [_files(d) for d in diffs]
    renames = [find_renames(gone.items(), new.items()) for gone, new in files]
    modified = [
        {d.path: d.new for d in diff if d.change is ChangeKind.MODIFIED and d.new} for diff in diffs
    ]
    for src in sorted(set(renames[0]) & set(renames[1])):
        if renames[0][src] != renames[1][src]:
            conflicts.append((src, renames[0][src], renames[1][src]))
    base_edits: dict[tuple[bytes, ...], TreeEntry | None] = {}
    side_edits: list[dict[tuple[bytes, ...], TreeEntry | None]] = [{}, {}]
    followed: dict[str, str] = {}
    for s in (0, 1):
        other = 1 - s
        for src, dst in sorted(renames[s].items()):
            changed = modified[other].get(src)
            if changed is None:
                continue
            reachable, there = entry_at(reader, sides[other], dst)
            if not reachable or there is not None:
                continue
            base_entry = files[s][0][src]
            base_edits[split_path(src)] = None
            base_edits[split_path(dst)] = base_entry
            side_edits[other][split_path(src)] = None
            side_edits[other][split_path(dst)] = changed
            followed[src] = dst
    if not followed:
        return base, sides, followed
    new_base = edit_paths(reader, base, base_edits, out)[0]
    new_sides = tuple(
        edit_paths(reader, side, edits, out)[0] if edits else side
        for side, edits in zip(sides, side_edits, strict=True)
    )
    return new_base, (new_sides[0], new_sides[1]), followed
