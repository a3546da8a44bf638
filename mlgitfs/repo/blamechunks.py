"""Blame of a file by content-defined chunk: for each chunk of a file (a byte range), the
commit that introduced it.

A chunk is *introduced* by the first commit, in log order, whose version of the file holds
that chunk (by id) while its first parent's version does not (or has no such file). The
walk is the one of `log --path FILE` and follows exact renames (blame.py's
`file_history`); each version that changed costs its manifest, a list of chunk ids, never
the file's bytes. A chunk that moved inside the file, or that the file held twice, keeps
its commit: chunks are content, found by id.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlgitfs.model.ids import ObjectId
from mlgitfs.model.objects import TreeEntry
from mlgitfs.repo.blame import file_history
from mlgitfs.repo.trees import file_chunks
from mlgitfs.store.facade import Store


@dataclass(frozen=True, slots=True)
class ChunkBlame:
    start: int  # byte offset in the blamed version
    length: int
    chunk: bytes  # the chunk's id
    commit: ObjectId  # the commit that introduced it
    path: bytes  # where the file was in that commit


def _ids(store: Store, entry: TreeEntry | None) -> set[bytes]:
    if entry is None or not entry.is_file:
        return set()
    return {bytes(c.id) for c in file_chunks(store, entry)}


def blame_chunks(
    store: Store, head: ObjectId, path: bytes, entry: TreeEntry, use_index: bool = True
) -> list[ChunkBlame]:
    """Each chunk of `entry` (the file at `path` of `head`), in file order, with the commit
    that introduced it."""
    refs = file_chunks(store, entry)
    left = {bytes(c.id) for c in refs}
    found: dict[bytes, tuple[ObjectId, bytes]] = {}
    follow = path
    for commit, follow, now, before in file_history(store, head, path, use_index):
        older = _ids(store, before)
        newer = _ids(store, now)
        for cid in [c for c in left if c in newer and c not in older]:
            found[cid] = (commit, follow)
            left.discard(cid)
        if not left:
            break
    for cid in left:  # nothing introduced these: the walk ended (unreachable in a sound store)
        found[cid] = (head, follow)
    out = []
    at = 0
    for c in refs:
        out.append(ChunkBlame(at, c.length, bytes(c.id), *found[bytes(c.id)]))
        at += c.length
    return out
