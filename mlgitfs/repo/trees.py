"""Directories as trees: building them (paged when large) and reading them one page at a time.

A directory of up to PAGE_LIMIT entries is one `Tree`. A larger one is a `TreeIndex` over
pages split after each entry whose name hashes to a boundary (crc32 & MASK == 0, so pages
hold ~1,024 entries), or at MAX_PAGE entries: boundaries depend only on the names, so
changing one file of a 1,000,000-entry directory rewrites one page and the index, and
adding a name rewrites the page it falls in. Lookups are binary searches.

What a tree index says about its pages (first name, entry count) is checked against each
page when it is loaded, and a page's last name must sort before the next page's first: a
lying index is CorruptObject for that directory, never a listing that repeats or loses
entries. A file's size is checked against its manifest here (`file_chunks`) and against
each chunk's length where the bytes are served (`chunk_bytes`, and the mount's reader).
Walks are iterative and refuse trees deeper than MAX_DEPTH or paths longer than MAX_PATH.
"""

from __future__ import annotations

import bisect
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from mlgitfs.errors import CorruptObject, PathNotFound
from mlgitfs.model.ids import ChunkId, ObjectId, short_hex
from mlgitfs.model.objects import (
    MAX_PAGE,
    ChunkRef,
    EntryKind,
    KindT,
    Manifest,
    Object,
    PageRef,
    Tree,
    TreeEntry,
    TreeIndex,
    object_id,
)
from mlgitfs.store.facade import Store
from mlgitfs.store.segfile import Buffer

PAGE_LIMIT = 2048
_MASK = 1023
MAX_DEPTH = 4096  # directory levels below a walk's root (PATH_MAX stops paths sooner)
MAX_PATH = 64 << 10  # bytes of a path below a walk's root

NewObjects = list[tuple[ObjectId, bytes]]


class ObjectReader(Protocol):
    """What reading trees needs: the Store, or a view that adds objects not yet written
    (a staged commit, a merge's intermediate trees)."""

    def get_object(self, oid: ObjectId) -> Object: ...

    def get(self, oid: ObjectId, kind: type[KindT]) -> KindT: ...


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


def dir_count(store: ObjectReader, ref: ObjectId) -> int:
    obj = store.get_object(ref)
    if isinstance(obj, Tree):
        return len(obj.entries)
    if isinstance(obj, TreeIndex):
        return obj.count
    raise PathNotFound("not a directory")


@dataclass(frozen=True, slots=True)
class DirView:
    """A decoded directory: either one Tree or an index of pages loaded on demand."""

    store: ObjectReader
    ref: ObjectId

    def _index(self) -> Tree | TreeIndex:
        obj = self.store.get_object(self.ref)
        if not isinstance(obj, Tree | TreeIndex):
            raise CorruptObject(short_hex(self.ref), "a directory entry names a non-tree object")
        return obj

    def page(self, index: TreeIndex, i: int) -> Tree:
        """Page `i` of `index`, checked against what the index says of it."""
        ref = index.pages[i]
        page = self.store.get(ref.page, Tree)
        entries = page.entries
        problem = None
        if len(entries) != ref.count:
            problem = f"has {len(entries)} entries, the index says {ref.count}"
        elif entries[0].name != ref.first:
            problem = "does not start with the name the index gives"
        elif i + 1 < len(index.pages) and not entries[-1].name < index.pages[i + 1].first:
            problem = "overlaps the next page"
        if problem:
            raise CorruptObject(
                short_hex(self.ref), f"page {short_hex(ref.page)} of this tree index {problem}"
            )
        return page

    def lookup(self, name: bytes) -> TreeEntry | None:
        obj = self._index()
        if isinstance(obj, TreeIndex):
            firsts = [p.first for p in obj.pages]
            i = bisect.bisect_right(firsts, name) - 1
            if i < 0:
                return None
            obj = self.page(obj, i)
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

    def page_trees(self, skip: frozenset[ObjectId] = frozenset()) -> Iterator[Tree]:
        """Each page not in `skip`, in order, checked (the tree itself when not paged)."""
        obj = self._index()
        if isinstance(obj, Tree):
            if self.ref not in skip:
                yield obj
            return
        for i, p in enumerate(obj.pages):
            if p.page not in skip:
                yield self.page(obj, i)

    def entries(self, start: int = 0) -> Iterator[TreeEntry]:
        """Entries in name order from position `start`, loading only the pages needed."""
        obj = self._index()
        if isinstance(obj, Tree):
            yield from obj.entries[start:]
            return
        pos = 0
        for i, p in enumerate(obj.pages):
            if pos + p.count <= start:
                pos += p.count
                continue
            page = self.page(obj, i)
            yield from page.entries[max(0, start - pos) :]
            pos += p.count


def resolve_path(store: ObjectReader, root: ObjectId, path: Sequence[bytes]) -> TreeEntry | None:
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


def file_chunks(store: ObjectReader, entry: TreeEntry) -> tuple[ChunkRef, ...]:
    """The chunks of a file's entry; CorruptObject when its manifest disagrees with its size."""
    if entry.kind is EntryKind.FILE:
        return (ChunkRef(ChunkId(entry.ref), entry.size),)
    if entry.kind is EntryKind.CHUNKED:
        m = store.get(ObjectId(entry.ref), Manifest)
        if m.size != entry.size:
            raise CorruptObject(
                short_hex(entry.ref), f"manifest lists {m.size} bytes, the tree says {entry.size}"
            )
        return m.chunks
    raise PathNotFound(f"{entry.name.decode(errors='replace')} is not a file")


def check_chunk_length(ref: ChunkRef, data: Buffer) -> None:
    """CorruptObject unless `data` is as long as the tree or manifest says the chunk is (the
    chunk hashes right: the object that names it lies)."""
    if len(data) != ref.length:
        raise CorruptObject(
            short_hex(ref.id), f"chunk has {len(data)} bytes, the file's entry says {ref.length}"
        )


def chunk_bytes(store: Store, ref: ChunkRef, judged: bool = False) -> bytes:
    """One chunk of a file, verified against its id and the length its file gives it
    (`judged`: the file was judged not erased, Store.read_chunk)."""
    data = store.read_chunk(ref.id, judged)
    check_chunk_length(ref, data)
    return data


def walk(
    store: ObjectReader, ref: ObjectId, prefix: bytes = b""
) -> Iterator[tuple[bytes, TreeEntry]]:
    """(path, entry) of every entry below the directory `ref`, depth first, in name order.

    Iterative, holding one page iterator and one name per level and a single path of the
    current directory (not one path per level: a deep tree would make that quadratic in
    memory); CorruptObject below MAX_DEPTH or MAX_PATH."""
    names: list[bytes] = []
    here = prefix  # the current directory's path, ending with "/" below the root
    stack = [DirView(store, ref).entries()]
    while stack:
        e = next(stack[-1], None)
        if e is None:
            stack.pop()
            if names:
                here = here[: len(here) - len(names.pop()) - 1]
            continue
        path = here + e.name
        yield path, e
        if e.is_dir:
            if len(stack) >= MAX_DEPTH or len(here) - len(prefix) + len(e.name) + 1 > MAX_PATH:
                raise CorruptObject(
                    short_hex(e.ref),
                    f"directory {path[:80]!r}... is deeper than {MAX_DEPTH} levels "
                    f"or {MAX_PATH} bytes",
                )
            names.append(e.name)
            here = path + b"/"
            stack.append(DirView(store, ObjectId(e.ref)).entries())
