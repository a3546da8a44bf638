"""A commit that raced a gc's sweep checks that what it reuses is still there.

A writer decides early what the store has already (a chunk, a file's manifest, an
unchanged subtree) and names it without writing it again. A gc's sweep may remove such a
thing between that decision and the commit's transaction if nothing reached it when the gc
marked. The writer read the gc epoch before its first lookup (SegmentWriter.gc_epoch); its
commit transaction compares. Equal: no sweep ran in between, nothing to check. Moved: it
walks what it adds (its new objects) and checks that each thing they name outside
themselves is in the store or on a remote; anything missing refuses the commit (nothing is
written, the branch does not move) with a retryable ConflictError. Within the walk, an
object the store had is not entered: a sweep removes only what nothing live reaches, so a
present, live object's own references are present too.
"""

from __future__ import annotations

from collections.abc import Iterable

from mlgitfs.errors import ConflictError
from mlgitfs.meta import chunks, db, gcstate
from mlgitfs.meta.env import ReadTxn
from mlgitfs.model.decode import decode
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.objects import EntryKind, Manifest, Tree, TreeIndex
from mlgitfs.store import remotedb
from mlgitfs.store.packs import CHUNKS, META


def check_reuse(
    txn: ReadTxn,
    epoch: int,
    roots: Iterable[bytes],
    new_objects: Iterable[tuple[ObjectId, bytes]],
) -> None:
    """Raise ConflictError if a sweep ran since `epoch` and removed something `roots` (the
    new tree, the parents) reach through `new_objects`."""
    if gcstate.epoch(txn) == epoch:
        return
    new = {bytes(oid): data for oid, data in new_objects}
    seen: set[bytes] = set()
    stack = [bytes(r) for r in roots]
    while stack:
        oid = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        data = new.get(oid)
        if data is None:
            if not db.has_object(txn, oid) and not remotedb.on_any_remote(txn, META, oid):
                _refuse(oid)
            continue
        obj = decode(data, oid)
        if isinstance(obj, Tree):
            for e in obj.entries:
                if e.kind is EntryKind.FILE:
                    _chunk(txn, e.ref)
                elif e.kind in (EntryKind.DIR, EntryKind.CHUNKED):
                    stack.append(bytes(e.ref))
        elif isinstance(obj, TreeIndex):
            stack.extend(bytes(p.page) for p in obj.pages)
        elif isinstance(obj, Manifest):
            for c in obj.chunks:
                _chunk(txn, bytes(c.id))


def _chunk(txn: ReadTxn, cid: bytes) -> None:
    if not chunks.has_chunk(txn, cid) and not remotedb.on_any_remote(txn, CHUNKS, cid):
        _refuse(cid)


def _refuse(oid: bytes) -> None:
    raise ConflictError(
        f"a gc removed {short_hex(oid)}, which this commit reuses, while the commit was "
        "being made; nothing was committed: run it again"
    )
