"""A writable mount's merge in progress (merge --into MOUNTPOINT, update), kept in LMDB.

`merges` DB, key: the checkout id (8 bytes big-endian); value: one msgpack record
`[1, kind, theirs, merge base, old base, ours tree, merged tree, label, [path...],
[conflict...]]`. Written in the same transaction as the overlay records the merge changes,
deleted in the transaction of the commit that concludes it or of the abort that undoes it
(docs/design.md, "Merges into a writable mount"). A conflict is
`[path, kind, detail, base entry, ours entry, theirs entry, [cell...]]`, each entry a tree
entry's wire form or None, each cell `[key, column, base, ours, theirs, kind]` of a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlgitfs.errors import CorruptObject
from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import MERGES
from mlgitfs.model import codec
from mlgitfs.model.conflicts import CellConflict as Cell
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import EntryKind, TreeEntry

FORMAT = 1
MERGE = "merge"  # merge --into MOUNTPOINT: the commit that concludes it has two parents
UPDATE = "update"  # update MOUNTPOINT: the base moved to the branch head; one parent


@dataclass(frozen=True, slots=True)
class ConflictRecord:
    path: bytes
    kind: str  # model/conflicts.py's ConflictKind value
    detail: str
    base: TreeEntry | None
    ours: TreeEntry | None
    theirs: TreeEntry | None
    cells: tuple[Cell, ...] = ()


@dataclass(slots=True)
class MergeState:
    kind: str  # MERGE or UPDATE
    theirs: ObjectId  # the commit merged (UPDATE: the branch head moved to)
    merge_base: ObjectId
    old_base: ObjectId  # the checkout's base before (UPDATE moves it; abort moves it back)
    ours_tree: ObjectId  # the mount's tree before the merge, overlay included
    merged_tree: ObjectId
    label: str  # how the user named theirs
    paths: list[bytes] = field(default_factory=list)  # what the merge changed, as restored
    conflicts: list[ConflictRecord] = field(default_factory=list)


def _entry(v: Any) -> TreeEntry | None:
    if v is None:
        return None
    name, kind, mode, size, mtime, ref = v
    return TreeEntry(bytes(name), EntryKind(kind), int(mode), int(size), int(mtime), bytes(ref))


def _wire(e: TreeEntry | None) -> Any:
    return None if e is None else e.to_wire()


def encode(s: MergeState) -> bytes:
    return codec.pack(
        [
            FORMAT, s.kind, bytes(s.theirs), bytes(s.merge_base), bytes(s.old_base),
            bytes(s.ours_tree), bytes(s.merged_tree), s.label, list(s.paths),
            [
                [c.path, c.kind, c.detail, _wire(c.base), _wire(c.ours), _wire(c.theirs),
                 [[x.key, x.column, x.base, x.ours, x.theirs, x.kind] for x in c.cells]]
                for c in s.conflicts
            ],
        ]
    )  # fmt: skip


def decode(data: bytes) -> MergeState:
    v = codec.unpack(data, "merge state")
    try:
        fmt, kind, theirs, mbase, old, ours, merged, label, paths, conflicts = v
        if fmt != FORMAT or kind not in (MERGE, UPDATE):
            raise ValueError("format")
        recs = [
            ConflictRecord(
                bytes(p), str(k), str(d), _entry(b), _entry(o), _entry(t),
                tuple(Cell(str(a), str(col), bb, oo, tt, str(kk)) for a, col, bb, oo, tt, kk in c),
            )
            for p, k, d, b, o, t, c in conflicts
        ]  # fmt: skip
        t, mb, ob, ot, mt = (ObjectId(bytes(x)) for x in (theirs, mbase, old, ours, merged))
        return MergeState(str(kind), t, mb, ob, ot, mt, str(label), [bytes(p) for p in paths], recs)
    except (ValueError, TypeError) as exc:
        raise CorruptObject("merge state", "malformed") from exc


def _key(checkout_id: int) -> bytes:
    return checkout_id.to_bytes(8, "big")


def get(txn: ReadTxn, checkout_id: int) -> MergeState | None:
    data = txn.get(MERGES, _key(checkout_id))
    return None if data is None else decode(data)


def put(txn: WriteTxn, checkout_id: int, state: MergeState) -> None:
    txn.put(MERGES, _key(checkout_id), encode(state))


def clear(txn: WriteTxn, checkout_id: int) -> None:
    txn.delete(MERGES, _key(checkout_id))


def list_states(txn: ReadTxn) -> list[tuple[int, MergeState]]:
    return [(int.from_bytes(k, "big"), decode(v)) for k, v in txn.scan(MERGES)]
