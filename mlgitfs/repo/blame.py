"""Blame of a directory: for each entry, the commit that last changed it.

"Last changed" is what `log -n 1 --path DIR/NAME` answers: the first commit, in log order
(newest first, every parent followed), whose entry at the path differs from its first
parent's (history.py). One walk answers every entry: a commit whose changed-path filter
says DIR surely did not change costs a few hashes; on "maybe" the directory is diffed
against the first parent's (exactly, skipping identical pages), and the entries that
changed are settled there.

Exact renames are followed: when an entry first appears in a commit as the new path of an
exact rename (a deleted and an added file with the same content id, each unique in that
commit's diff, as `diff` pairs them), blame goes on with the old path, so a file moved
without a change keeps the commit that last changed its content.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from mlgitfs.model import bloom
from mlgitfs.model.changes import ChangeKind
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import TreeEntry
from mlgitfs.repo.commitindex import EntryCache, cached_entry
from mlgitfs.repo.diff import diff_trees, with_renames
from mlgitfs.repo.history import Graph, walk_ids
from mlgitfs.repo.trees import DirView, resolve_path
from mlgitfs.store.facade import Store


@dataclass(frozen=True, slots=True)
class BlameLine:
    entry: TreeEntry  # the entry as the blamed version has it
    commit: ObjectId  # the commit that last changed it
    path: bytes  # where it was then ("a/b"; differs from today's after a rename)


def _split(path: bytes) -> tuple[bytes, ...]:
    return tuple(path.split(b"/")) if path else ()


def _dir_of(path: bytes) -> bytes:
    cut = path.rfind(b"/")
    return path[:cut] if cut > 0 else b""


def blame_dir(
    store: Store, head: ObjectId, dir_path: Sequence[bytes], use_index: bool = True
) -> list[BlameLine]:
    """Each entry of the directory `dir_path` of `head`, with the commit that last changed it
    (in name order)."""
    commit = store.commit(head)
    root = commit.tree
    ref = root if not dir_path else ObjectId(_dir_entry(store, root, dir_path).ref)
    base = b"/".join(dir_path)
    entries = list(DirView(store, ref).entries())
    # today's name → the path being followed (an old path after a rename)
    follow = {e.name: (base + b"/" + e.name if base else e.name) for e in entries}
    found: dict[bytes, tuple[ObjectId, bytes]] = {}
    graph = Graph(store, use_index)
    cache: EntryCache = {}
    last: bytes | None = None
    for raw in walk_ids(graph, [head], None):
        if not follow:
            break
        last = raw
        node = graph.node(raw)
        parent = graph.node(bytes(node.parents[0])).tree if node.parents else None
        dirs = {_dir_of(p) for p in follow.values()}
        if node.indexed and node.paths is not None:
            bits = node.paths
            dirs = {d for d in dirs if not d or bloom.may_contain(bits, bloom.path_hash(d))}
            if not dirs:
                continue
        changed = [
            (name, p)
            for name, p in follow.items()
            if _dir_of(p) in dirs and graph.touched(raw, _split(p), cache)
        ]
        if not changed:
            continue
        renames = _renames(store, parent, node.tree, [p for _, p in changed], cache)
        for name, p in changed:
            old = renames.get(p)
            if old is not None:
                follow[name] = old
            else:
                found[name] = (ObjectId(raw), p)
                del follow[name]
    for name, p in follow.items():  # only when the walk ended early: never in a sound store
        found[name] = (ObjectId(last or bytes(head)), p)
    return [BlameLine(e, *found[e.name]) for e in entries]


def _dir_entry(store: Store, root: ObjectId, path: Sequence[bytes]) -> TreeEntry:
    entry = resolve_path(store, root, path)
    assert entry is not None and entry.is_dir  # the caller checked it
    return entry


def _renames(
    store: Store,
    old: ObjectId | None,
    new: ObjectId,
    paths: Iterable[bytes],
    cache: EntryCache,
) -> dict[bytes, bytes]:
    """new path → old path, for those of `paths` that are added files or symlinks paired by
    an exact rename in the diff from `old` to `new`."""
    added = [p for p in paths if _absent(store, old, p, cache)]
    if not added or old is None:
        return {}
    want = {p.decode("utf-8", "surrogateescape") for p in added}
    out = {}
    for d in with_renames(diff_trees(store, old, new)):
        if d.change is ChangeKind.RENAMED and d.path in want:
            out[d.path.encode("utf-8", "surrogateescape")] = d.old_path.encode(
                "utf-8", "surrogateescape"
            )
    return out


def follow_rename(
    store: Store, old: ObjectId | None, new: ObjectId, path: bytes, cache: EntryCache
) -> bytes | None:
    """The old path of `path` when it is the new path of an exact rename from tree `old` to
    `new` (None: it is not)."""
    return _renames(store, old, new, [path], cache).get(path)


def _absent(store: Store, tree: ObjectId | None, path: bytes, cache: EntryCache) -> bool:
    return cached_entry(store, tree, _split(path), cache) is None


def path_at_ancestor(
    store: Store, head: ObjectId, ancestor: ObjectId, path: bytes, use_index: bool = True
) -> bytes | None:
    """Where the file at `path` of `head` was in `ancestor`, following exact renames along
    `head`'s first parents (as blame does); None when `ancestor` is not on that chain. The
    changed-path filters pass over the commits that surely did not touch the path."""
    graph = Graph(store, use_index)
    cache: EntryCache = {}
    follow, raw, stop = path, bytes(head), bytes(ancestor)
    while raw != stop:
        node = graph.node(raw)
        if not node.parents:
            return None
        parent = bytes(node.parents[0])
        bits = node.paths if node.indexed else None
        if bits is None or bloom.may_contain(bits, bloom.path_hash(follow)):
            before = graph.node(parent).tree
            if graph.touched(raw, _split(follow), cache):
                follow = follow_rename(store, before, node.tree, follow, cache) or follow
        raw = parent
    return follow


def file_history(
    store: Store, head: ObjectId, path: bytes, use_index: bool = True
) -> Iterator[tuple[ObjectId, bytes, TreeEntry | None, TreeEntry | None]]:
    """The commits that changed the file at `path` of `head`, in log order, each as (commit,
    the file's path then, its entry there, its entry in the first parent), following exact
    renames back (a commit that only moved the file is not one). The changed-path filters
    pass over the commits that surely did not touch it. Stop reading when done: the walk
    is lazy."""
    graph = Graph(store, use_index)
    cache: EntryCache = {}
    follow = path
    for raw in walk_ids(graph, [head], None):
        node = graph.node(raw)
        bits = node.paths if node.indexed else None
        if bits is not None and not bloom.may_contain(bits, bloom.path_hash(follow)):
            continue
        parent = graph.node(bytes(node.parents[0])).tree if node.parents else None
        parts = _split(follow)
        if not graph.touched(raw, parts, cache):
            continue
        old = follow_rename(store, parent, node.tree, follow, cache)
        if old is not None:  # moved unchanged: what it holds is as it was at the old path
            follow = old
            continue
        now = cached_entry(store, node.tree, parts, cache)
        yield ObjectId(raw), follow, now, cached_entry(store, parent, parts, cache)
