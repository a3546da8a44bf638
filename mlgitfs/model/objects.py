"""The immutable objects of a store and their canonical form: manifests, trees, commits.

Every object encodes to a msgpack array `[tag, FORMAT, ...fields]`; its id is the BLAKE3 of
those bytes. Decoding (model/decode.py) validates everything a hostile or damaged object
could get wrong (types, id lengths, name rules, sort order, duplicates) and raises
`CorruptObject` naming it.
Chunks are not objects here: a chunk's id is the hash of its raw bytes (see store/).
"""

from __future__ import annotations

import enum
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from mlgitfs.errors import CorruptObject, UsageError
from mlgitfs.model import codec
from mlgitfs.model.ids import ChunkId, ObjectId, hash_bytes, short_hex
from mlgitfs.model.names import MAX_NAME, entry_name_problem

FORMAT = 1
MAX_SYMLINK = 4096
PERM_MASK = 0o777  # setuid and setgid are never stored, nor sticky bits of non-directories
DIR_MODE_MASK = 0o1777  # a directory keeps its sticky bit (/tmp-like shared directories)
# The ranges the format holds; decoding refuses anything outside them and encoding
# (`object_id`) never writes it (callers clamp or refuse first, see `clamp_time_ns`).
MIN_TIME_NS = -(1 << 62)  # about 1823-11-12
MAX_TIME_NS = (1 << 63) - 1  # about 2262-04-11
MAX_SIZE = (1 << 63) - 1
MAX_CHUNK = 64 << 20  # no chunk holds more (the chunker's maximum is a few MiB)
MAX_PAGE = 4096  # entries of one tree or tree-index page
MAX_PAGES = 1 << 20  # pages of one tree index (a directory of about 10^9 entries)
MAX_TEXT = 1 << 20  # bytes of a commit's author, message, metadata key or value
MAX_LIST = 1 << 20  # parents, inputs or metadata items of a commit
MAX_CHUNKS = 10_000_000  # chunks of a manifest (a file of several TiB)


def clamp_time_ns(t: int) -> int:
    """A file time the format can hold: times before MIN_TIME_NS or after MAX_TIME_NS are
    stored as the nearest end of the range (like the kernel clamps times to what a file
    system's inodes hold)."""
    return MIN_TIME_NS if t < MIN_TIME_NS else MAX_TIME_NS if t > MAX_TIME_NS else t


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


KindT = TypeVar("KindT", Tree, TreeIndex, Manifest, Commit)


def of_kind(obj: Object, oid: bytes, kind: type[KindT]) -> KindT:
    """`obj` (loaded as `oid`) when it is a `kind`; CorruptObject otherwise."""
    if not isinstance(obj, kind):
        raise CorruptObject(short_hex(oid), f"expected a {kind.TAG}, found a {type(obj).TAG}")
    return obj


def object_id(obj: Object) -> tuple[ObjectId, bytes]:
    """The id and canonical bytes of `obj`; ValueError for an object the decoder would
    refuse (callers validate user input first: this guard means a bug, not bad input)."""
    problem = _encode_problem(obj)
    if problem:
        raise ValueError(f"refusing to write a {obj.TAG} the format cannot hold: {problem}")
    data = obj.encode()
    return ObjectId(hash_bytes(data)), data


def tree_from_rows(
    rows: list[tuple[Any, ...]], fresh: Sequence[TreeEntry]
) -> tuple[ObjectId, bytes]:
    """The id and bytes of the tree whose entries are the wire `rows` (sorted by name,
    unique): the rows of a checked tree (`decode.tree_rows`) plus those of the `fresh`
    entries, which alone are checked here as `object_id` checks a tree's entries."""
    problem = f"{len(rows)} entries in one tree" if len(rows) > MAX_PAGE else None
    problem = problem or _encode_problem(Tree(tuple(fresh)))
    if problem:
        raise ValueError(f"refusing to write a tree the format cannot hold: {problem}")
    data = codec.pack([Tree.TAG, FORMAT, rows])
    return ObjectId(hash_bytes(data)), data


def _encode_problem(obj: Object) -> str | None:
    """The ranges `decode` checks, on the fields of an object about to be written (sorting,
    names and canonical form hold by construction: trees are built from sorted listings)."""
    if isinstance(obj, Tree):
        if len(obj.entries) > MAX_PAGE:
            return f"{len(obj.entries)} entries in one tree"
        if _plain_in_range(obj.entries):
            return None
        for e in obj.entries:
            if not MIN_TIME_NS <= e.mtime_ns <= MAX_TIME_NS:
                return f"mtime {e.mtime_ns} of {e.name[:40]!r} out of range"
            if not 0 <= e.size <= MAX_SIZE or (e.kind is EntryKind.FILE and e.size > MAX_CHUNK):
                return f"size {e.size} of {e.name[:40]!r} out of range"
            if not 0 <= e.mode <= (DIR_MODE_MASK if e.is_dir else PERM_MASK) or entry_name_problem(
                e.name
            ):
                return f"mode or name of {e.name[:40]!r} invalid"
        return None
    if isinstance(obj, TreeIndex):
        if not 0 < len(obj.pages) <= MAX_PAGES:
            return f"{len(obj.pages)} pages"
        if any(not 0 < p.count <= MAX_PAGE for p in obj.pages):
            return "a page count out of range"
        return None
    if isinstance(obj, Manifest):
        if not 2 <= len(obj.chunks) <= MAX_CHUNKS:
            return f"{len(obj.chunks)} chunks"
        if any(not 0 < c.length <= MAX_CHUNK for c in obj.chunks):
            return "a chunk length out of range"
        return None
    return commit_problem(obj)


def _plain_in_range(entries: tuple[TreeEntry, ...]) -> bool:
    """True when every entry surely passes the loop of `_encode_problem` (checked column by
    column in C loops: a merge rewrites whole pages); False says only "check one by one"."""
    if not entries:
        return True
    names = [e.name for e in entries]
    sizes = [e.size for e in entries]
    mtimes = [e.mtime_ns for e in entries]
    modes = [e.mode for e in entries]
    joined = b"".join(names)  # joining makes no '/' or NUL that no name holds
    return (
        min(map(len, names)) > 0
        and max(map(len, names)) <= MAX_NAME
        and b"." not in names
        and b".." not in names
        and b"/" not in joined
        and b"\0" not in joined
        and min(sizes) >= 0
        and max(sizes) <= MAX_CHUNK
        and min(mtimes) >= MIN_TIME_NS
        and max(mtimes) <= MAX_TIME_NS
        and min(modes) >= 0
        and max(modes) <= PERM_MASK
    )


def commit_problem(c: Commit) -> str | None:
    """Why the format cannot hold this commit, or None (shared with make_commit's callers)."""
    if not 0 <= c.time_ns <= MAX_TIME_NS:
        return f"commit time {c.time_ns} out of range"
    texts = [c.author, c.message, *(t for kv in c.meta for t in kv), *(r for r, _ in c.inputs)]
    if any(len(t.encode("utf-8", "surrogatepass")) > MAX_TEXT for t in texts):
        return f"an author, message, metadata key or value longer than {MAX_TEXT} bytes"
    if max(len(c.parents), len(c.inputs), len(c.meta)) > MAX_LIST:
        return "too many parents, inputs or metadata items"
    return None


def make_commit(
    tree: ObjectId,
    parents: tuple[ObjectId, ...],
    author: str,
    time_ns: int,
    message: str,
    meta: dict[str, str] | None = None,
    inputs: list[tuple[str, ObjectId]] | None = None,
) -> Commit:
    """A commit with its metadata and inputs put in canonical order; UsageError for one the
    format cannot hold (a message over MAX_TEXT bytes, a time before 1970)."""
    commit = Commit(
        tree,
        parents,
        author,
        time_ns,
        message,
        tuple(sorted((meta or {}).items())),
        tuple(sorted(set(inputs or []))),
    )
    problem = commit_problem(commit)
    if problem:
        raise UsageError(f"cannot make this commit: {problem}")
    return commit
