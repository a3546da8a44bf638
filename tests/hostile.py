"""A corpus of hostile remotes, generated (never committed as binaries): each case is an
honest version with one lying object under `bad/`, published on a file:// remote by hand
the way a malicious or broken writer would (no mlgitfs push, no `object_id` checks).

Every remote holds repo `ds` with two commits: `base` (good.txt, big.bin) and `main` on top
of it, which adds `bad/` built by the case. Each case names what must fail and how.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

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
)
from mlgitfs.store import compress, packs
from mlgitfs.store.chunker import DEFAULT_PARAMS
from mlgitfs.store.remote import RemoteTransport
from mlgitfs.store.transports import open_transport

T0 = 1_600_000_000_000_000_000
GOOD = b"good bytes\n" * 100
BIG = [bytes([i]) * 300_000 for i in (1, 2)]  # two chunks: a manifest
Item = tuple[bytes, int, bytes, int]  # id, codec, stored, raw length (a pack entry)


def rle_frame(total: int, declared: bool = True, window_exp: int = 7) -> bytes:
    """A zstd frame of `total` zero bytes made of RLE blocks (4 bytes per 128 KiB): a
    decompression bomb of any size in a few KiB. `declared`: the header states the size;
    otherwise its window is 2**(10 + window_exp) bytes."""
    out = bytearray(b"\x28\xb5\x2f\xfd")
    if declared:
        out += b"\xe0" + struct.pack("<Q", total)  # single segment, 8-byte content size
    else:
        out += bytes((0, window_exp << 3))
    left = total
    while left:
        n = min(left, 128 << 10)
        left -= n
        out += ((n << 3) | (1 << 1) | (0 if left else 1)).to_bytes(3, "little") + b"\0"
    return bytes(out)


def encode(obj: Tree | TreeIndex | Manifest) -> tuple[bytes, bytes]:
    """Id and bytes without `object_id`'s range checks: what a hostile writer does."""
    data = obj.encode()
    return hash_bytes(data), data


def entry(name: bytes, kind: EntryKind, size: int, ref: bytes, mtime: int = T0) -> TreeEntry:
    mode = 0o777 if kind is EntryKind.SYMLINK else 0o755 if kind is EntryKind.DIR else 0o644
    return TreeEntry(name, kind, mode, size, mtime, ref)


@dataclass
class Builder:
    """Objects and chunks of one hostile remote, published by `publish`."""

    meta: list[Item] = field(default_factory=list)
    chunks: list[Item] = field(default_factory=list)
    bad_objects: list[bytes] = field(default_factory=list)  # fail their own checks
    bad_chunks: list[bytes] = field(default_factory=list)

    def chunk(self, raw: bytes) -> bytes:
        cid = hash_bytes(raw)
        if all(c[0] != cid for c in self.chunks):
            self.chunks.append((cid, compress.RAW, raw, len(raw)))
        return cid

    def obj(self, obj: Tree | TreeIndex | Manifest) -> bytes:
        oid, data = encode(obj)
        if all(m[0] != oid for m in self.meta):
            self.meta.append(packs.meta_item(oid, data))
        return oid

    def tree(self, *entries: TreeEntry) -> bytes:
        return self.obj(Tree(tuple(sorted(entries, key=lambda e: e.name))))

    def file(self, name: bytes, data: bytes) -> TreeEntry:
        return entry(name, EntryKind.FILE, len(data), self.chunk(data))

    def big(self, name: bytes, parts: list[bytes]) -> TreeEntry:
        m = Manifest(tuple(ChunkRef(ChunkId(self.chunk(p)), len(p)) for p in parts))
        return entry(name, EntryKind.CHUNKED, sum(map(len, parts)), self.obj(m))


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Builder], TreeEntry]  # the `bad` directory entry
    read_fails: bool  # reading bad/f (cat, mount read) fails
    list_fails: bool  # listing bad/ (ls, mount readdir) fails
    diff_fails: bool  # diff base..main fails (it reads trees, not file bytes)
    victim: bytes = b"f"  # the file under bad/ that cannot be read


def _bad_dir(b: Builder, *entries: TreeEntry) -> TreeEntry:
    return entry(b"bad", EntryKind.DIR, len(entries), b.tree(*entries))


def _bomb_chunk(declared: bool, window_exp: int = 7) -> Callable[[Builder], TreeEntry]:
    def build(b: Builder) -> TreeEntry:
        raw = b"hello, world!"
        cid = hash_bytes(raw)
        stored = rle_frame(4 << 30, declared, window_exp)  # 4 GiB of zeros for 13 bytes
        b.chunks.append((cid, compress.ZSTD, stored, len(raw)))
        b.bad_chunks.append(cid)
        return _bad_dir(b, entry(b"f", EntryKind.FILE, len(raw), cid))

    return build


def _bomb_tree(b: Builder) -> TreeEntry:
    inner = Tree((b.file(b"f", b"inner"),))
    oid, data = encode(inner)
    b.meta.append((oid, compress.ZSTD, rle_frame(4 << 30), len(data)))
    b.bad_objects.append(oid)
    return entry(b"bad", EntryKind.DIR, 1, oid)


def _index(b: Builder, pages: list[list[TreeEntry]], counts: list[int]) -> TreeEntry:
    refs = []
    for page, count in zip(pages, counts, strict=True):
        refs.append(PageRef(page[0].name, ObjectId(b.tree(*page)), count))
    oid = b.obj(TreeIndex(tuple(refs)))
    return entry(b"bad", EntryKind.DIR, sum(counts), oid)


def _names(n: int, prefix: bytes = b"f") -> list[bytes]:
    return [prefix + b"%05d" % i for i in range(n)]


def _tidx(counts_of: Callable[[int, int], list[int]]) -> Callable[[Builder], TreeEntry]:
    def build(b: Builder) -> TreeEntry:
        cid = b.chunk(b"x")
        a = [entry(n, EntryKind.FILE, 1, cid) for n in _names(1500, b"a")]
        c = [entry(n, EntryKind.FILE, 1, cid) for n in _names(1500, b"c")]
        return _index(b, [a, c], counts_of(len(a), len(c)))

    return build


def _tidx_overlap(b: Builder) -> TreeEntry:
    cid = b.chunk(b"x")
    a = [entry(n, EntryKind.FILE, 1, cid) for n in _names(1500, b"a")]
    a2 = [entry(n, EntryKind.FILE, 1, cid) for n in _names(1500, b"a")[1000:]]  # same names
    a2 = [entry(b"a00999z", EntryKind.FILE, 1, cid), *a2]
    return _index(b, [a, a2], [len(a), len(a2)])


def _manifest_size_lie(b: Builder) -> TreeEntry:
    big = b.big(b"f", [b"m" * 100, b"n" * 100])
    return _bad_dir(b, entry(b"f", EntryKind.CHUNKED, 20480, big.ref))


def _file_size_lie(b: Builder) -> TreeEntry:
    return _bad_dir(b, entry(b"f", EntryKind.FILE, 20, b.chunk(b"nineteen bytes long")))


def _shared_chunk_lie(b: Builder) -> TreeEntry:
    """An honest file and a lying one share a chunk: only the liar is blamed."""
    cid = b.chunk(b"shared")
    honest = entry(b"honest", EntryKind.FILE, 6, cid)
    return _bad_dir(b, honest, entry(b"f", EntryKind.FILE, 7, cid))


def _raw_field_tree(**fields: int | bytes) -> Callable[[Builder], TreeEntry]:
    """bad/ is a tree whose one entry has a field the format cannot hold."""

    def build(b: Builder) -> TreeEntry:
        values: dict[str, int | bytes] = {
            "name": b"f",
            "kind": 1,
            "mode": 0o644,
            "size": 1,
            "mtime": T0,
            "ref": b.chunk(b"x"),
        }
        values.update(fields)
        wire = [values[k] for k in ("name", "kind", "mode", "size", "mtime", "ref")]
        from mlgitfs.model import codec

        data = codec.pack(["tree", 1, [wire]])
        oid = hash_bytes(data)
        b.meta.append(packs.meta_item(oid, data))
        b.bad_objects.append(oid)
        return entry(b"bad", EntryKind.DIR, 1, oid)

    return build


def _manifest_field(length: int, count: int = 2) -> Callable[[Builder], TreeEntry]:
    def build(b: Builder) -> TreeEntry:
        from mlgitfs.model import codec

        cid = b.chunk(b"y")
        data = codec.pack(["manifest", 1, [[cid, length]] * count])
        oid = hash_bytes(data)
        b.meta.append(packs.meta_item(oid, data))
        b.bad_objects.append(oid)
        size = max(length * count, 2)  # the tree entry itself is valid
        return _bad_dir(b, entry(b"f", EntryKind.CHUNKED, size, oid))

    return build


DEEP = 4200  # past trees.MAX_DEPTH


def _deep(b: Builder) -> TreeEntry:
    ref = b.tree(b.file(b"f", b"bottom"))
    for _ in range(DEEP):
        ref = b.tree(entry(b"d", EntryKind.DIR, 1, ref))
    return entry(b"bad", EntryKind.DIR, 1, ref)


CASES = [
    Case("zstd-bomb-declared", _bomb_chunk(True), True, False, False),
    Case("zstd-bomb-undeclared", _bomb_chunk(False), True, False, False),
    Case("zstd-bomb-huge-window", _bomb_chunk(False, 20), True, False, False),
    Case("tree-zstd-bomb", _bomb_tree, True, True, True),
    Case("tidx-count-huge", _tidx(lambda a, c: [10**12, c]), True, True, True),
    Case("tidx-count-low", _tidx(lambda a, c: [a - 100, c]), True, True, True, b"a00001"),
    Case("tidx-count-high", _tidx(lambda a, c: [a + 100, c]), True, True, True, b"a00001"),
    Case("tidx-overlapping-pages", _tidx_overlap, True, True, True, b"a00001"),
    Case("manifest-size-lie", _manifest_size_lie, True, False, False),
    Case("file-size-lie", _file_size_lie, True, False, False),
    Case("shared-chunk-size-lie", _shared_chunk_lie, True, False, False),
    Case("file-size-1tib", _raw_field_tree(size=1 << 40), True, True, True),
    Case("mtime-past-2262", _raw_field_tree(mtime=1 << 63), True, True, True),
    Case("name-too-long", _raw_field_tree(name=b"n" * 300), True, True, True),
    Case("name-with-slash", _raw_field_tree(name=b"../f"), True, True, True),
    Case("kind-unknown", _raw_field_tree(kind=9), True, True, True),
    Case("manifest-chunk-4gib", _manifest_field(4 << 30), True, False, False),
    Case("manifest-chunk-zero", _manifest_field(0), True, False, False),
    Case("deep-tree", _deep, False, False, True),
]


def transport(root: Path) -> RemoteTransport:
    return open_transport(root.as_uri())


def publish_base(t: RemoteTransport) -> tuple[Builder, bytes, list[TreeEntry]]:
    """The remote's config, repo record and honest first commit (`heads/main`)."""
    t.put(packs.CONFIG_KEY, packs.render_config(DEFAULT_PARAMS))
    t.put(packs.repo_key("ds"), packs.render_repo("dataset", "flexible", []))
    b = Builder()
    base = [b.file(b"good.txt", GOOD), b.big(b"big.bin", BIG)]
    commit = make_commit(ObjectId(b.tree(*base)), (), "honest", T0, "base")
    cid = _put(t, b, commit.encode())
    t.put(packs.ref_key("ds", "heads/main"), packs.encode_ref(cid))
    return b, cid, base


def publish_case(t: RemoteTransport, case: Case, parent: bytes, base: list[TreeEntry]) -> Builder:
    """A second commit on `main` adding the case's `bad/`."""
    b = Builder()
    bad = case.build(b)
    root = b.tree(*base, bad)
    commit = make_commit(ObjectId(root), (ObjectId(parent),), "hostile", T0 + 1, "bad")
    cid = _put(t, b, commit.encode())
    t.put(packs.ref_key("ds", "heads/main"), packs.encode_ref(cid))
    return b


def _put(t: RemoteTransport, b: Builder, commit: bytes) -> bytes:
    cid = hash_bytes(commit)
    items = [*b.meta, packs.meta_item(cid, commit)]
    for kind, group in ((packs.CHUNKS, b.chunks), (packs.META, items)):
        if group:
            index, pack, idx = packs.build_pack(kind, group)
            t.put(packs.pack_key(kind, index.pack), pack)
            t.put(packs.index_key(kind, index.pack), idx)
    return cid
