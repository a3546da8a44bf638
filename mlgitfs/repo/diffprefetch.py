"""Fetching, a batch at a time, the trees that diffing commits against their first parents
will read: what a fetch's commit-graph records need (repo/commitindex.py).

Without it each record's diff read its trees one ranged GET at a time as it went: on a clone
of 100 commits with 10 ms per request, 307 sequential requests after the history itself.
Here each round fetches, for every commit, up to CHUNK of the directories its diff reads
next (breadth first) in one batch (`fetch_objects`: neighbours in one request, 16 at a
time), tree indexes' pages a second one, so the rounds follow the depth of the changes,
not their number.

A record gives up beyond bloom.MAX_KEYS changed paths ("too many": every path maybe), so a
commit's prefetch stops once the entries it has seen pass that budget: a clone of a root
commit of 1,000,000 files reads a few directories, not all 1,000 (cost follows what the
record can use, not the version's size). Only a prefetch: the diffs then read what is
local, and whatever this missed is fetched on demand as before.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from mlgitfs.meta import db
from mlgitfs.model import bloom
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import TreeIndex
from mlgitfs.repo.treedelta import differing
from mlgitfs.repo.trees import DirView
from mlgitfs.store.facade import Store

Job = tuple[ObjectId | None, ObjectId]  # (old tree or None: the new one walked whole, new tree)

CHUNK = 32  # directories of one commit's diff fetched per round; its budget is checked between


def prefetch_diffs(store: Store, commits: Iterable[bytes]) -> None:
    """Bring in the trees that diffing each commit of `commits` (all local) against its
    first parent reads, up to the keys its commit-graph record can hold."""
    queues: list[deque[Job]] = []
    for oid in commits:
        c = store.commit(ObjectId(oid))
        old = store.commit(c.parents[0]).tree if c.parents else None
        if old != c.tree:
            queues.append(deque([(old, c.tree)]))
    budgets = [bloom.MAX_KEYS + 1] * len(queues)
    seen: set[Job] = set()
    while True:
        rounds: list[tuple[int, list[Job]]] = []
        for i, q in enumerate(queues):
            batch: list[Job] = []
            while q and budgets[i] > 0 and len(batch) < CHUNK:
                job = q.popleft()
                if job not in seen:
                    seen.add(job)
                    batch.append(job)
            if batch:
                rounds.append((i, batch))
        if not rounds:
            return
        trees = [t for _, batch in rounds for old, new in batch for t in (old, new) if t]
        _fetch(store, trees)
        _fetch(store, _pages(store, trees))
        for i, batch in rounds:
            for job in batch:
                below, keys = _below(store, job)
                budgets[i] -= keys
                queues[i].extend(below)


def _fetch(store: Store, ids: list[ObjectId]) -> None:
    with store.env.read() as txn:
        missing = [bytes(i) for i in dict.fromkeys(ids) if not db.has_object(txn, i)]
    if missing:
        store.remote.fetch_objects(missing)


def _pages(store: Store, trees: list[ObjectId]) -> list[ObjectId]:
    out: list[ObjectId] = []
    for t in trees:
        obj = store.get_object(t)
        if isinstance(obj, TreeIndex):
            out.extend(p.page for p in obj.pages)
    return out


def _below(store: Store, job: Job) -> tuple[list[Job], int]:
    """The pairs of subdirectories the diff of `job` compares next, and the directories it
    walks whole (added or deleted); and how many changed paths this level adds."""
    old, new = job
    if old is None:
        entries = list(DirView(store, new).entries())
        return [(None, ObjectId(e.ref)) for e in entries if e.is_dir], len(entries)
    ea, eb = differing(store, old, new)
    a = {e.name: e for e in ea}
    b = {e.name: e for e in eb}
    out: list[Job] = []
    names = a.keys() | b.keys()
    for name in sorted(names):
        x, y = a.get(name), b.get(name)
        if x is not None and y is not None and x.is_dir and y.is_dir:
            if x.ref != y.ref:
                out.append((ObjectId(x.ref), ObjectId(y.ref)))
            continue
        out.extend((None, ObjectId(e.ref)) for e in (x, y) if e is not None and e.is_dir)
    return out, len(names)
