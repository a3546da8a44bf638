"""Reads judged by occurrence: whether the file being read is an erased occurrence.

An erasure erases occurrences, (commit, path, file id) (meta/erasures.py), not bytes: the
same bytes held by a file not erased stay readable. Every reader that knows what it reads
(`cat`, `export`, `prefetch`, fsspec, read-only and branch mounts) asks an `ErasureGate`
before it reads a file: an erased occurrence gives FileErased naming the record before any
byte is read or fetched, even when the bytes are local (a file not erased keeps them); any
other file is read with `judged=True`, so the fetcher does not consult the erased-chunk set
(store/fetcher.py) and brings the bytes from a remote that still has them. That set is the
erasing store's view and may name bytes that a file not erased holds (one pushed by a
store unaware of the record): judged by chunk, such a file would be refused. Readers that
do not know the occurrence they read (merges, hooks, checks, row diffs) read unjudged, and
the fetcher refuses the chunks in that set, as before.

Cost: the records are decoded once per gate and indexed by (path, file id); a judgement is
one LMDB stat (how many records: they are never taken out, so the number names the set)
and a dict lookup; `current` gives the index for many judgements under one stat.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from mlgitfs.meta import erasures
from mlgitfs.meta.env import MetaEnv
from mlgitfs.meta.erasures import ErasureRecord
from mlgitfs.repo.erase import file_erased


@dataclass(frozen=True, slots=True)
class Occurrences:
    """The erased occurrences of one set of records, by (path, file id) and by file id."""

    by_file: Mapping[tuple[bytes, bytes], tuple[ErasureRecord, ...]]
    by_id: Mapping[bytes, tuple[ErasureRecord, ...]]

    def erasure(self, commit: bytes, path: bytes | None, file_id: bytes) -> ErasureRecord | None:
        """The record that erased the file `file_id` at `path` of `commit`, or None. Without
        a path (a branch mount's file whose path in its base commit is unknown), the file
        counts as erased when any path of `commit` with that id was: the safe side."""
        if not self.by_id:
            return None
        recs = self.by_id.get(file_id, ()) if path is None else self.by_file.get((path, file_id))
        for rec in recs or ():
            if commit in rec.commits:
                return rec
        return None

    def check(self, repo: str, commit: bytes, path: bytes | None, file_id: bytes) -> None:
        """FileErased naming the erasure when the occurrence is erased; else nothing."""
        rec = self.erasure(commit, path, file_id)
        if rec is not None:
            raise file_erased(rec, repo, commit, path)


NONE = Occurrences({}, {})


class ErasureGate:
    """The store's erased occurrences, reread when the records change. Thread-safe."""

    def __init__(self, env: MetaEnv) -> None:
        self.env = env
        self._lock = threading.Lock()
        self._state: tuple[int, Occurrences] = (0, NONE)

    def current(self) -> Occurrences:
        with self.env.read() as txn:
            n = erasures.count(txn)
            if n == self._state[0]:
                return self._state[1]
            with self._lock:  # one decode when several threads see the new records at once
                if n != self._state[0]:
                    self._state = (n, _index(erasures.list_all(txn)))
                return self._state[1]

    def erasure(self, commit: bytes, path: bytes | None, file_id: bytes) -> ErasureRecord | None:
        return self.current().erasure(commit, path, file_id)

    def check(self, repo: str, commit: bytes, path: bytes | None, file_id: bytes) -> None:
        self.current().check(repo, commit, path, file_id)


def _index(records: list[ErasureRecord]) -> Occurrences:
    by_file: dict[tuple[bytes, bytes], tuple[ErasureRecord, ...]] = {}
    by_id: dict[bytes, tuple[ErasureRecord, ...]] = {}
    for rec in records:
        for path, fid in rec.files:
            by_file[path, fid] = (*by_file.get((path, fid), ()), rec)
        for fid in rec.file_ids:
            by_id[fid] = (*by_id.get(fid, ()), rec)
    return Occurrences(by_file, by_id)
