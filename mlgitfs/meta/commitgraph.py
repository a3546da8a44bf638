"""The commit-graph index: per commit, what a history walk needs without decoding the commit.

Derived data, never inside the commit object (the object format is unchanged), kept in the
database "commit_graph" beside "generations": the commit's time, parents and root tree,
and the changed-path filter against its first parent (model/bloom.py), or None when the
commit changed more than bloom.MAX_KEYS paths ("every path maybe"). Beside it, in the
database "changed_paths", the exact set the filter holds (the changed paths and their
directories, sorted), read only when the filter says "maybe": a path-limited log then
confirms a hit without reading a tree. `write_commit` writes
a commit's record in the commit's own transaction, fetch writes those of the commits it
brings, fsck checks them and `fsck --repair-index` rebuilds them all. A commit with no
record is walked from its object and diffed: the index only ever saves work.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from mlgitfs.errors import CorruptObject
from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import CHANGED_PATHS, COMMIT_GRAPH
from mlgitfs.model import codec
from mlgitfs.model.ids import ID_LEN, ObjectId, short_hex

FORMAT = 1


@dataclass(frozen=True, slots=True)
class GraphRecord:
    time_ns: int
    parents: tuple[ObjectId, ...]
    tree: ObjectId
    paths: bytes | None  # the changed-path filter; None: too many changes to filter
    # the keys of the filter, exactly (kept in "changed_paths"; None when not loaded, or
    # when there were too many); not part of `encode`
    changed: tuple[bytes, ...] | None = field(default=None, compare=False)

    def encode(self) -> bytes:
        return codec.pack(
            [FORMAT, self.time_ns, [bytes(p) for p in self.parents], bytes(self.tree), self.paths]
        )

    @classmethod
    def decode(cls, oid: bytes, data: bytes) -> GraphRecord:
        what = f"commit-graph record of {short_hex(oid)}"
        v = codec.unpack(data, what)
        try:
            fmt, time_ns, parents, tree, paths = v
            ok = (
                fmt == FORMAT
                and isinstance(time_ns, int)
                and all(isinstance(p, bytes) and len(p) == ID_LEN for p in parents)
                and isinstance(tree, bytes)
                and len(tree) == ID_LEN
                and (paths is None or (isinstance(paths, bytes) and paths))
            )
        except (TypeError, ValueError) as exc:
            raise CorruptObject(what, "malformed") from exc
        if not ok:
            raise CorruptObject(what, "malformed")
        return cls(time_ns, tuple(ObjectId(p) for p in parents), ObjectId(tree), paths)


def get_record(txn: ReadTxn, oid: bytes) -> GraphRecord | None:
    data = txn.get(COMMIT_GRAPH, bytes(oid))
    return None if data is None else GraphRecord.decode(oid, data)


def put_record(txn: WriteTxn, oid: bytes, rec: GraphRecord) -> None:
    """The record, and its exact changed paths when it has them."""
    txn.put(COMMIT_GRAPH, bytes(oid), rec.encode())
    if rec.changed is None:
        txn.delete(CHANGED_PATHS, bytes(oid))
    else:
        txn.put(CHANGED_PATHS, bytes(oid), codec.pack(list(rec.changed)))


def get_changed(txn: ReadTxn, oid: bytes) -> frozenset[bytes] | None:
    """The exact changed paths (and their directories) of `oid`, or None (not kept)."""
    data = txn.get(CHANGED_PATHS, bytes(oid))
    if data is None:
        return None
    v = codec.unpack(data, f"changed paths of {short_hex(oid)}")
    if not isinstance(v, list) or not all(isinstance(p, bytes) for p in v):
        raise CorruptObject(f"changed paths of {short_hex(oid)}", "malformed")
    return frozenset(v)


def delete_record(txn: WriteTxn, oid: bytes) -> None:
    txn.delete(COMMIT_GRAPH, bytes(oid))
    txn.delete(CHANGED_PATHS, bytes(oid))


def records(txn: ReadTxn) -> Iterator[tuple[ObjectId, bytes]]:
    """(commit id, encoded record) of every record, in id order."""
    for key, value in txn.scan(COMMIT_GRAPH):
        yield ObjectId(key), value


def clear(txn: WriteTxn) -> None:
    txn.clear(COMMIT_GRAPH)
    txn.clear(CHANGED_PATHS)
