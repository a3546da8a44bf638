"""History walks: log, optionally limited to a path (ancestry and merge bases: graph.py)."""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence

from mlgitfs.errors import PathNotFound
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import Commit, TreeEntry
from mlgitfs.repo.trees import resolve_path
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


def _entry_at(store: Store, commit: Commit, path: Sequence[bytes]) -> TreeEntry | None:
    try:
        return resolve_path(store, commit.tree, path)
    except PathNotFound:
        return None


def log(
    store: Store, head: ObjectId, path: Sequence[bytes] = (), limit: int | None = None
) -> list[tuple[ObjectId, Commit]]:
    out = []
    for oid, commit in walk_commits(store, [head]):
        if path:
            here = _entry_at(store, commit, path)
            before = (
                _entry_at(store, store.commit(commit.parents[0]), path) if commit.parents else None
            )
            if here == before:
                continue
        out.append((oid, commit))
        if limit is not None and len(out) >= limit:
            break
    return out
