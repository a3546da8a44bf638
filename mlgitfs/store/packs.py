"""The remote pack format: packs of stored chunks or metadata objects, their indexes, the layout.

A pack is the plain concatenation of entries as stored in the chunk cache (already compressed,
codec RAW or ZSTD); its id is the BLAKE3 of its bytes, so uploading the same pack twice writes
the same key. Its index lists, in pack order, (object id, offset, length, raw length, codec):
entries are contiguous from offset 0 and end at the pack's size, so a hostile index cannot
point outside the pack or overlap entries. The index is msgpack
`["pidx", FORMAT, kind, pack id, pack size, [[id, off, len, raw_len, codec], ...]]` followed by
a 32-byte BLAKE3 trailer of those bytes; a reader checks the trailer and the pack id in the
key before it believes a single entry.

Layout under the remote prefix (keys relative to it):

    mlgitfs.toml                    format and chunker parameters
    packs/<pack id>.pack|.idx       chunk packs and their indexes
    meta/<pack id>.pack|.idx        packs of manifests, trees, tree indexes and commits
    meta/<pack id>.loc|.lidx        the meta pack's chunk locator (optional, see below)
    meta/<pack id>.cidx             the meta pack's commit list (optional, store/commitlist.py)
    refs/REPO/heads/BRANCH          a commit id in hex (and a newline); a signed move adds
                                    a line `stmt HEX`, its ref statement
    refs/REPO/tags/TAG
    repos/REPO                      the repo's kind, mutability and categories (TOML)
    stmts/<pack id>.spack           signed statements of commits (repo/statementsync.py)

An index is written after its pack, so an index never names a pack that is not there; a pack
without an index (an interrupted push) is invisible and harmless.

Chunk locators: a reader that has a tree page or manifest must find the chunk packs of its
files without reading every chunk pack index (that is O(dataset)). So a push writes, next to
each meta pack P, `meta/P.loc`: for each tree or manifest of P, one section of fixed-size
records (chunk id, chunk pack id, offset, length, raw length, codec) for the chunks it names
directly; and `meta/P.lidx`: msgpack `["lidx", 1, P, loc size, [[object id, offset, count,
BLAKE3 of the section], ...]]` plus a BLAKE3 trailer. Both are written before P's index, so
a visible meta pack has its locator (or none: pushes by older versions, which readers treat
as "read the chunk indexes"). The remote format stays 1: old readers ignore both keys.
A lying locator cannot make a reader serve bad bytes (every chunk is checked against its
id); at worst the chunk is reported corrupt.
"""

from __future__ import annotations

import json
import struct
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mlgitfs.errors import CorruptObject, InvalidName
from mlgitfs.model import codec
from mlgitfs.model.ids import ID_LEN, from_hex, hash_bytes, short_hex, to_hex
from mlgitfs.model.names import check_ref_name, check_repo_name
from mlgitfs.store import compress
from mlgitfs.store.chunker import ChunkerParams
from mlgitfs.store.remote import RemoteTransport

REMOTE_FORMAT = 1
INDEX_TAG = "pidx"
CHUNKS = "packs"  # kind of a chunk pack, also its key directory
META = "meta"  # kind of a metadata pack
KINDS = (CHUNKS, META)
PACK_TARGET = 32 << 20
MAX_RAW = compress.MAX_RAW  # no entry decompresses to more than this
CONFIG_KEY = "mlgitfs.toml"
# Size caps on what a remote hands us, checked before the bytes are read (a hostile 1.5 GB
# ref file was read whole): each is far above what a push writes.
REF_CAP = 4096  # a ref is 65 bytes, 600 or so with its ref statement
RECORD_CAP = 64 << 10  # mlgitfs.toml, repos/REPO
PACK_ENTRIES = 65536  # a push splits packs at this many entries
MAX_PACK_ENTRIES = 1 << 18  # a reader refuses an index (or locator index) of more
INDEX_CAP = 32 << 20  # bytes of a .idx or .lidx (MAX_PACK_ENTRIES of ~100 bytes)
_LOC = struct.Struct("<32sQIIB")  # pack id, offset, length, raw length, codec
_SEC = struct.Struct("<32s32sQIIB")  # chunk id, then a chunk's _LOC
LOCATOR_TAG = "lidx"


@dataclass(frozen=True, slots=True)
class PackEntry:
    id: bytes
    offset: int
    length: int
    raw_len: int
    codec: int


@dataclass(frozen=True, slots=True)
class PackLocation:
    """Where one chunk or object lives on a remote: a byte range of one pack."""

    kind: str
    pack: bytes
    offset: int
    length: int
    raw_len: int
    codec: int

    def pack_bytes(self) -> bytes:
        return _LOC.pack(self.pack, self.offset, self.length, self.raw_len, self.codec)

    @classmethod
    def unpack(cls, kind: str, data: bytes) -> PackLocation:
        return cls(kind, *_LOC.unpack(data))

    @property
    def key(self) -> str:
        return pack_key(self.kind, self.pack)


@dataclass(frozen=True, slots=True)
class PackIndex:
    kind: str
    pack: bytes
    size: int
    entries: tuple[PackEntry, ...]

    def encode(self) -> bytes:
        body = codec.pack(
            [
                INDEX_TAG,
                REMOTE_FORMAT,
                self.kind,
                self.pack,
                self.size,
                [[e.id, e.offset, e.length, e.raw_len, e.codec] for e in self.entries],
            ]
        )
        return body + hash_bytes(body)

    def location(self, e: PackEntry) -> PackLocation:
        return PackLocation(self.kind, self.pack, e.offset, e.length, e.raw_len, e.codec)


# --- keys -------------------------------------------------------------------------------------


def pack_key(kind: str, pack: bytes) -> str:
    return f"{kind}/{to_hex(pack)}.pack"


def index_key(kind: str, pack: bytes) -> str:
    return f"{kind}/{to_hex(pack)}.idx"


def parse_index_key(kind: str, key: str) -> bytes | None:
    """The pack id of `kind/<hex>.idx`, or None for any other key (packs, strays)."""
    prefix = kind + "/"
    if not key.startswith(prefix) or not key.endswith(".idx"):
        return None
    try:
        return from_hex(key[len(prefix) : -4])
    except CorruptObject:
        return None


def locator_key(pack: bytes) -> str:
    return f"{META}/{to_hex(pack)}.loc"


def locator_index_key(pack: bytes) -> str:
    return f"{META}/{to_hex(pack)}.lidx"


def ref_key(repo: str, ref: str) -> str:
    """`refs/REPO/heads/BRANCH` for ref "heads/BRANCH" (or tags/TAG)."""
    return f"refs/{check_repo_name(repo)}/{ref}"


def repo_key(repo: str) -> str:
    return f"repos/{check_repo_name(repo)}"


def parse_ref_key(repo: str, key: str) -> str | None:
    """ "heads/B" or "tags/T" from a listed ref key, or None when it is not a valid ref."""
    rest = key[len(f"refs/{repo}/") :]
    kind, _, name = rest.partition("/")
    if kind not in ("heads", "tags"):
        return None
    try:
        check_ref_name(name, "branch" if kind == "heads" else "tag")
    except InvalidName:
        return None
    return rest


def encode_ref(commit: bytes, statement: bytes | None = None) -> bytes:
    """A ref's bytes: the commit id in hex, and, when the move was signed, a second line
    `stmt HEX` with its ref statement (model/statement.py): one object, so the ref and the
    proof of who moved it change together, by the same compare-and-swap."""
    text = to_hex(commit) + "\n"
    if statement is not None:
        text += "stmt " + statement.hex() + "\n"
    return text.encode()


def decode_ref(key: str, data: bytes) -> bytes:
    return decode_ref_record(key, data)[0]


def decode_ref_record(key: str, data: bytes) -> tuple[bytes, bytes | None]:
    """(commit id, the ref statement's encoding or None) of a ref's bytes; the statement
    itself is decoded and checked by its reader."""
    try:
        lines = data.decode("ascii").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) in (1, 2):
            commit = from_hex(lines[0].strip())
            if len(lines) == 1:
                return commit, None
            tag, _, stmt = lines[1].partition(" ")
            if tag == "stmt" and stmt:
                return commit, bytes.fromhex(stmt)
    except (UnicodeDecodeError, CorruptObject, ValueError) as exc:
        raise CorruptObject(key, "a remote ref must hold one commit id in hex") from exc
    raise CorruptObject(key, "a remote ref holds a commit id in hex and at most a `stmt` line")


# --- capped reads ---------------------------------------------------------------------------


def get_capped(t: RemoteTransport, key: str, cap: int) -> bytes:
    """The object at `key`, read only up to `cap` bytes; CorruptObject when it is larger
    (RemoteKeyMissing when absent, like `get`)."""
    data = t.get_range(key, 0, cap + 1)
    if len(data) > cap:
        raise CorruptObject(key, f"larger than {cap} bytes: not what mlgitfs writes there")
    return data


def get_capped_with_etag(t: RemoteTransport, key: str, cap: int) -> tuple[bytes, str] | None:
    """`get_with_etag` for an object that must be small: its size is asked first, so a huge
    object is refused without being read (and refused after, if it grew in between)."""
    info = t.head(key)
    if info is None:
        return None
    if info.size > cap:
        raise CorruptObject(key, f"larger than {cap} bytes: not what mlgitfs writes there")
    got = t.get_with_etag(key)
    if got is not None and len(got[0]) > cap:
        raise CorruptObject(key, f"larger than {cap} bytes: not what mlgitfs writes there")
    return got


# --- building ---------------------------------------------------------------------------------


def build_pack(
    kind: str, items: Iterable[tuple[bytes, int, bytes, int]]
) -> tuple[PackIndex, bytes, bytes]:
    """(index, pack bytes, index bytes) from (id, codec, stored bytes, raw length) in order."""
    parts: list[bytes] = []
    entries: list[PackEntry] = []
    offset = 0
    for oid, codec_, stored, raw_len in items:
        entries.append(PackEntry(oid, offset, len(stored), raw_len, codec_))
        parts.append(stored)
        offset += len(stored)
    data = b"".join(parts)
    index = PackIndex(kind, hash_bytes(data), len(data), tuple(entries))
    return index, data, index.encode()


def meta_item(oid: bytes, data: bytes) -> tuple[bytes, int, bytes, int]:
    """A metadata object as a pack item: compressed like chunks when that helps."""
    codec_, stored = compress.compress(data)
    return oid, codec_, bytes(stored), len(data)  # no copy: `data` is bytes


# --- reading and verifying --------------------------------------------------------------------


def decode_index(kind: str, pack: bytes, data: bytes) -> PackIndex:
    """Verify and decode the index fetched from `index_key(kind, pack)`."""
    what = f"pack index {index_key(kind, pack)}"
    if len(data) < ID_LEN or hash_bytes(data[:-ID_LEN]) != data[-ID_LEN:]:
        raise CorruptObject(what, "index does not match its checksum (truncated or damaged)")
    value: Any = codec.unpack(data[:-ID_LEN], what)
    try:
        tag, fmt, kind_, pack_id, size, raw_entries = value
    except (TypeError, ValueError) as exc:
        raise CorruptObject(what, "malformed index") from exc
    if tag != INDEX_TAG or fmt != REMOTE_FORMAT or kind_ != kind or pack_id != pack:
        raise CorruptObject(what, "index names another pack, kind or format")
    if not isinstance(size, int) or not isinstance(raw_entries, list):
        raise CorruptObject(what, "malformed index")
    if len(raw_entries) > MAX_PACK_ENTRIES:
        raise CorruptObject(what, f"more than {MAX_PACK_ENTRIES} entries")
    entries = []
    offset = 0
    for raw in raw_entries:
        if not (isinstance(raw, list) and len(raw) == 5):
            raise CorruptObject(what, "malformed index entry")
        oid, off, length, raw_len, codec_ = raw
        ok = (
            isinstance(oid, bytes)
            and len(oid) == ID_LEN
            and off == offset
            and all(isinstance(v, int) and not isinstance(v, bool) for v in (length, raw_len))
            and 0 <= length <= MAX_RAW
            and 0 <= raw_len <= MAX_RAW
            and codec_ in (compress.RAW, compress.ZSTD)
        )
        if not ok:
            raise CorruptObject(what, "index entry out of bounds or malformed")
        entries.append(PackEntry(oid, off, length, raw_len, codec_))
        offset += length
    if offset != size:
        raise CorruptObject(what, "index entries do not cover the pack")
    return PackIndex(kind, pack, size, tuple(entries))


def open_entry(oid: bytes, loc: PackLocation, stored: memoryview) -> bytes | memoryview:
    """The raw bytes of one entry read from a pack, verified against its id (a view of
    `stored` when it was not compressed: a ranged GET's body is not copied chunk by chunk).

    Objects are not decoded here (that is the model's job); their raw bytes must hash to
    their id like chunks, which is what both checks share.
    """
    what = f"{'chunk' if loc.kind == CHUNKS else 'object'} {short_hex(oid)}"
    where = f"in {loc.key}"
    if len(stored) != loc.length:
        raise CorruptObject(short_hex(oid), f"truncated {what} {where}")
    raw = compress.decompress(loc.codec, stored, loc.raw_len, what)
    if len(raw) != loc.raw_len or hash_bytes(raw) != oid:
        raise CorruptObject(short_hex(oid), f"{what} {where} does not hash to its id")
    return raw


# --- chunk locators ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Section:
    """Where the locator records of one meta object are: a byte range of `meta/P.loc`."""

    pack: bytes  # the meta pack P
    offset: int
    count: int
    digest: bytes

    def pack_bytes(self) -> bytes:
        return self.pack + struct.pack("<QI", self.offset, self.count) + self.digest

    @classmethod
    def unpack(cls, data: bytes) -> Section:
        offset, count = struct.unpack("<QI", data[ID_LEN : ID_LEN + 12])
        return cls(data[:ID_LEN], offset, count, data[ID_LEN + 12 :])

    @property
    def length(self) -> int:
        return self.count * _SEC.size


def build_locator(
    pack: bytes, sections: Iterable[tuple[bytes, Iterable[tuple[bytes, PackLocation]]]]
) -> tuple[bytes, bytes]:
    """(loc bytes, lidx bytes) of meta pack `pack` from (object id, [(chunk id, location)])."""
    parts: list[bytes] = []
    table: list[list[Any]] = []
    offset = 0
    for oid, chunks in sections:
        body = b"".join(_SEC.pack(cid, *_LOC.unpack(loc.pack_bytes())) for cid, loc in chunks)
        if not body:
            continue
        table.append([oid, offset, len(body) // _SEC.size, hash_bytes(body)])
        parts.append(body)
        offset += len(body)
    index = codec.pack([LOCATOR_TAG, REMOTE_FORMAT, pack, offset, table])
    return b"".join(parts), index + hash_bytes(index)


def decode_locator_index(pack: bytes, data: bytes) -> dict[bytes, Section]:
    """Verify and decode `meta/P.lidx`: object id → its section."""
    what = f"locator index {locator_index_key(pack)}"
    if len(data) < ID_LEN or hash_bytes(data[:-ID_LEN]) != data[-ID_LEN:]:
        raise CorruptObject(what, "locator index does not match its checksum")
    value: Any = codec.unpack(data[:-ID_LEN], what)
    try:
        tag, fmt, pack_id, size, table = value
        if len(table) > MAX_PACK_ENTRIES:
            raise ValueError("too many sections")
        out: dict[bytes, Section] = {}
        offset = 0
        for oid, off, count, digest in table:
            ok = (
                isinstance(oid, bytes)
                and len(oid) == ID_LEN
                and off == offset
                and isinstance(count, int)
                and 0 < count <= MAX_RAW // _SEC.size
                and isinstance(digest, bytes)
                and len(digest) == ID_LEN
            )
            if not ok:
                raise ValueError("bad section")
            out[oid] = Section(pack, off, count, digest)
            offset += count * _SEC.size
    except (TypeError, ValueError) as exc:
        raise CorruptObject(what, "malformed locator index") from exc
    if tag != LOCATOR_TAG or fmt != REMOTE_FORMAT or pack_id != pack or size != offset:
        raise CorruptObject(what, "locator index names another pack or format")
    return out


def locator_packs(data: bytes) -> set[bytes]:
    """The chunk packs a `meta/P.loc` names (its records, whole or not, unchecked: remote gc
    only asks whether a locator still points at packs that stay)."""
    return {_SEC.unpack_from(data, i)[1] for i in range(0, len(data) - _SEC.size + 1, _SEC.size)}


def decode_section(oid: bytes, sec: Section, data: bytes) -> list[tuple[bytes, PackLocation]]:
    """The (chunk id, location) records of one object's section, checked against its digest."""
    if len(data) != sec.length or hash_bytes(data) != sec.digest:
        raise CorruptObject(
            f"locator of {short_hex(oid)}", f"section in {locator_key(sec.pack)} is damaged"
        )
    out = []
    for i in range(sec.count):
        cid, pack, off, length, raw_len, codec_ = _SEC.unpack_from(data, i * _SEC.size)
        if codec_ not in (compress.RAW, compress.ZSTD) or length > MAX_RAW or raw_len > MAX_RAW:
            raise CorruptObject(f"locator of {short_hex(oid)}", "record out of bounds")
        out.append((cid, PackLocation(CHUNKS, pack, off, length, raw_len, codec_)))
    return out


# --- remote config and repo records -----------------------------------------------------------


def render_config(params: ChunkerParams) -> bytes:
    return (
        "# mlgitfs remote: do not edit\n"
        f"format = {REMOTE_FORMAT}\n"
        f"chunker = {json.dumps(params.as_list())}  # FastCDC min, avg, max, normalization\n"
    ).encode()


def parse_config(data: bytes, where: str) -> tuple[int, ChunkerParams]:
    try:
        doc = tomllib.loads(data.decode("utf-8"))
        fmt = doc["format"]
        raw = doc["chunker"]
        if not isinstance(fmt, int) or not (
            isinstance(raw, list) and len(raw) == 4 and all(isinstance(v, int) for v in raw)
        ):
            raise ValueError("bad types")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, ValueError) as exc:
        raise CorruptObject(f"{where}/{CONFIG_KEY}", "not a valid mlgitfs remote config") from exc
    return fmt, ChunkerParams(*raw)


def render_repo(kind: str, mutability: str, categories: Iterable[str]) -> bytes:
    return (
        f"kind = {json.dumps(kind)}\nmutability = {json.dumps(mutability)}\n"
        f"categories = {json.dumps(list(categories))}\n"
    ).encode()


def parse_repo(data: bytes, key: str) -> tuple[str, str, tuple[str, ...]]:
    try:
        doc = tomllib.loads(data.decode("utf-8"))
        kind, mut, cats = doc["kind"], doc["mutability"], doc["categories"]
        if not (isinstance(kind, str) and isinstance(mut, str) and isinstance(cats, list)):
            raise ValueError("bad types")
        if not all(isinstance(c, str) for c in cats):
            raise ValueError("bad categories")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError, ValueError) as exc:
        raise CorruptObject(key, "not a valid repo record") from exc
    return kind, mut, tuple(cats)
