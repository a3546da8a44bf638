"""Read sets in the store: recordings by name until used, and those attached to versions.

`recordings`: name -> read set (model/readset.py's encoding), written when `mlgitfs run
--record NAME` ends (a second run of the same name replaces it). `readsets`: commit id -> the
read set attached by `import`/`commit --inputs-from NAME`, written in the transaction after
the commit's (a crash between them leaves the version with its inputs but no file list;
nothing else refers to these records).
"""

from __future__ import annotations

from collections.abc import Iterator

from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import READSETS, RECORDINGS
from mlgitfs.model import readset
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.readset import ReadSet


def put_recording(txn: WriteTxn, rs: ReadSet) -> None:
    txn.put(RECORDINGS, rs.name.encode(), readset.encode(rs))


def get_recording(txn: ReadTxn, name: str) -> ReadSet | None:
    raw = txn.get(RECORDINGS, name.encode())
    return None if raw is None else readset.decode(raw)


def list_recordings(txn: ReadTxn) -> Iterator[ReadSet]:
    for _, raw in txn.scan(RECORDINGS):
        yield readset.decode(raw)


def attach(txn: WriteTxn, commit: ObjectId, rs: ReadSet) -> None:
    txn.put(READSETS, bytes(commit), readset.encode(rs))


def attached(txn: ReadTxn, commit: ObjectId) -> ReadSet | None:
    raw = txn.get(READSETS, bytes(commit))
    return None if raw is None else readset.decode(raw)
