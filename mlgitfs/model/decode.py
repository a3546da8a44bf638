"""Decoding an object's bytes: `decode` validates everything a hostile or damaged object
could get wrong (types, id lengths, name rules, sort order, duplicates, the format's ranges)
and raises `CorruptObject` naming it; the objects and their encoding are model/objects.py's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mlgitfs.errors import CorruptObject
from mlgitfs.model import codec
from mlgitfs.model.ids import ID_LEN, ChunkId, ObjectId, hash_bytes, short_hex
from mlgitfs.model.names import MAX_NAME, entry_name_problem
from mlgitfs.model.objects import (
    DIR_MODE_MASK,
    FORMAT,
    MAX_CHUNK,
    MAX_CHUNKS,
    MAX_PAGE,
    MAX_PAGES,
    MAX_SIZE,
    MAX_SYMLINK,
    MAX_TIME_NS,
    MIN_TIME_NS,
    PERM_MASK,
    ChunkRef,
    Commit,
    EntryKind,
    Manifest,
    Object,
    PageRef,
    Tree,
    TreeEntry,
    TreeIndex,
)


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
Row = tuple[Any, ...]  # an entry as on the wire: (name, kind, mode, size, mtime_ns, ref)
# Entries already decoded, by their exact fields (types checked first, so 1 and True never
# meet): the same file in base, ours and theirs is then one object, built once, and a diff
# or merge skips it by identity (`e is f`). Bounded; emptied when full.
_SEEN: dict[tuple[Any, ...], TreeEntry] = {}
_SEEN_MAX = 1 << 18
# Ids of trees whose bytes `tree_rows` checked whole: the same bytes (their hash is checked
# again) need only be unpacked the next time (a merge reads ours' directories twice).
_ROWS_CHECKED: set[bytes] = set()
_PLAIN_KINDS = frozenset(int(k) for k in (EntryKind.FILE, EntryKind.CHUNKED, EntryKind.DIR))


def _plain_columns(raw: Sequence[Any], row_type: type = list) -> bool:
    """True when every entry surely passes the per-entry fast check of `_entries` (column by
    column, in C loops: a merge or diff of a large version decodes millions of entries);
    False when any might not, and the caller checks entry by entry. It accepts a subset of
    what `_entries` accepts, never more (sizes are held to MAX_CHUNK whatever the kind)."""
    if not raw or set(map(type, raw)) != {row_type} or set(map(len, raw)) != {6}:
        return False
    names, kinds, modes, sizes, mtimes, refs = zip(*raw, strict=True)
    if not (
        set(map(type, names + refs)) == _BYTES
        and set(map(type, kinds + modes + sizes + mtimes)) == _INT  # no bool either
    ):
        return False
    lens, kind_set, mode_set = set(map(len, names)), set(kinds), set(modes)
    if not (
        min(lens) > 0
        and max(lens) <= MAX_NAME
        and b"." not in names
        and b".." not in names
        and kind_set <= _PLAIN_KINDS
        and min(mode_set) >= 0
        and max(mode_set) <= PERM_MASK
        and min(sizes) >= 0
        and max(sizes) <= MAX_CHUNK
        and (min(sizes) >= 2 or int(EntryKind.CHUNKED) not in kind_set)
        and min(mtimes) >= MIN_TIME_NS
        and max(mtimes) <= MAX_TIME_NS
        and set(map(len, refs)) == {ID_LEN}
    ):
        return False
    joined = b"".join(names)  # joining makes no '/' or NUL that no name holds
    return b"/" not in joined and b"\0" not in joined


def entry_of(row: Row) -> TreeEntry:
    """The entry of a wire row that `tree_rows` (or `_plain_columns`) accepted; one object
    per distinct row while the bounded table holds it."""
    e = _SEEN.get(row)
    if e is None:
        if len(_SEEN) > _SEEN_MAX:
            _SEEN.clear()
        e = _SEEN[row] = TreeEntry(row[0], _KINDS[row[1]], row[2], row[3], row[4], row[5])
    return e


def _bulk_entries(raw: list[Any]) -> tuple[TreeEntry, ...] | None:
    """The whole tree at once when `_plain_columns` accepts it; None otherwise."""
    if not _plain_columns(raw):
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


def tree_rows(data: bytes, oid: bytes) -> list[Row] | None:
    """A tree's entries as wire rows `(name, kind, mode, size, mtime_ns, ref)`, checked as
    `decode` checks them (hash, canonical encoding, ranges, names, order), without an entry
    object per row: a merge or diff compares whole directories that differ in a few names.
    None when the object is not a tree (an index, a commit) or holds entries that only the
    entry-by-entry check judges (symlinks, chunked or unusual ones): `decode` it instead."""
    what = short_hex(oid)
    if hash_bytes(data) != oid:
        raise CorruptObject(what, "content does not hash to its id")
    key = bytes(oid)
    if key in _ROWS_CHECKED:  # these very bytes passed every check below already
        rows: list[Row] = list(codec.unpack(data, what, tuples=True)[2])
        return rows
    value = codec.unpack_canonical(data, what, tuples=True)
    if not (
        type(value) is tuple
        and len(value) == 3
        and value[0] == Tree.TAG
        and value[1] == FORMAT
        and type(value[2]) is tuple
        and 0 < len(value[2]) <= MAX_PAGE
        and _plain_columns(value[2], tuple)
    ):
        return None
    rows = list(value[2])
    names = [r[0] for r in rows]
    if len(set(names)) != len(names) or sorted(names) != names:
        return None  # decode names the problem
    if len(_ROWS_CHECKED) >= _SEEN_MAX:
        _ROWS_CHECKED.clear()
    _ROWS_CHECKED.add(key)
    return rows


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


_new_ref = object.__new__
_set_id = getattr(ChunkRef, "id").__set__  # noqa: B009  the slots, past the frozen __setattr__
_set_length = getattr(ChunkRef, "length").__set__  # noqa: B009


def _chunk_refs(chunks: list[Any]) -> list[ChunkRef] | None:
    """A manifest's chunk list when every item is exactly [32-byte id, length in range]
    (checked in one pass, the refs made without the frozen dataclass's per-field
    `__setattr__`: a manifest of a large file lists hundreds), else None."""
    if not all(
        type(ch) is list
        and len(ch) == 2
        and type(ch[0]) is bytes
        and len(ch[0]) == ID_LEN
        and type(ch[1]) is int
        and 1 <= ch[1] <= MAX_CHUNK
        for ch in chunks
    ):
        return None
    out = []
    for cid, length in chunks:
        ref = _new_ref(ChunkRef)
        _set_id(ref, cid)
        _set_length(ref, length)
        out.append(ref)
    return out


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
        if len(c.seq(chunks)) > MAX_CHUNKS:
            raise c.fail(f"more than {MAX_CHUNKS} chunks in one manifest")
        crefs = _chunk_refs(chunks)
        if crefs is None:  # one is malformed: find it and name it
            crefs = []
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
