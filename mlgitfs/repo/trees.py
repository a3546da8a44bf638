"""Directories as trees: building them (paged when large) and reading them one page at a time.

A directory of up to PAGE_LIMIT entries is one `Tree`. A larger one is a `TreeIndex` over
pages split after each entry whose name hashes to a boundary (crc32 & MASK == 0, so pages
hold ~1,024 entries), or at MAX_PAGE entries: boundaries depend only on the names, so
changing one file of a 1,000,000-entry directory rewrites one page and the index, and
adding a name rewrites the page it falls in. Lookups are binary searches.
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from mlgitfs.errors import CorruptObject, PathNotFound
from mlgitfs.model.ids import ChunkId, ObjectId, short_hex
from mlgitfs.model.objects import (
    ChunkRef,
    EntryKind,
    Manifest,
    PageRef,
    Tree,
    TreeEntry,
    TreeIndex,
    object_id,
)
from mlgitfs.repo.store import Store

PAGE_LIMIT = 2048
MAX_PAGE = 4096
_MASK = 1023

NewObjects = list[tuple[ObjectId, bytes]]


def is_boundary(name: bytes) -> bool:
    return zlib.crc32(name) & _MASK == 0


def build_dir(entries: Sequence[TreeEntry], out: NewObjects) -> ObjectId:
    """Encode a directory from entries sorted by name; new objects are appended to `out`."""
    if len(entries) <= PAGE_LIMIT:
        oid, data = object_id(Tree(tuple(entries)))
        out.append((oid, data))
        return oid
    pages: list[PageRef] = []
    start = 0
    for i, e in enumerate(entries):
        if is_boundary(e.name) or i + 1 - start >= MAX_PAGE or i + 1 == len(entries):
            page = Tree(tuple(entries[start : i + 1]))
            pid, data = object_id(page)
            out.append((pid, data))
            pages.append(PageRef(page.entries[0].name, pid, len(page.entries)))
            start = i + 1
    oid, data = object_id(TreeIndex(tuple(pages)))
    out.append((oid, data))
    return oid


def dir_count(store: Store, ref: ObjectId) -> int:
    obj = store.get_object(ref)
    if isinstance(obj, Tree):
        return len(obj.entries)
    if isinstance(obj, TreeIndex):
        return obj.count
    raise PathNotFound("not a directory")


@dataclass(frozen=True, slots=True)
class DirView:
    """A decoded directory: either one Tree or an index of pages loaded on demand."""

    store: Store
    ref: ObjectId

    def _index(self) -> Tree | TreeIndex:
        obj = self.store.get_object(self.ref)
        if not isinstance(obj, Tree | TreeIndex):
            raise CorruptObject(short_hex(self.ref), "a directory entry names a non-tree object")
        return obj

    def lookup(self, name: bytes) -> TreeEntry | None:
        obj = self._index()
        if isinstance(obj, TreeIndex):
            firsts = [p.first for p in obj.pages]
            i = bisect.bisect_right(firsts, name) - 1
            if i < 0:
                return None
            obj = self.store.get(obj.pages[i].page, Tree)
        entries = obj.entries
        lo, hi = 0, len(entries)
        while lo < hi:
            mid = (lo + hi) // 2
            if entries[mid].name < name:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(entries) and entries[lo].name == name:
            return entries[lo]
        return None

    def count(self) -> int:
        obj = self._index()
        return len(obj.entries) if isinstance(obj, Tree) else obj.count

    def pages(self) -> list[ObjectId]:
        obj = self._index()
        return [self.ref] if isinstance(obj, Tree) else [p.page for p in obj.pages]

    def entries(self, start: int = 0) -> Iterator[TreeEntry]:
        """Entries in name order from position `start`, loading only the pages needed."""
        obj = self._index()
        if isinstance(obj, Tree):
            yield from obj.entries[start:]
            return
        pos = 0
        for p in obj.pages:
            if pos + p.count <= start:
                pos += p.count
                continue
            page = self.store.get(p.page, Tree)
            yield from page.entries[max(0, start - pos) :]
            pos += p.count


def resolve_path(store: Store, root: ObjectId, path: Sequence[bytes]) -> TreeEntry | None:
    """The entry at `path` under the tree `root`; None for the root itself."""
    ref = root
    entry: TreeEntry | None = None
    for i, name in enumerate(path):
        if entry is not None and not entry.is_dir:
            raise PathNotFound(f"{b'/'.join(path[:i]).decode(errors='replace')} is not a directory")
        entry = DirView(store, ref).lookup(name)
        if entry is None:
            raise PathNotFound(f"no such path: {b'/'.join(path).decode(errors='replace')}")
        ref = ObjectId(entry.ref)
    return entry


def file_chunks(store: Store, entry: TreeEntry) -> tuple[ChunkRef, ...]:
    if entry.kind is EntryKind.FILE:
        return (ChunkRef(ChunkId(entry.ref), entry.size),)
    if entry.kind is EntryKind.CHUNKED:
        return store.get(ObjectId(entry.ref), Manifest).chunks
    raise PathNotFound(f"{entry.name.decode(errors='replace')} is not a file")


def walk(store: Store, ref: ObjectId, prefix: bytes = b"") -> Iterator[tuple[bytes, TreeEntry]]:
    """(path, entry) of every entry below the directory `ref`, depth first, in name order."""
    for e in DirView(store, ref).entries():
        path = prefix + e.name
        yield path, e
        if e.is_dir:
            yield from walk(store, ObjectId(e.ref), path + b"/")
