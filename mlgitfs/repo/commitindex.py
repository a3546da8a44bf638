"""The commit-graph index (meta/commitgraph.py): making, reading and rebuilding its records.

A commit "changes" a path when the path's entry differs from the first parent's (a root
commit: from nothing) in kind, content or mode, or, for a directory, when anything below it
does; mtimes alone are not changes (as in `diff`). A record's filter holds every changed
path and its parent directories, so `changed` answers "maybe" for each of them and the
exact check (`path_changed`, a diff of the two entries) settles the rest.

Records are written with the commit (`write_commit`, from the objects about to be stored),
for fetched commits by `index_commits`, and all again by `rebuild` (fsck --rebuild-index).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from mlgitfs.errors import PathNotFound
from mlgitfs.meta import commitgraph
from mlgitfs.meta.commitgraph import GraphRecord
from mlgitfs.model import bloom
from mlgitfs.model.decode import decode
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import Commit, KindT, Object, TreeEntry, of_kind
from mlgitfs.repo.diff import diff_trees
from mlgitfs.repo.trees import ObjectReader, resolve_path, walk
from mlgitfs.store.facade import Store

_BATCH = 256  # records per write transaction when indexing many commits


class PendingObjects:
    """The store as it will be once `new` objects (id → canonical bytes) are written."""

    def __init__(self, store: Store, new: Mapping[bytes, bytes]) -> None:
        self.store = store
        self.new = new
        self.decoded: dict[bytes, Object] = {}

    def get_object(self, oid: ObjectId) -> Object:
        data = self.new.get(bytes(oid))
        if data is None:
            return self.store.get_object(oid)
        obj = self.decoded.get(bytes(oid))
        if obj is None:
            obj = self.decoded[bytes(oid)] = decode(data, oid)
        return obj

    def get_raw(self, oid: ObjectId) -> bytes | None:
        data = self.new.get(bytes(oid))
        return self.store.get_raw(oid) if data is None else data

    def get(self, oid: ObjectId, kind: type[KindT]) -> KindT:
        return of_kind(self.get_object(oid), oid, kind)


def _changed_paths(reader: ObjectReader, old: ObjectId | None, new: ObjectId) -> Iterator[bytes]:
    """Paths that changed from tree `old` (None: empty) to `new`, directories added, deleted
    or chmod'ed included (their parents are added by the caller)."""
    if old is None:
        for path, _ in walk(reader, new):
            yield path
        return
    for d in diff_trees(reader, old, new, dirs=True):
        yield d.path.encode("utf-8", "surrogateescape")


def changed_keys(reader: ObjectReader, old: ObjectId | None, new: ObjectId) -> set[bytes] | None:
    """The paths that changed from tree `old` to `new` and their directories: exactly the
    paths `path_changed` says changed; None over bloom.MAX_KEYS keys."""
    keys: set[bytes] = set()
    for p in _changed_paths(reader, old, new):
        bloom.add_with_parents(keys, p)
        if len(keys) > bloom.MAX_KEYS:
            return None
    return keys


def make_record(reader: ObjectReader, commit: Commit, parent_tree: ObjectId | None) -> GraphRecord:
    """`commit`'s record; `parent_tree` is its first parent's tree (None for a root)."""
    keys = changed_keys(reader, parent_tree, commit.tree)
    return GraphRecord(
        commit.time_ns,
        commit.parents,
        commit.tree,
        None if keys is None else bloom.build(keys),
        None if keys is None else tuple(sorted(keys)),
    )


def record_of(store: Store, commit: Commit) -> GraphRecord:
    parent = store.commit(commit.parents[0]).tree if commit.parents else None
    return make_record(store, commit, parent)


def index_commits(store: Store, oids: Iterable[bytes]) -> int:
    """Write the records `oids` lack (their trees are read, fetched if need be); how many."""
    with store.env.read() as txn:
        todo = [o for o in dict.fromkeys(oids) if commitgraph.get_record(txn, o) is None]
    for i in range(0, len(todo), _BATCH):
        batch = [(o, record_of(store, store.commit(ObjectId(o)))) for o in todo[i : i + _BATCH]]
        with store.env.write() as wtxn:
            for o, rec in batch:
                commitgraph.put_record(wtxn, o, rec)
    return len(todo)


def rebuild(store: Store, oids: Iterable[bytes], everything: bool = True) -> int:
    """Write the records of `oids` again (fsck: every commit it walked), after dropping every
    record (`everything`) or only those of `oids`; how many were written."""
    oids = list(dict.fromkeys(oids))
    with store.env.write() as txn:
        if everything:
            commitgraph.clear(txn)
        else:
            for o in oids:
                commitgraph.delete_record(txn, o)
    return index_commits(store, oids)


def check(store: Store, oid: bytes, commit: Commit) -> str | None:
    """Why `oid`'s record is wrong, or None (also when it has none: the index is optional)."""
    with store.env.read() as txn:
        rec = commitgraph.get_record(txn, oid)
        changed = commitgraph.get_changed(txn, oid)
    if rec is None:
        return None
    want = record_of(store, commit)
    if rec != want or changed != (None if want.changed is None else frozenset(want.changed)):
        return "its commit-graph record disagrees with the commit (run fsck --rebuild-index)"
    return None


# --- path queries ---------------------------------------------------------------------------


def cached_entry(
    reader: ObjectReader, tree: ObjectId | None, path: Sequence[bytes], cache: EntryCache
) -> TreeEntry | None:
    if tree is None:
        return None
    key = (bytes(tree), tuple(path))
    if key not in cache:
        cache[key] = entry_at(reader, tree, path)
    return cache[key]


def entry_at(
    reader: ObjectReader, tree: ObjectId | None, path: Sequence[bytes]
) -> TreeEntry | None:
    """The entry at `path` of `tree`, or None (no such path, or no tree)."""
    if tree is None:
        return None
    try:
        return resolve_path(reader, tree, path)
    except PathNotFound:
        return None


EntryCache = dict[tuple[bytes, tuple[bytes, ...]], TreeEntry | None]


def path_changed(
    reader: ObjectReader,
    old: ObjectId | None,
    new: ObjectId,
    path: Sequence[bytes],
    cache: EntryCache | None = None,
) -> bool:
    """Exactly: whether `path` changed from tree `old` (None: empty) to `new` (module note).
    `cache` keeps the entries found by tree and path: a walk that checks a commit checks its
    parent next, and the parent's tree is then looked up once."""
    if cache is None:
        a, b = entry_at(reader, old, path), entry_at(reader, new, path)
    else:
        a, b = cached_entry(reader, old, path, cache), cached_entry(reader, new, path, cache)
    if a is None or b is None:
        return a is not b
    if a.is_dir and b.is_dir:
        if a.mode != b.mode:
            return True
        return (
            a.ref != b.ref
            and next(diff_trees(reader, ObjectId(a.ref), ObjectId(b.ref), dirs=True), None)
            is not None
        )
    return (a.kind, a.ref, a.mode) != (b.kind, b.ref, b.mode)
