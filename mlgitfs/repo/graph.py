"""The commit graph: generation numbers, ancestry and merge bases.

A commit's generation is 1 + the largest generation of its parents (a root has 1), kept in
LMDB beside the commit (`meta/db.py`, database "generations"), not in the commit object:
the object format stays 1. `write_commit` records it in the commit's own transaction;
commits that arrived otherwise (fetch, clone, stores made before generations existed) get
theirs computed on first need, parents first, and written in one transaction.

Generations let walks stop early: `a` can be an ancestor of `c` only when
gen(a) < gen(c), so a walk looking for `a` never expands a commit at or below gen(a).

Merge bases: the best common ancestors of two commits (those that are not ancestors of
another common ancestor), found by painting down from both heads in generation order until
only commits known to be below a common ancestor remain. A criss-cross history has several;
`merge_base` picks one deterministically: the highest generation, then the lowest commit id.
(git's recursive strategy merges them into a virtual base instead; with exact per-path
three-way merging the difference only shows when the bases disagree about the same path,
and then the conflict is reported against the chosen base.)
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence

from mlgitfs.meta import db
from mlgitfs.model.ids import ObjectId
from mlgitfs.store.facade import Store


def ensure_generations(store: Store, oids: Iterable[ObjectId]) -> dict[bytes, int]:
    """The generations of `oids`, computing and storing any that are missing (with those of
    their ancestors that are missing too)."""
    want = [ObjectId(bytes(o)) for o in oids]
    known: dict[bytes, int] = {}
    with store.env.read() as txn:
        for w in want:
            g = db.get_generation(txn, w)
            if g is not None:
                known[bytes(w)] = g
    missing = [w for w in want if bytes(w) not in known]
    if not missing:
        return known
    computed: dict[bytes, int] = {}

    def lookup(o: bytes) -> int | None:
        if o in known:
            return known[o]
        if o in computed:
            return computed[o]
        with store.env.read() as txn:
            g = db.get_generation(txn, ObjectId(o))
        if g is not None:
            known[o] = g
        return g

    stack: list[bytes] = [bytes(o) for o in missing]
    while stack:
        o = stack[-1]
        if lookup(o) is not None:
            stack.pop()
            continue
        parents = [bytes(p) for p in store.commit(ObjectId(o)).parents]
        pending = [p for p in parents if lookup(p) is None]
        if pending:
            stack.extend(pending)
            continue
        computed[o] = 1 + max((lookup(p) or 0 for p in parents), default=0)
        stack.pop()
    with store.env.write() as txn:
        for o, g in computed.items():
            db.put_generation(txn, ObjectId(o), g)
    known.update(computed)
    return {bytes(w): known[bytes(w)] for w in want}


def generation(store: Store, oid: ObjectId) -> int:
    return ensure_generations(store, [oid])[bytes(oid)]


class _Gens:
    """Generation lookups for a walk whose heads were passed to `ensure_generations` (every
    ancestor of a commit with a generation has one too)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.cache: dict[bytes, int] = {}

    def __call__(self, oid: bytes) -> int:
        g = self.cache.get(oid)
        if g is None:
            with self.store.env.read() as txn:
                g = db.get_generation(txn, ObjectId(oid))
            if g is None:  # a store written by hand or damaged: compute rather than guess
                g = generation(self.store, ObjectId(oid))
            self.cache[oid] = g
        return g


def is_ancestor(store: Store, ancestor: ObjectId, descendant: ObjectId) -> bool:
    """Whether `ancestor` is reachable from `descendant` (a commit is its own ancestor)."""
    if ancestor == descendant:
        return True
    gens = ensure_generations(store, [ancestor, descendant])
    floor = gens[bytes(ancestor)]
    if gens[bytes(descendant)] <= floor:
        return False
    gen = _Gens(store)
    seen = {bytes(descendant)}
    todo = [bytes(descendant)]
    while todo:
        oid = todo.pop()
        for p in store.commit(ObjectId(oid)).parents:
            raw = bytes(p)
            if raw == bytes(ancestor):
                return True
            # below or at the ancestor's generation nothing can lead to it
            if raw not in seen and gen(raw) > floor:
                seen.add(raw)
                todo.append(raw)
    return False


_ONE, _TWO, _STALE = 1, 2, 4


def merge_bases(store: Store, a: ObjectId, b: ObjectId) -> list[ObjectId]:
    """Every best common ancestor of `a` and `b`, ordered as `merge_base` prefers them."""
    if a == b:
        return [a]
    ensure_generations(store, [a, b])
    gen = _Gens(store)
    flags: dict[bytes, int] = {bytes(a): _ONE, bytes(b): _TWO}
    heap: list[tuple[int, bytes]] = [(-gen(bytes(a)), bytes(a)), (-gen(bytes(b)), bytes(b))]
    heapq.heapify(heap)
    found: list[bytes] = []
    done: dict[bytes, int] = {}  # the flags a commit had when its parents were painted
    # Paint down in generation order (parents after children): a commit painted from both
    # sides is common; its ancestors are marked stale (not best). Stop when only stale
    # commits are left to visit.
    while any(not flags[o] & _STALE for _, o in heap):
        _, oid = heapq.heappop(heap)
        f = flags[oid]
        if f & (_ONE | _TWO) == _ONE | _TWO and not f & _STALE:
            found.append(oid)
            f |= _STALE
            flags[oid] = f
        if done.get(oid) == f:
            continue
        done[oid] = f
        for p in store.commit(ObjectId(oid)).parents:
            raw = bytes(p)
            old = flags.get(raw, 0)
            if old | f != old:
                flags[raw] = old | f
                heapq.heappush(heap, (-gen(raw), raw))
    # A common commit found before its descendant was painted stale may still be an ancestor
    # of another one found: keep only those that are not.
    best = [
        o
        for o in found
        if not any(x != o and is_ancestor(store, ObjectId(o), ObjectId(x)) for x in found)
    ]
    best.sort(key=lambda o: (-gen(o), o))
    return [ObjectId(o) for o in best]


def merge_base(store: Store, a: ObjectId, b: ObjectId) -> ObjectId | None:
    """The merge base of `a` and `b` (None: unrelated histories); see the module note."""
    bases = merge_bases(store, a, b)
    return bases[0] if bases else None


def reachable_only_from(
    store: Store, heads: Sequence[ObjectId], exclude: Sequence[ObjectId]
) -> set[bytes]:
    """Commits reachable from `heads` and from none of `exclude` (a range `A..B`).

    Walks down from both sides in generation order: a commit is popped only after every
    commit above it that the walk reaches, so its "excluded" mark is final when it is; the
    walk stops once only excluded commits are queued, having visited about the commits of
    the range and its boundary, not the whole of the excluded history."""
    everything = [*heads, *exclude]
    if not everything:
        return set()
    ensure_generations(store, everything)
    gen = _Gens(store)
    excluded: dict[bytes, bool] = {}
    for h in heads:
        excluded.setdefault(bytes(h), False)
    for x in exclude:
        excluded[bytes(x)] = True
    heap = [(-gen(o), o) for o in excluded]
    heapq.heapify(heap)
    queued = set(excluded)
    live = sum(1 for o in queued if not excluded[o])  # queued and not excluded
    out: set[bytes] = set()
    while heap and live:
        _, oid = heapq.heappop(heap)
        queued.discard(oid)
        ex = excluded[oid]
        if not ex:
            live -= 1
            out.add(oid)
        for p in store.commit(ObjectId(oid)).parents:
            raw = bytes(p)
            old = excluded.get(raw)
            if raw in queued:
                if ex and not old:
                    excluded[raw] = True
                    live -= 1
                continue
            if old is None:
                excluded[raw] = ex
                queued.add(raw)
                live += 0 if ex else 1
                heapq.heappush(heap, (-gen(raw), raw))
    return out
