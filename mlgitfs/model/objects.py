"""The immutable objects of a store and their canonical form: manifests, trees, commits.

Every object encodes to a msgpack array `[tag, FORMAT, ...fields]`; its id is the BLAKE3 of
those bytes. Decoding validates everything a hostile or damaged object could get wrong
(types, id lengths, name rules, sort order, duplicates) and raises `CorruptObject` naming it.
Chunks are not objects here: a chunk's id is the hash of its raw bytes (see store/).
"""

from __future__ import annotations

import enum
import stat
from dataclasses import dataclass
from typing import Any

from mlgitfs.errors import CorruptObject
from mlgitfs.model import codec
from mlgitfs.model.ids import ID_LEN, ChunkId, ObjectId, hash_bytes, short_hex
from mlgitfs.model.names import entry_name_problem

FORMAT = 1
MAX_SYMLINK = 4096
PERM_MASK = 0o777  # setuid, setgid and sticky bits are never stored


class EntryKind(enum.IntEnum):
    FILE = 1  # ref is the id of the file's only chunk
    CHUNKED = 2  # ref is the id of the file's manifest
    DIR = 3  # ref is the id of a Tree or TreeIndex
    SYMLINK = 4  # ref is the link target itself


@dataclass(frozen=True, slots=True)
class TreeEntry:
    name: bytes
    kind: EntryKind
    mode: int  # permission bits only
    size: int  # bytes for files and symlinks, number of entries for directories
    mtime_ns: int
    ref: bytes

    @property
    def is_dir(self) -> bool:
        return self.kind is EntryKind.DIR

    @property
    def is_file(self) -> bool:
        return self.kind in (EntryKind.FILE, EntryKind.CHUNKED)

    @property
    def st_mode(self) -> int:
        kind_bits = {
            EntryKind.FILE: stat.S_IFREG,
            EntryKind.CHUNKED: stat.S_IFREG,
            EntryKind.DIR: stat.S_IFDIR,
            EntryKind.SYMLINK: stat.S_IFLNK,
        }[self.kind]
        return kind_bits | self.mode

    def to_wire(self) -> list[Any]:
        return [self.name, int(self.kind), self.mode, self.size, self.mtime_ns, self.ref]


@dataclass(frozen=True, slots=True)
class Tree:
    """A directory listing, or one page of a large directory: entries sorted by name bytes."""

    entries: tuple[TreeEntry, ...]

    TAG = "tree"

    def encode(self) -> bytes:
        return codec.pack([self.TAG, FORMAT, [e.to_wire() for e in self.entries]])


@dataclass(frozen=True, slots=True)
class PageRef:
    first: bytes  # name of the page's first entry
    page: ObjectId
    count: int


@dataclass(frozen=True, slots=True)
class TreeIndex:
    """A large directory: pages split at content-defined name boundaries (a prolly tree)."""

    pages: tuple[PageRef, ...]

    TAG = "tidx"

    @property
    def count(self) -> int:
        return sum(p.count for p in self.pages)

    def encode(self) -> bytes:
        return codec.pack(
            [self.TAG, FORMAT, [[p.first, bytes(p.page), p.count] for p in self.pages]]
        )


@dataclass(frozen=True, slots=True)
class ChunkRef:
    id: ChunkId
    length: int


@dataclass(frozen=True, slots=True)
class Manifest:
    chunks: tuple[ChunkRef, ...]

    TAG = "manifest"

    @property
    def size(self) -> int:
        return sum(c.length for c in self.chunks)

    def encode(self) -> bytes:
        return codec.pack([self.TAG, FORMAT, [[bytes(c.id), c.length] for c in self.chunks]])


@dataclass(frozen=True, slots=True)
class Commit:
    tree: ObjectId
    parents: tuple[ObjectId, ...]
    author: str
    time_ns: int
    message: str
    meta: tuple[tuple[str, str], ...] = ()  # sorted by key, unique keys
    inputs: tuple[tuple[str, ObjectId], ...] = ()  # (repo name, commit id), sorted

    TAG = "commit"

    def encode(self) -> bytes:
        return codec.pack(
            [
                self.TAG,
                FORMAT,
                bytes(self.tree),
                [bytes(p) for p in self.parents],
                self.author,
                self.time_ns,
                self.message,
                [[k, v] for k, v in self.meta],
                [[r, bytes(c)] for r, c in self.inputs],
            ]
        )


Object = Tree | TreeIndex | Manifest | Commit


def object_id(obj: Object) -> tuple[ObjectId, bytes]:
    data = obj.encode()
    return ObjectId(hash_bytes(data)), data


# --- decoding -----------------------------------------------------------------------------


class _Check:
    """Small validators that raise CorruptObject naming the object."""

    def __init__(self, what: str) -> None:
        self.what = what

    def fail(self, reason: str) -> CorruptObject:
        return CorruptObject(self.what, reason)

    def seq(self, v: Any, n: int | None = None) -> list[Any]:
        if not isinstance(v, list) or (n is not None and len(v) != n):
            raise self.fail(f"expected a list of {n} items" if n else "expected a list")
        return v

    def integer(self, v: Any, lo: int = 0, hi: int = 1 << 63) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v < hi:
            raise self.fail(f"expected an integer in [{lo}, {hi})")
        return v

    def blob(self, v: Any, max_len: int = 1 << 20) -> bytes:
        if not isinstance(v, bytes) or len(v) > max_len:
            raise self.fail("expected bytes")
        return v

    def oid(self, v: Any) -> bytes:
        if not isinstance(v, bytes) or len(v) != ID_LEN:
            raise self.fail("expected a 32-byte id")
        return v

    def text(self, v: Any) -> str:
        if not isinstance(v, str):
            raise self.fail("expected a string")
        return v

    def name(self, v: Any) -> bytes:
        name = self.blob(v, 1024)
        problem = entry_name_problem(name)
        if problem:
            raise self.fail(f"invalid entry name {name[:40]!r}: {problem}")
        return name


def _entry(c: _Check, raw: Any) -> TreeEntry:
    name, kind, mode, size, mtime_ns, ref = c.seq(raw, 6)
    try:
        k = EntryKind(c.integer(kind, 1, 5))
    except ValueError as exc:  # pragma: no cover - c.int bounds it
        raise c.fail("unknown entry kind") from exc
    size = c.integer(size)
    if k is EntryKind.SYMLINK:
        target = c.blob(ref, MAX_SYMLINK)
        if not target or b"\0" in target or size != len(target):
            raise c.fail("invalid symlink target")
    else:
        c.oid(ref)
    return TreeEntry(
        c.name(name),
        k,
        c.integer(mode, 0, PERM_MASK + 1),
        size,
        c.integer(mtime_ns, -(1 << 62)),
        ref,
    )


def _sorted_unique(c: _Check, names: list[bytes]) -> None:
    for a, b in zip(names, names[1:], strict=False):
        if not a < b:
            raise c.fail("entries not sorted by name or duplicated")


def decode(data: bytes, oid: bytes | None = None) -> Object:
    """Bytes → object, refusing anything malformed. With `oid`, also checks the hash."""
    what = short_hex(oid) if oid is not None else "object"
    c = _Check(what)
    if oid is not None and hash_bytes(data) != oid:
        raise c.fail("content does not hash to its id")
    value = codec.unpack_canonical(data, what)
    head = c.seq(value)
    if len(head) < 3 or not isinstance(head[0], str):
        raise c.fail("missing type tag")
    tag, fmt = head[0], head[1]
    if fmt != FORMAT:
        raise c.fail(f"unsupported format {fmt!r}")
    if tag == Tree.TAG:
        _, _, entries = c.seq(value, 3)
        out = tuple(_entry(c, e) for e in c.seq(entries))
        _sorted_unique(c, [e.name for e in out])
        return Tree(out)
    if tag == TreeIndex.TAG:
        _, _, pages = c.seq(value, 3)
        refs = []
        for p in c.seq(pages):
            first, page, count = c.seq(p, 3)
            refs.append(PageRef(c.name(first), ObjectId(c.oid(page)), c.integer(count, 1)))
        if not refs:
            raise c.fail("empty tree index")
        _sorted_unique(c, [r.first for r in refs])
        return TreeIndex(tuple(refs))
    if tag == Manifest.TAG:
        _, _, chunks = c.seq(value, 3)
        crefs = []
        for ch in c.seq(chunks):
            cid, length = c.seq(ch, 2)
            crefs.append(ChunkRef(ChunkId(c.oid(cid)), c.integer(length, 1)))
        if len(crefs) < 2:
            raise c.fail("a manifest lists at least two chunks")
        return Manifest(tuple(crefs))
    if tag == Commit.TAG:
        _, _, tree, parents, author, time_ns, message, meta, inputs = c.seq(value, 9)
        metas = []
        for kv in c.seq(meta):
            k, v = c.seq(kv, 2)
            metas.append((c.text(k), c.text(v)))
        if [k for k, _ in metas] != sorted({k for k, _ in metas}):
            raise c.fail("metadata keys not sorted or duplicated")
        ins = []
        for rc in c.seq(inputs):
            r, cid = c.seq(rc, 2)
            ins.append((c.text(r), ObjectId(c.oid(cid))))
        if ins != sorted(set(ins)):
            raise c.fail("inputs not sorted or duplicated")
        return Commit(
            ObjectId(c.oid(tree)),
            tuple(ObjectId(c.oid(p)) for p in c.seq(parents)),
            c.text(author),
            c.integer(time_ns),
            c.text(message),
            tuple(metas),
            tuple(ins),
        )
    raise c.fail(f"unknown object type {tag!r}")


def make_commit(
    tree: ObjectId,
    parents: tuple[ObjectId, ...],
    author: str,
    time_ns: int,
    message: str,
    meta: dict[str, str] | None = None,
    inputs: list[tuple[str, ObjectId]] | None = None,
) -> Commit:
    """A commit with its metadata and inputs put in canonical order."""
    return Commit(
        tree,
        parents,
        author,
        time_ns,
        message,
        tuple(sorted((meta or {}).items())),
        tuple(sorted(set(inputs or []))),
    )
