"""History walks: log with its filters (ancestry and merge bases: graph.py).

`log` walks newest first (by commit time, ties by id) and keeps the commits that pass every
filter of a `LogQuery`. The walk reads the commit-graph index (repo/commitindex.py) where
it can: time, parents and tree without decoding the commit, and for `paths` the changed-path
filter, so a commit that surely did not touch any of the paths costs a few hashes, not a
tree diff. Only on a filter's "maybe" (or for a commit without a record) are the two
entries diffed, which keeps the answer exact. Cheap tests run first: times, the filters,
then the commit's message, author, metadata and inputs, and the exact path check last.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mlgitfs.meta import commitgraph
from mlgitfs.model import bloom
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import Commit
from mlgitfs.repo.commitindex import EntryCache, path_changed
from mlgitfs.repo.graph import reachable_only_from
from mlgitfs.store.facade import Store


def walk_commits(store: Store, heads: Sequence[ObjectId]) -> Iterator[tuple[ObjectId, Commit]]:
    """Every commit reachable from `heads`, newest first (by commit time), each once."""
    seen: set[bytes] = set()
    heap: list[tuple[int, bytes]] = []
    for h in heads:
        if bytes(h) not in seen:
            seen.add(bytes(h))
            heapq.heappush(heap, (-store.commit(h).time_ns, bytes(h)))
    while heap:
        _, raw = heapq.heappop(heap)
        oid = ObjectId(raw)
        commit = store.commit(oid)
        yield oid, commit
        for p in commit.parents:
            if bytes(p) not in seen:
                seen.add(bytes(p))
                heapq.heappush(heap, (-store.commit(p).time_ns, bytes(p)))


@dataclass(frozen=True, slots=True)
class LogQuery:
    """What `log` keeps: a commit passes when it passes every filter given."""

    paths: tuple[tuple[bytes, ...], ...] = ()  # changed one of these (vs its first parent)
    grep: re.Pattern[str] | None = None  # searched in the message
    author: re.Pattern[str] | None = None  # searched in the author
    since_ns: int | None = None  # made at or after
    until_ns: int | None = None  # made at or before
    meta: tuple[tuple[str, str], ...] = ()  # has each of these metadata items
    inputs: tuple[ObjectId, ...] = ()  # made from each of these (through inputs, transitively)
    exclude: tuple[ObjectId, ...] = ()  # A of a range A..B: nothing reachable from these
    limit: int | None = None
    use_index: bool = True  # False: walk commit objects and diff every commit (bench, tests)


_RUN = 256  # records read ahead along first parents in one transaction


@dataclass(frozen=True, slots=True)
class Node:
    time_ns: int
    parents: tuple[ObjectId, ...]
    tree: ObjectId
    indexed: bool
    paths: bytes | None  # the filter; None: every path maybe


class Graph:
    """Commit nodes from the index, else from the commit objects."""

    def __init__(self, store: Store, use_index: bool) -> None:
        self.store = store
        self.use_index = use_index
        self.nodes: dict[bytes, Node] = {}

    def node(self, oid: bytes) -> Node:
        n = self.nodes.get(oid)
        if n is None:
            n = self._load(oid)
        return n

    def changed(self, oid: bytes) -> frozenset[bytes] | None:
        """The exact changed paths of an indexed commit (None: not kept, or not indexed)."""
        n = self.node(oid)
        if not n.indexed or n.paths is None:
            return None
        with self.store.env.read() as txn:
            return commitgraph.get_changed(txn, oid)

    def touched(self, oid: bytes, path: Sequence[bytes], cache: EntryCache | None = None) -> bool:
        """Exactly: whether commit `oid` changed `path` against its first parent; from the
        index's exact paths when it keeps them, else by comparing the two entries."""
        exact = self.changed(oid)
        if exact is not None:
            return b"/".join(path) in exact
        n = self.node(oid)
        parent = self.node(bytes(n.parents[0])).tree if n.parents else None
        return path_changed(self.store, parent, n.tree, path, cache)

    def _load(self, oid: bytes) -> Node:
        if self.use_index:
            # One short read transaction for a run of first parents: a walk asks for them
            # next, and opening a transaction per commit would cost as much as the rest.
            with self.store.env.read() as txn:
                at: bytes | None = oid
                for _ in range(_RUN):
                    if at is None or at in self.nodes:
                        break
                    rec = commitgraph.get_record(txn, at)
                    if rec is None:
                        break
                    self.nodes[at] = Node(rec.time_ns, rec.parents, rec.tree, True, rec.paths)
                    at = bytes(rec.parents[0]) if rec.parents else None
            n = self.nodes.get(oid)
            if n is not None:
                return n
        c = self.store.commit(ObjectId(oid))
        n = self.nodes[oid] = Node(c.time_ns, c.parents, c.tree, False, None)
        return n


def walk_ids(graph: Graph, heads: Sequence[ObjectId], only: set[bytes] | None) -> Iterator[bytes]:
    """Ids reachable from `heads` (within `only` when given), newest first, ties by id."""
    seen: set[bytes] = set()
    heap: list[tuple[int, bytes]] = []

    def push(raw: bytes) -> None:
        if raw not in seen and (only is None or raw in only):
            seen.add(raw)
            heapq.heappush(heap, (-graph.node(raw).time_ns, raw))

    for h in heads:
        push(bytes(h))
    while heap:
        _, raw = heapq.heappop(heap)
        yield raw
        for p in graph.node(raw).parents:
            push(bytes(p))


class _MadeFrom:
    """Every commit a commit was made from: its inputs, theirs, and so on."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def __call__(self, commit: Commit) -> frozenset[bytes]:
        out: set[bytes] = set()
        todo = [bytes(i) for _, i in commit.inputs]
        while todo:
            i = todo.pop()
            if i in out:
                continue
            out.add(i)
            if self.store.has_object(ObjectId(i)):
                todo.extend(bytes(x) for _, x in self.store.commit(ObjectId(i)).inputs)
        return frozenset(out)


def log(
    store: Store, heads: Sequence[ObjectId], query: LogQuery = LogQuery()
) -> Iterator[tuple[ObjectId, Commit]]:
    """The commits reachable from `heads` that pass `query`, newest first."""
    if query.limit is not None and query.limit <= 0:
        return
    graph = Graph(store, query.use_index)
    only = reachable_only_from(store, heads, query.exclude) if query.exclude else None
    probes = [(p, bloom.path_hash(b"/".join(p))) for p in query.paths]
    wants_commit = bool(query.grep or query.author or query.meta or query.inputs)
    made_from = _MadeFrom(store)
    entries: EntryCache = {}
    found = 0
    for raw in walk_ids(graph, heads, only):
        node = graph.node(raw)
        if query.since_ns is not None and node.time_ns < query.since_ns:
            continue
        if query.until_ns is not None and node.time_ns > query.until_ns:
            continue
        maybe = probes
        if probes and node.indexed and node.paths is not None:
            bits = node.paths
            maybe = [(p, h) for p, h in probes if bloom.may_contain(bits, h)]
            if not maybe:
                continue
        oid = ObjectId(raw)
        commit = store.commit(oid) if wants_commit else None
        if commit is not None and not _commit_passes(commit, query, made_from):
            continue
        if maybe and not any(graph.touched(raw, p, entries) for p, _ in maybe):
            continue
        yield oid, commit or store.commit(oid)
        found += 1
        if query.limit is not None and found >= query.limit:
            return


def _commit_passes(commit: Commit, q: LogQuery, made_from: _MadeFrom) -> bool:
    if q.grep is not None and not q.grep.search(commit.message):
        return False
    if q.author is not None and not q.author.search(commit.author):
        return False
    if q.meta:
        have = dict(commit.meta)
        if any(have.get(k) != v for k, v in q.meta):
            return False
    if q.inputs:
        sources = made_from(commit)
        if any(bytes(i) not in sources for i in q.inputs):
            return False
    return True
