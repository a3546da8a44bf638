"""A staged view: the store as a commit about to be made will leave it, readable by a validator
before the transaction that makes the commit durable commits.

`write_commit` builds one inside its write transaction, after the chunk locations, the new
objects and the commit are put and before the branch moves: what the view reads is exactly
what the commit would publish. A validator (a protected-branch rule, a hook, a schema
check) raises an `MlgitError` to refuse; the transaction then aborts and nothing changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlgitfs.meta import db
from mlgitfs.meta.env import ReadTxn
from mlgitfs.model.decode import decode
from mlgitfs.model.ids import ChunkId, ObjectId
from mlgitfs.model.objects import Commit, KindT, Object, of_kind
from mlgitfs.store.facade import Store


@dataclass(frozen=True, slots=True)
class StagedView:
    """Objects and chunks as the open transaction `txn` sees them (the staged ones included).

    Valid only while the validator runs: the transaction is not the view's to keep."""

    store: Store
    txn: ReadTxn
    repo: str
    branch: str
    commit_id: ObjectId
    commit: Commit
    new_objects: frozenset[bytes]  # ids of the objects this commit adds to the store

    def get_object(self, oid: ObjectId) -> Object:
        data = db.get_object_bytes(self.txn, oid)
        if data is None:
            return self.store.get_object(oid)  # only on a remote: fetched on demand
        return decode(data, oid)

    def get(self, oid: ObjectId, kind: type[KindT]) -> KindT:
        return of_kind(self.get_object(oid), oid, kind)

    def read_chunk(self, cid: ChunkId) -> bytes:
        loc = self.store.chunks.location(self.txn, cid)
        if loc is None:  # not local, nor staged: a remote's (fetched on demand)
            return self.store.read_chunk(cid)
        return self.store.chunks.read_at(cid, loc)

    def is_new(self, oid: ObjectId) -> bool:
        return bytes(oid) in self.new_objects


Validator = Callable[[StagedView], None]
