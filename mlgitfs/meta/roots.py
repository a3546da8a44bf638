"""Every gc root of a store, from one read transaction: what gc must keep and mark from.

Roots are the commits named by refs, by the live reflog entries (old and new ids, so
deleted work can come back until its entries pass the store's reflog expiry, 30 days by
default: meta/reflog.py) and by checkouts (a checkout's overlay is a delta
against its base commit's tree), and the pinned chunks (imported or committed, on no remote
yet). Objects and chunks reachable from these roots are live; the rest may be swept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mlgitfs.meta import checkouts, chunks, db, mergestate
from mlgitfs.meta.env import ReadTxn
from mlgitfs.model.ids import ChunkId, ObjectId


@dataclass(frozen=True, slots=True)
class GcRoots:
    ref_commits: frozenset[ObjectId]
    reflog_commits: frozenset[ObjectId]
    checkout_bases: frozenset[ObjectId]
    pinned_chunks: frozenset[ChunkId]

    @property
    def commits(self) -> frozenset[ObjectId]:
        """Every root commit, whatever names it."""
        return self.ref_commits | self.reflog_commits | self.checkout_bases


def gc_roots(txn: ReadTxn, now_ns: int | None = None, pins: bool = True) -> GcRoots:
    """The roots as of `now_ns` (default: the clock), which decides which reflog entries
    have expired."""
    now = time.time_ns() if now_ns is None else now_ns
    refs: set[ObjectId] = set()
    reflog: set[ObjectId] = set()
    for rec in db.list_repos(txn):
        refs.update(oid for _, oid in db.list_refs(txn, rec.name))
        reflog.update(ObjectId(c) for c in db.reflog_commits(txn, rec.name, now))
    bases = {rec.base for _, _, rec in checkouts.list_checkouts(txn)}
    for _, state in mergestate.list_states(txn):  # a mount's merge: its second parent
        bases.update((state.theirs, state.merge_base, state.old_base))
    # `pins=False`: gc does not mark from pins, and a store's pins can be millions
    pinned = frozenset(ChunkId(c) for c in chunks.pinned(txn)) if pins else frozenset()
    return GcRoots(frozenset(refs), frozenset(reflog), frozenset(bases), pinned)
