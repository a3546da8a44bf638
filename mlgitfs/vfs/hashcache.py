"""Content refs of overlay files, hashed once per version of their bytes (for status).

Status compares an overlay file with a committed entry of the same size by the ref a commit
would give it (`filedata.content_ref`: chunked and hashed, not compressed). The result is
kept per inode with the file's size, mtime and ctime, so a file is hashed again only after it
changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from mlgitfs.model.objects import EntryKind
from mlgitfs.repo.filedata import content_ref
from mlgitfs.store.chunker import Chunker, ChunkerParams

_Key = tuple[int, int, int]


def _key(st: os.stat_result) -> _Key:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns


@dataclass
class RefCache:
    """(entry kind, ref) of overlay files `files/<ino>`, valid while their stat is unchanged."""

    files: Path
    params: ChunkerParams
    known: dict[int, tuple[_Key, EntryKind, bytes]] = field(default_factory=dict)

    def get(self, ino: int) -> tuple[EntryKind, bytes] | None:
        hit = self.known.get(ino)
        if hit is None:
            return None
        try:
            st = os.stat(self.files / str(ino))
        except OSError:
            return None
        return (hit[1], hit[2]) if _key(st) == hit[0] else None

    def compute(self, inos: list[int]) -> None:
        """Worker thread: hash these overlay files (a file that changes meanwhile is not kept)."""
        chunker = Chunker(self.params)
        for ino in inos:
            path = str(self.files / str(ino))
            try:
                before = os.stat(path)
                kind, ref = content_ref(path, chunker)
                after = os.stat(path)
            except OSError:
                continue
            if _key(before) == _key(after):
                self.known[ino] = (_key(before), kind, ref)
