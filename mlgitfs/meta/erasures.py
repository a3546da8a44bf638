"""Erasure records: which files' contents `mlgitfs erase` removed, by whom, when and why.

A record names the repo, the paths asked for, each erased *occurrence* as (path, file id)
and the versions (commit ids) it was erased from: the file at that path with that id in
one of those commits is erased; the same bytes elsewhere (another path, another repo, a
later commit) are not. gc reads every record at each run and does not keep an erased
occurrence's chunks live (repo/gc.py); reads name the record (repo/erase.py).

Beside the records, the set "erased_chunks": the chunks only erased files hold, rewritten
by every gc that sees a record (in its sweep transaction). Readers that know the
occurrence they read are judged by it (repo/erasegate.py); for the others, the fetcher
consults the set on a local miss and refuses to bring such a chunk back from a remote
whose packs still hold it (store/fetcher.py): without it, a read would silently undo the
erase.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from mlgitfs.errors import CorruptObject
from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.schema import ERASED_CHUNKS, ERASURES
from mlgitfs.model import codec

_SEQ = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class ErasureRecord:
    seq: int  # its number in the store, from 1
    time_ns: int
    who: str
    why: str
    repo: str
    paths: tuple[str, ...]  # as asked
    files: frozenset[tuple[bytes, bytes]]  # (path, file id): chunk id or manifest id
    commits: frozenset[bytes]  # the versions erased from

    def encode(self) -> bytes:
        return codec.pack([
            1, self.time_ns, self.who, self.why, self.repo, list(self.paths),
            sorted([p, f] for p, f in self.files), sorted(self.commits),
        ])  # fmt: skip

    @classmethod
    def decode(cls, seq: int, data: bytes) -> ErasureRecord:
        try:
            _, t, who, why, repo, paths, files, commits = codec.unpack(data, "erasure record")
            return cls(
                seq, int(t), str(who), str(why), str(repo), tuple(str(p) for p in paths),
                frozenset((bytes(p), bytes(f)) for p, f in files),
                frozenset(bytes(c) for c in commits),
            )  # fmt: skip
        except (TypeError, ValueError) as exc:
            raise CorruptObject(f"erasure {seq}", "malformed erasure record") from exc

    @property
    def file_ids(self) -> frozenset[bytes]:
        return frozenset(f for _, f in self.files)


def add(txn: WriteTxn, record: ErasureRecord) -> ErasureRecord:
    """Store `record` under the next sequence number (its `seq` is ignored)."""
    last = max((r.seq for r in list_all(txn)), default=0)
    rec = ErasureRecord(last + 1, record.time_ns, record.who, record.why, record.repo,
                        record.paths, record.files, record.commits)  # fmt: skip
    txn.put(ERASURES, _SEQ.pack(rec.seq), rec.encode())
    return rec


def list_all(txn: ReadTxn) -> list[ErasureRecord]:
    return [ErasureRecord.decode(_SEQ.unpack(k)[0], v) for k, v in txn.scan(ERASURES)]


def count(txn: ReadTxn) -> int:
    """How many records the store holds: records are never taken out, so the number names
    the set (repo/erasegate.py caches its index by it)."""
    return txn.count(ERASURES)


def find(
    txn: ReadTxn, commit: bytes, path: bytes | None = None, file_id: bytes | None = None
) -> ErasureRecord | None:
    """The first record that erased a file of `commit` (the file at `path`, with id
    `file_id`, when given)."""
    for rec in list_all(txn):
        if commit not in rec.commits:
            continue
        if any((path is None or p == path) and (file_id is None or f == file_id)
               for p, f in rec.files):  # fmt: skip
            return rec
    return None


def set_erased_chunks(txn: WriteTxn, cids: set[bytes]) -> None:
    """Make `cids` the set of chunks only erased files hold (replacing the last one)."""
    txn.clear(ERASED_CHUNKS)
    for cid in sorted(cids):
        txn.put(ERASED_CHUNKS, cid, b"")


def erased_among(txn: ReadTxn, cids: list[bytes]) -> list[bytes]:
    """Those of `cids` that only erased files hold (never to be fetched again)."""
    return [c for c in cids if txn.has(ERASED_CHUNKS, c)]


def erased_chunk_ids(txn: ReadTxn) -> frozenset[bytes]:
    return frozenset(k for k, _ in txn.scan(ERASED_CHUNKS))
