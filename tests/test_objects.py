"""The object model: golden vectors pin the format, round trips, and bad objects are refused."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlgitfs.errors import CorruptObject, InvalidName, InvalidRevspec
from mlgitfs.model import codec
from mlgitfs.model.decode import decode
from mlgitfs.model.ids import ChunkId, ObjectId, from_hex, hash_bytes
from mlgitfs.model.names import check_ref_name, check_repo_name
from mlgitfs.model.objects import (
    FORMAT,
    MAX_CHUNK,
    MAX_SIZE,
    MAX_TIME_NS,
    MIN_TIME_NS,
    ChunkRef,
    Commit,
    EntryKind,
    Manifest,
    PageRef,
    Tree,
    TreeEntry,
    TreeIndex,
    make_commit,
    object_id,
)
from mlgitfs.model.revspec import parse_revspec
from mlgitfs.store.chunker import Chunker

T0 = 1_700_000_000_000_000_000


def _golden_tree() -> Tree:
    return Tree(
        (
            TreeEntry(b"a.txt", EntryKind.FILE, 0o644, 5, T0, hash_bytes(b"hello")),
            TreeEntry(b"link", EntryKind.SYMLINK, 0o777, 5, T0, b"a.txt"),
        )
    )


def test_golden_vectors_pin_the_format() -> None:
    # Changing any of these ids changes the on-disk and remote format: bump FORMAT instead.
    assert FORMAT == 1
    assert hash_bytes(b"hello").hex() == (
        "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"
    )
    tree_id = object_id(_golden_tree())[0]
    assert tree_id.hex() == "b880b478f9463993dd6af5c42a3de6ba3c5a33abd2418ea64be79a7360231880"
    manifest = Manifest(
        (ChunkRef(ChunkId(hash_bytes(b"x")), 1), ChunkRef(ChunkId(hash_bytes(b"y")), 1))
    )
    assert object_id(manifest)[0].hex() == (
        "cbf0976f9b9aca9a949d0e7cd1e0b6fa8c8580738eef9b49a33e8ac5b47e81bc"
    )
    commit = make_commit(tree_id, (), "ann@example", T0, "first", {"k": "v"}, [])
    assert object_id(commit)[0].hex() == (
        "989aec7a7fb21322abbb94e83e8673b87a5d2021704e9c0fe7355abd1260c1ce"
    )


def test_chunk_boundaries_are_fixed() -> None:
    data = random.Random(42).randbytes(3 << 20)
    assert list(Chunker().cut(data)) == [
        (0, 748274),
        (748274, 1543654),
        (2291928, 595707),
        (2887635, 258093),
    ]
    assert list(Chunker().cut(b"")) == [(0, 0)]


names = st.binary(min_size=1, max_size=40).filter(
    lambda b: b not in (b".", b"..") and b"/" not in b and b"\0" not in b
)
ids = st.binary(min_size=32, max_size=32)


@st.composite
def entries(draw: st.DrawFn) -> TreeEntry:
    name = draw(names)
    kind = draw(st.sampled_from(list(EntryKind)))
    if kind is EntryKind.SYMLINK:
        target = draw(st.binary(min_size=1, max_size=100).filter(lambda b: b"\0" not in b))
        return TreeEntry(name, kind, 0o777, len(target), draw(st.integers(0, 2**62)), target)
    sizes = {
        EntryKind.FILE: st.integers(0, MAX_CHUNK),
        EntryKind.CHUNKED: st.integers(2, MAX_SIZE),
        EntryKind.DIR: st.integers(0, 2**40),
    }[kind]
    return TreeEntry(
        name,
        kind,
        draw(st.integers(0, 0o777)),
        draw(sizes),
        draw(st.integers(MIN_TIME_NS, MAX_TIME_NS)),
        draw(ids),
    )


@given(st.lists(entries(), max_size=20, unique_by=lambda e: e.name))
def test_tree_round_trip(items: list[TreeEntry]) -> None:
    tree = Tree(tuple(sorted(items, key=lambda e: e.name)))
    oid, data = object_id(tree)
    assert decode(data, oid) == tree


@given(
    st.lists(ids, min_size=0, max_size=3),
    st.text(max_size=50),
    st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=5),
    st.lists(st.tuples(st.text(min_size=1, max_size=10), ids), max_size=3),
)
def test_commit_round_trip(
    parents: list[bytes], message: str, meta: dict[str, str], inputs: list[tuple[str, bytes]]
) -> None:
    commit = make_commit(
        ObjectId(b"t" * 32),
        tuple(ObjectId(p) for p in parents),
        "me",
        T0,
        message,
        meta,
        [(r, ObjectId(i)) for r, i in inputs],
    )
    oid, data = object_id(commit)
    assert decode(data, oid) == commit


@given(st.lists(st.tuples(ids, st.integers(1, MAX_CHUNK)), min_size=2, max_size=50))
def test_manifest_round_trip(chunks: list[tuple[bytes, int]]) -> None:
    m = Manifest(tuple(ChunkRef(ChunkId(c), n) for c, n in chunks))
    oid, data = object_id(m)
    assert decode(data, oid) == m


def test_tree_index_round_trip() -> None:
    idx = TreeIndex((PageRef(b"a", ObjectId(b"p" * 32), 10), PageRef(b"m", ObjectId(b"q" * 32), 3)))
    oid, data = object_id(idx)
    assert decode(data, oid) == idx
    assert idx.count == 13


def _raw(*fields: object) -> bytes:
    return codec.pack(list(fields))


GOOD_ENTRY = [b"a", 1, 0o644, 1, 0, b"i" * 32]
BAD_OBJECTS = {
    "not msgpack": b"\xc1\xc1\xc1",
    "truncated": _golden_tree().encode()[:-5],
    "trailing bytes": _golden_tree().encode() + b"\x00",
    "not a list": codec.pack({"tree": 1}),
    "unknown tag": _raw("blob", 1, []),
    "future format": _raw("tree", 2, []),
    "entry name with slash": _raw("tree", 1, [[b"a/b", 1, 0o644, 1, 0, b"i" * 32]]),
    "entry name dotdot": _raw("tree", 1, [[b"..", 1, 0o644, 1, 0, b"i" * 32]]),
    "entry name with NUL": _raw("tree", 1, [[b"a\0", 1, 0o644, 1, 0, b"i" * 32]]),
    "empty entry name": _raw("tree", 1, [[b"", 1, 0o644, 1, 0, b"i" * 32]]),
    "long entry name": _raw("tree", 1, [[b"x" * 256, 1, 0o644, 1, 0, b"i" * 32]]),
    "unsorted entries": _raw("tree", 1, [[b"b", *GOOD_ENTRY[1:]], GOOD_ENTRY]),
    "duplicate entries": _raw("tree", 1, [GOOD_ENTRY, GOOD_ENTRY]),
    "short id": _raw("tree", 1, [[b"a", 1, 0o644, 1, 0, b"i" * 31]]),
    "bad kind": _raw("tree", 1, [[b"a", 9, 0o644, 1, 0, b"i" * 32]]),
    "setuid mode": _raw("tree", 1, [[b"a", 1, 0o4755, 1, 0, b"i" * 32]]),
    "negative size": _raw("tree", 1, [[b"a", 1, 0o644, -1, 0, b"i" * 32]]),
    "bool as int": _raw("tree", 1, [[b"a", 1, 0o644, True, 0, b"i" * 32]]),
    "symlink with NUL": _raw("tree", 1, [[b"a", 4, 0o777, 3, 0, b"a\0b"]]),
    "one-chunk manifest": _raw("manifest", 1, [[b"c" * 32, 5]]),
    "zero-length chunk": _raw("manifest", 1, [[b"c" * 32, 0], [b"d" * 32, 1]]),
    "commit missing fields": _raw("commit", 1, b"t" * 32, []),
    "commit unsorted meta": _raw(
        "commit", 1, b"t" * 32, [], "a", 0, "m", [["b", ""], ["a", ""]], []
    ),
    "empty tree index": _raw("tidx", 1, []),
    "huge array header": b"\xdd\xff\xff\xff\xff",
    "non-canonical int": b"\x93\xa4tree\xcd\x00\x01\x90",
}


@pytest.mark.parametrize("name", sorted(BAD_OBJECTS))
def test_bad_objects_are_refused(name: str) -> None:
    data = BAD_OBJECTS[name]
    with pytest.raises(CorruptObject):
        decode(data, hash_bytes(data))


def test_hash_mismatch_is_refused() -> None:
    data = _golden_tree().encode()
    with pytest.raises(CorruptObject, match="does not hash"):
        decode(data, hash_bytes(b"other"))


def test_ids_are_validated_before_use() -> None:
    with pytest.raises(CorruptObject):
        from_hex("../../etc/passwd")
    with pytest.raises(CorruptObject):
        from_hex("AB" * 32)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\0b", "x" * 256, "-x", "a b", "a@b"])
def test_bad_repo_names(name: str) -> None:
    with pytest.raises(InvalidName):
        check_repo_name(name)


@pytest.mark.parametrize("name", ["", "a..b/..", "a:b", "a~1", "/a", "a/", "x.lock", "a//b"])
def test_bad_ref_names(name: str) -> None:
    with pytest.raises(InvalidName):
        check_ref_name(name)


def test_revspecs() -> None:
    s = parse_revspec("imagenet@v3~2:train/cat.jpg")
    assert (s.repo, s.ref, s.back, s.path) == ("imagenet", "v3", 2, (b"train", b"cat.jpg"))
    assert parse_revspec("ds").ref == "main"
    assert parse_revspec("ds@feature/x").ref == "feature/x"
    for bad in ["", "@main", "ds@", "ds:../x", "ds~x", "a/b@main", "ds@a~1~2"]:
        with pytest.raises(InvalidRevspec):
            parse_revspec(bad)


def test_commit_is_a_frozen_dataclass() -> None:
    c = Commit(ObjectId(b"t" * 32), (), "a", 0, "m")
    with pytest.raises(AttributeError):
        c.message = "x"  # type: ignore[misc]
