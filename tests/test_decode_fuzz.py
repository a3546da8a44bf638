"""Random mutations of valid objects, indexes, locators, refs, records and compressed chunks:
decoding raises only the project's CorruptObject, never another exception. Checksummed
formats (pack and locator indexes) get their trailer recomputed after the mutation, so the
structure checks behind the checksum are what is exercised.

The suite runs a CI-sized number of examples; `-m slow` runs 100,000.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgitfs.errors import CorruptObject
from mlgitfs.meta.erasures import ErasureRecord
from mlgitfs.model import attestation, codec
from mlgitfs.model import statement as stm
from mlgitfs.model.decode import decode, tree_rows
from mlgitfs.model.ids import ChunkId, ObjectId, hash_bytes
from mlgitfs.model.objects import (
    ChunkRef,
    EntryKind,
    Manifest,
    PageRef,
    Tree,
    TreeEntry,
    TreeIndex,
    make_commit,
    object_id,
)
from mlgitfs.model.signing import SigningKey
from mlgitfs.repo import erasuresync, statementsync
from mlgitfs.store import compress, packs
from mlgitfs.store.chunker import DEFAULT_PARAMS

T0 = 1_700_000_000_000_000_000
H = [hash_bytes(bytes([i])) for i in range(8)]


def _objects() -> list[bytes]:
    tree = Tree(
        (
            TreeEntry(b"a.txt", EntryKind.FILE, 0o644, 5, T0, H[0]),
            TreeEntry(b"big", EntryKind.CHUNKED, 0o600, 3 << 20, T0, H[1]),
            TreeEntry(b"dir", EntryKind.DIR, 0o755, 2, -T0, H[2]),
            TreeEntry(b"link", EntryKind.SYMLINK, 0o777, 5, T0, b"a.txt"),
        )
    )
    tidx = TreeIndex((PageRef(b"a", ObjectId(H[3]), 1000), PageRef(b"m", ObjectId(H[4]), 4096)))
    manifest = Manifest(tuple(ChunkRef(ChunkId(h), 1 << 20) for h in H[:3]))
    commit = make_commit(
        ObjectId(H[5]),
        (ObjectId(H[6]), ObjectId(H[7])),
        "ann@example",
        T0,
        "a message",
        {"k": "v", "lr": "0.1"},
        [("labels", ObjectId(H[0]))],
    )
    return [object_id(o)[1] for o in (tree, tidx, manifest, commit)]


OBJECTS = _objects()
PACK = b"p" * 32
_INDEX, _, INDEX = packs.build_pack(
    packs.CHUNKS, [(h, compress.RAW, b"x" * (i + 1), i + 1) for i, h in enumerate(H)]
)
_SEC_LOCS = [
    (h, packs.PackLocation(packs.CHUNKS, PACK, i * 10, 10, 10, 0)) for i, h in enumerate(H)
]
LOC, LIDX = packs.build_locator(PACK, [(H[0], _SEC_LOCS[:3]), (H[1], _SEC_LOCS[3:])])
_LIDX_SECTIONS = packs.decode_locator_index(PACK, LIDX)
ZSTD_RAW = b"labels,0\n" * 2000
ZSTD = bytes(compress.compress(ZSTD_RAW)[1])


def _retrail(body: bytes) -> bytes:
    return body + hash_bytes(body)


def _decode_index(data: bytes) -> object:
    return packs.decode_index(packs.CHUNKS, _INDEX.pack, _retrail(data))


def _decode_section(data: bytes) -> object:
    """A section whose digest matches the mutated bytes: the records' checks are tested."""
    sec = packs.Section(PACK, 0, len(data) // packs._SEC.size, hash_bytes(data))
    return packs.decode_section(H[0], sec, data)


STATEMENT = stm.sign(SigningKey.from_seed(bytes(32)), ObjectId(H[0]), "commit", codec.pack([1]))


ATTESTATIONS = [
    attestation.CheckAttestation(
        "schema", "check", ObjectId(H[0]), ObjectId(H[1]), ObjectId(H[2]), "pre-merge",
        "table v1", "ab" * 32, "cd" * 32, "passed", T0,
    ),
    attestation.PromotionAttestation(
        "main", "promote", ObjectId(H[0]), ObjectId(H[1]), None,
        (("lint", "ef" * 32), ("schema", "ef" * 32)), T0,
    ),
]  # fmt: skip


def _signed_ref(d: bytes) -> object:
    _, raw = packs.decode_ref_record("refs/ds/heads/main", d)
    return stm.decode(raw) if raw is not None else None


def _statement_pack(body: bytes) -> object:
    data = _retrail(body)
    return statementsync.read_pack(hash_bytes(data), data, "stmts/x.spack")


_ERASED = frozenset({(b"a.csv", H[0]), (b"d/b.csv", H[1])})
ERASURE = ErasureRecord(
    0, T0, "ann@example", "request 1", "", ("a.csv",), _ERASED, frozenset(H[2:4])
)
ERASURES = erasuresync.encode([(ERASURE, frozenset(H[4:6]))])


# (name, valid seed bytes, decoder): the seed of a checksummed format is its body
TARGETS: list[tuple[str, bytes, Callable[[bytes], object]]] = [
    *((f"object{i}", data, decode) for i, data in enumerate(OBJECTS)),
    ("pack index", INDEX[:-32], _decode_index),
    ("locator index", LIDX[:-32], lambda d: packs.decode_locator_index(PACK, _retrail(d))),
    ("locator section", LOC[: _LIDX_SECTIONS[H[0]].length], _decode_section),
    ("ref", packs.encode_ref(H[0]), lambda d: packs.decode_ref("refs/ds/heads/main", d)),
    ("signed ref", packs.encode_ref(H[0], STATEMENT.encode()), _signed_ref),
    ("statement", STATEMENT.encode(), stm.decode),
    ("statement pack", statementsync.build_pack([STATEMENT.encode()])[1][:-32], _statement_pack),
    *((f"attestation {a.TAG}", a.encode(), attestation.decode) for a in ATTESTATIONS),
    ("config", packs.render_config(DEFAULT_PARAMS), lambda d: packs.parse_config(d, "r")),
    ("repo", packs.render_repo("dataset", "strict", ["a"]), lambda d: packs.parse_repo(d, "r")),
    ("erasures", ERASURES, lambda d: erasuresync.decode(d, "erasures/ds")),
    ("zstd", ZSTD, lambda d: compress.decompress(compress.ZSTD, d, len(ZSTD_RAW), "c")),
]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[int, bytes]:
    i = draw(st.integers(0, len(TARGETS) - 1))
    data = bytearray(TARGETS[i][1])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "int"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[at:]
        elif op == "int" and data:
            # a msgpack uint64 / int64 / uint32 marker with a lying value
            marker = draw(st.sampled_from([b"\xcf", b"\xd3", b"\xce", b"\xdd", b"\xc6"]))
            data[at:at] = marker + draw(st.binary(min_size=4, max_size=8))
    return i, bytes(data)


def _only_corrupt(case: tuple[int, bytes]) -> None:
    i, data = case
    name, _, decoder = TARGETS[i]
    try:
        decoder(data)
    except CorruptObject:
        pass
    except Exception as exc:  # noqa: BLE001 - the property: nothing else escapes
        raise AssertionError(f"{name}: {type(exc).__name__}: {exc} on {data!r}") from exc


def test_seeds_decode() -> None:
    for _, data, decoder in TARGETS:
        decoder(data)  # the unmutated seed is valid


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutations_raise_only_corrupt_object(case: tuple[int, bytes]) -> None:
    _only_corrupt(case)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@settings(max_examples=100_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated())
def test_mutations_raise_only_corrupt_object_100k(case: tuple[int, bytes]) -> None:
    _only_corrupt(case)


PLAIN_TREE = object_id(
    Tree(
        (
            TreeEntry(b"a.txt", EntryKind.FILE, 0o644, 5, T0, H[0]),
            TreeEntry(b"big", EntryKind.CHUNKED, 0o600, 3 << 20, T0, H[1]),
            TreeEntry(b"dir", EntryKind.DIR, 0o755, 2, -T0, H[2]),
            TreeEntry(b"e", EntryKind.FILE, 0o600, 0, 0, H[3]),
        )
    )
)[1]


@st.composite
def mutated_tree(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from([PLAIN_TREE, OBJECTS[0], OBJECTS[1]])))
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(data) - 1))
        if draw(st.booleans()):
            data[at] = draw(st.integers(0, 255))
        else:
            del data[at : at + draw(st.integers(1, 8))]
    return bytes(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_tree())
def test_tree_rows_accepts_only_what_decode_accepts(data: bytes) -> None:
    """The merge's and diff's row reader (`tree_rows`) gives exactly decode's entries as wire
    rows, or declines (None) for decode to judge; it never accepts what decode refuses."""
    oid = hash_bytes(data)
    try:
        obj = decode(data, oid)
    except CorruptObject:
        obj = None
    try:
        rows = tree_rows(data, oid)
    except CorruptObject:
        assert obj is None
        return
    if rows is not None:
        assert isinstance(obj, Tree)
        assert rows == [tuple(e.to_wire()) for e in obj.entries]
        assert tree_rows(data, oid) == rows  # the second read (checked once) agrees
    with pytest.raises(CorruptObject, match="does not hash"):
        tree_rows(data, hash_bytes(data + b"x"))
