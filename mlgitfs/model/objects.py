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
from typing import Any, TypeVar

from mlgitfs.errors import CorruptObject, UsageError
from mlgitfs.model import codec
from mlgitfs.model.ids import ID_LEN, ChunkId, ObjectId, hash_bytes, short_hex
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
    size = c.integer(size, 0, MAX_SIZE + 1)
    if k is EntryKind.FILE and size > MAX_CHUNK:
        raise c.fail(f"a one-chunk file of {size} bytes (a chunk holds at most {MAX_CHUNK})")
    if k is EntryKind.CHUNKED and size < 2:
        raise c.fail("a file with a manifest has at least two bytes")
    if k is EntryKind.SYMLINK:
        target = c.blob(ref, MAX_SYMLINK)
        if not target or b"\0" in target or size != len(target):
            raise c.fail("invalid symlink target")
    else:
        c.oid(ref)
    return TreeEntry(
        c.name(name),
        k,
        c.integer(mode, 0, (DIR_MODE_MASK if k is EntryKind.DIR else PERM_MASK) + 1),
        size,
        c.integer(mtime_ns, MIN_TIME_NS, MAX_TIME_NS + 1),
        ref,
    )


_KINDS = {int(k): k for k in EntryKind}


_INT, _BYTES = frozenset({int}), frozenset({bytes})
# Entries already decoded, by their exact fields (types checked first, so 1 and True never
# meet): the same file in base, ours and theirs is then one object, built once, and a diff
# or merge skips it by identity (`e is f`). Bounded; emptied when full.
_SEEN: dict[tuple[Any, ...], TreeEntry] = {}
_SEEN_MAX = 1 << 18
_PLAIN_KINDS = frozenset(int(k) for k in (EntryKind.FILE, EntryKind.CHUNKED, EntryKind.DIR))


def _bulk_entries(raw: list[Any]) -> tuple[TreeEntry, ...] | None:
    """The whole tree at once when every entry passes the per-entry fast check below (column
    by column, in C loops: a merge or diff of a large version decodes millions of entries);
    None when any might not, and the caller checks entry by entry. It accepts a subset of
    what `_entries` accepts, never more (sizes are held to MAX_CHUNK whatever the kind)."""
    if not raw or set(map(type, raw)) != {list} or set(map(len, raw)) != {6}:
        return None
    names, kinds, modes, sizes, mtimes, refs = zip(*raw, strict=True)
    if not (
        set(map(type, names)) == _BYTES
        and min(map(len, names)) > 0
        and max(map(len, names)) <= MAX_NAME
        and b"." not in names
        and b".." not in names
        and set(map(type, kinds)) == _INT
        and set(kinds) <= _PLAIN_KINDS
        and set(map(type, modes)) == _INT
        and min(modes) >= 0
        and max(modes) <= PERM_MASK
        and set(map(type, sizes)) == _INT
        and min(sizes) >= 0
        and max(sizes) <= MAX_CHUNK
        and (min(sizes) >= 2 or int(EntryKind.CHUNKED) not in kinds)
        and set(map(type, mtimes)) == _INT
        and min(mtimes) >= MIN_TIME_NS
        and max(mtimes) <= MAX_TIME_NS
        and set(map(type, refs)) == _BYTES
        and set(map(len, refs)) == {ID_LEN}
    ):
        return None
    joined = b"".join(names)  # joining makes no '/' or NUL that no name holds
    if b"/" in joined or b"\0" in joined:
        return None
    seen = _SEEN
    if len(seen) > _SEEN_MAX:
        seen.clear()
    out = []
    for key in map(tuple, raw):
        e = seen.get(key)
        if e is None:
            e = seen[key] = TreeEntry(key[0], _KINDS[key[1]], key[2], key[3], key[4], key[5])
        out.append(e)
    return tuple(out)


def _entries(c: _Check, raw: list[Any]) -> tuple[TreeEntry, ...]:
    """`_entry` over a tree's entries, with the common case checked inline (a merge or diff
    of a large version decodes millions of entries); anything unusual goes through `_entry`,
    which accepts or refuses it exactly as before, naming the problem."""
    bulk = _bulk_entries(raw)
    if bulk is not None:
        return bulk
    out = []
    kinds, file_, chunked, symlink = _KINDS, EntryKind.FILE, EntryKind.CHUNKED, EntryKind.SYMLINK
    for e in raw:
        if type(e) is list and len(e) == 6:
            name, kind, mode, size, mtime, ref = e
            k = kinds.get(kind) if type(kind) is int else None
            if (
                k is not None
                and k is not symlink
                and type(name) is bytes
                and 0 < len(name) <= MAX_NAME
                and b"/" not in name
                and b"\0" not in name
                and name != b"."
                and name != b".."
                and type(mode) is int
                and 0 <= mode <= PERM_MASK
                and type(size) is int
                and 0 <= size <= (MAX_CHUNK if k is file_ else MAX_SIZE)
                and (size >= 2 or k is not chunked)
                and type(mtime) is int
                and MIN_TIME_NS <= mtime <= MAX_TIME_NS
                and type(ref) is bytes
                and len(ref) == ID_LEN
            ):
                out.append(TreeEntry(name, k, mode, size, mtime, ref))
                continue
        out.append(_entry(c, e))
    return tuple(out)


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
        if len(c.seq(entries)) > MAX_PAGE:
            raise c.fail(f"more than {MAX_PAGE} entries in one tree")
        out = _entries(c, entries)
        _sorted_unique(c, [e.name for e in out])
        return Tree(out)
    if tag == TreeIndex.TAG:
        _, _, pages = c.seq(value, 3)
        refs = []
        if len(c.seq(pages)) > MAX_PAGES:
            raise c.fail(f"more than {MAX_PAGES} pages in one tree index")
        for p in pages:
            first, page, count = c.seq(p, 3)
            refs.append(
                PageRef(c.name(first), ObjectId(c.oid(page)), c.integer(count, 1, MAX_PAGE + 1))
            )
        if not refs:
            raise c.fail("empty tree index")
        _sorted_unique(c, [r.first for r in refs])
        return TreeIndex(tuple(refs))
    if tag == Manifest.TAG:
        _, _, chunks = c.seq(value, 3)
        crefs = []
        if len(c.seq(chunks)) > MAX_CHUNKS:
            raise c.fail(f"more than {MAX_CHUNKS} chunks in one manifest")
        for ch in chunks:
            cid, length = c.seq(ch, 2)
            crefs.append(ChunkRef(ChunkId(c.oid(cid)), c.integer(length, 1, MAX_CHUNK + 1)))
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
            c.integer(time_ns, 0, MAX_TIME_NS + 1),
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
