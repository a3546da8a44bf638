"""The commit-graph index: per commit, what a history walk needs without decoding the commit.

Derived data, never inside the commit object (the object format is unchanged), kept in the
database "commit_graph" beside "generations": the commit's time, parents and root tree,
and the changed-path filter against its first parent (model/bloom.py), or None when the
commit changed more than bloom.MAX_KEYS paths ("every path maybe"). `write_commit` writes
a commit's record in the commit's own transaction, fetch writes those of the commits it
brings, fsck checks them and `fsck --repair-index` rebuilds them all. A commit with no
record is walked from its object and diffed: the index only ever saves work.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from mlgitfs.errors import CorruptObject
from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import COMMIT_GRAPH
from mlgitfs.model import codec
from mlgitfs.model.ids import ID_LEN, ObjectId, short_hex

FORMAT = 1


@dataclass(frozen=True, slots=True)
class GraphRecord:
    time_ns: int
    parents: tuple[ObjectId, ...]
    tree: ObjectId
    paths: bytes | None  # the changed-path filter; None: too many changes to filter

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
    txn.put(COMMIT_GRAPH, bytes(oid), rec.encode())


def delete_record(txn: WriteTxn, oid: bytes) -> None:
    txn.delete(COMMIT_GRAPH, bytes(oid))


def records(txn: ReadTxn) -> Iterator[tuple[ObjectId, bytes]]:
    """(commit id, encoded record) of every record, in id order."""
    for key, value in txn.scan(COMMIT_GRAPH):
        yield ObjectId(key), value


def clear(txn: WriteTxn) -> None:
    txn.clear(COMMIT_GRAPH)
