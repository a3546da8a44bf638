"""The entries that differ between two directories, for diff and merge, remembered by the
pair of ids.

Two plain trees (not paged) are compared as wire rows: each side is decoded to one tuple per
entry (checked as `decode` checks it), the rows are compared as sets, and an entry object
is built only for the rows that differ: a 1% change of a large version leaves every
directory with a few changed names among a thousand equal ones. Paged directories skip the
pages whose ids are equal on both sides and compare the rest entry by entry.

Ids are content hashes, so the answer for a pair of ids never changes: it is kept in a
bounded table, and what a merge computed once (its rename pass's diffs; the merged
directories against ours, which it knows without decoding them) is not computed again by
its walk or by the commit's changed-path record.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from mlgitfs.model.decode import Row, entry_of, tree_rows
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import TreeEntry
from mlgitfs.repo.trees import DirView, ObjectReader

Delta = tuple[list[TreeEntry], list[TreeEntry]]  # (only in a, only in b), each by name

MAX_HELD = 1 << 20  # entries held by the table before it is emptied


@runtime_checkable
class RawReader(Protocol):
    """A reader that can also hand over an object's stored bytes (unchecked; None when it
    does not hold them locally)."""

    def get_raw(self, oid: ObjectId) -> bytes | None: ...


def plain_rows(reader: ObjectReader, oid: ObjectId) -> list[Row] | None:
    """The rows of the plain tree `oid`, or None: not a plain tree, or the reader cannot
    give its bytes (the caller then reads it as an object)."""
    if not isinstance(reader, RawReader):
        return None
    data = reader.get_raw(oid)
    return None if data is None else tree_rows(data, oid)


def drop_shared(ea: list[TreeEntry], eb: list[TreeEntry]) -> Delta:
    """Both lists without the entries that are one object on both sides (decoding shares an
    entry that is the same in several trees): those are equal, so nothing changed there."""
    shared = set(map(id, ea)).intersection(map(id, eb))
    if not shared:
        return ea, eb
    return [e for e in ea if id(e) not in shared], [e for e in eb if id(e) not in shared]


class _Table:
    def __init__(self) -> None:
        self.deltas: dict[tuple[bytes, bytes], Delta] = {}
        self.held = 0

    def put(self, key: tuple[bytes, bytes], delta: Delta) -> None:
        n = len(delta[0]) + len(delta[1])
        if self.held + n > MAX_HELD:
            self.deltas.clear()
            self.held = 0
        self.deltas[key] = delta
        self.held += n


_TABLE = _Table()


def remember(a: ObjectId, b: ObjectId, delta: Delta) -> None:
    """Record the delta between directories `a` and `b` (a merge that built `b` from `a`
    knows it). Every entry whose fields differ must be in it; the lists are not copied."""
    if a != b:
        _TABLE.put((bytes(a), bytes(b)), delta)


def differing(reader: ObjectReader, a: ObjectId | None, b: ObjectId | None) -> Delta:
    """The entries of directory `a` and of directory `b` (None: empty) that are not in the
    other, in name order; an entry equal on both sides may remain (a page path keeps those
    it cannot drop by identity): callers skip equal pairs. Do not mutate the lists."""
    if a is not None and b is not None:
        if a == b:
            return [], []
        got = _TABLE.deltas.get((bytes(a), bytes(b)))
        if got is not None:
            return got
    delta = _by_rows(reader, a, b) or _by_pages(reader, a, b)
    if a is not None and b is not None:
        _TABLE.put((bytes(a), bytes(b)), delta)
    return delta


def _sets_delta(sa: set[Row], sb: set[Row]) -> Delta:
    # set differences reuse the hashes the sets hold (a row is hashed once); names are
    # unique on each side, so sorting rows sorts by name
    return list(map(entry_of, sorted(sa - sb))), list(map(entry_of, sorted(sb - sa)))


def warm(reader: ObjectReader, base: ObjectId, ours: ObjectId, theirs: ObjectId) -> None:
    """Compute the deltas base→ours and base→theirs of every directory where both sides
    differ from the base, reading each such base directory once (a merge's rename pass
    diffs the base against each side in turn, and its walk compares them again)."""
    todo = [(base, ours, theirs)]
    while todo:
        b, o, t = todo.pop()
        if b in (o, t) or (bytes(b), bytes(o)) in _TABLE.deltas:
            continue
        rb = plain_rows(reader, b)
        ro = plain_rows(reader, o) if rb is not None else None
        rt = plain_rows(reader, t) if ro is not None else None
        if rb is None or ro is None or rt is None:
            continue  # paged or unusual: the diffs take the page path
        sb = set(rb)
        bo, bt = _sets_delta(sb, set(ro)), _sets_delta(sb, set(rt))
        remember(b, o, bo)
        remember(b, t, bt)
        o_dirs = {e.name: e.ref for e in bo[1] if e.is_dir}
        t_dirs = {e.name: e.ref for e in bt[1] if e.is_dir}
        for e in bo[0]:
            if e.is_dir and e.name in o_dirs and e.name in t_dirs:
                refs = (e.ref, o_dirs[e.name], t_dirs[e.name])
                todo.append((ObjectId(refs[0]), ObjectId(refs[1]), ObjectId(refs[2])))


def _by_rows(reader: ObjectReader, a: ObjectId | None, b: ObjectId | None) -> Delta | None:
    ra = plain_rows(reader, a) if a is not None else []
    if ra is None:
        return None
    rb = plain_rows(reader, b) if b is not None else []
    if rb is None:
        return None
    return _sets_delta(set(ra), set(rb))


def _by_pages(reader: ObjectReader, a: ObjectId | None, b: ObjectId | None) -> Delta:
    va = DirView(reader, a) if a is not None else None
    vb = DirView(reader, b) if b is not None else None
    common = frozenset(va.pages() if va else ()) & frozenset(vb.pages() if vb else ())

    def entries(v: DirView | None) -> list[TreeEntry]:
        return [] if v is None else [e for t in v.page_trees(common) for e in t.entries]

    return drop_shared(entries(va), entries(vb))
