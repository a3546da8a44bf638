"""Remote gc's mark: what a remote holds (refs, retention rules, pack indexes) and what its
refs reach, with retention applied as the remote's own rules (`retention/REPO`) decide.

Refs are read before the indexes are listed: a push writes every index before it moves a
ref, so whatever a ref read here names is in an index listed after it. Objects are read
from the local store when it has them (same id, same bytes), else from the remote's meta
packs (each pack downloaded once, whole, and every entry checked against its id).
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mlgitfs.errors import CorruptObject, RemoteKeyMissing
from mlgitfs.meta import db
from mlgitfs.meta.erasures import ErasureRecord
from mlgitfs.model.decode import decode
from mlgitfs.model.ids import ObjectId, from_hex, short_hex
from mlgitfs.model.objects import Commit, EntryKind, Manifest, Tree, TreeEntry
from mlgitfs.model.retention import Rule
from mlgitfs.repo import erase, erasuresync, expiry, retentionsync
from mlgitfs.repo.gcmark import Marker
from mlgitfs.repo.sync import read_ref
from mlgitfs.store import packs
from mlgitfs.store.facade import Store
from mlgitfs.store.packs import CHUNKS, KINDS, META, PackIndex
from mlgitfs.store.remote import RemoteTransport

PARALLEL = 16
Pack = tuple[str, bytes]  # (kind, pack id)
RefKey = tuple[str, str]  # (remote repo, "heads/B" or "tags/T")


@dataclass
class RemoteView:
    """The remote as the gc read it: refs, the indexes of visible packs, and the packs
    without a (valid) index (a push killed between pack and index, or still uploading)."""

    refs: dict[RefKey, bytes] = field(default_factory=dict)
    indexes: dict[Pack, PackIndex] = field(default_factory=dict)
    index_bytes: dict[Pack, int] = field(default_factory=dict)
    unindexed: dict[Pack, set[str]] = field(default_factory=dict)  # pack → its keys present
    rules: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    let_go: set[bytes] = field(default_factory=set)  # commits an earlier gc let expire
    # the remote's erasure records (`erasures/REPO`, repo/erasuresync.py) and, after a mark,
    # the chunks only erased files hold: dead, and every pack holding one is rewritten
    erasures: list[ErasureRecord] = field(default_factory=list)
    erased_chunks: set[bytes] = field(default_factory=set)

    def holders(self) -> dict[bytes, list[Pack]]:
        """Every id → the visible packs holding it."""
        out: dict[bytes, list[Pack]] = {}
        for pack, index in self.indexes.items():
            for e in index.entries:
                out.setdefault(e.id, []).append(pack)
        return out


def read_refs(t: RemoteTransport) -> dict[RefKey, bytes]:
    """Every ref of every repo on the remote."""
    names: list[RefKey] = []
    for key in t.list("refs/"):
        repo = key.split("/")[1] if key.count("/") >= 3 else ""
        ref = packs.parse_ref_key(repo, key) if repo else None
        if ref is not None:
            names.append((repo, ref))

    def one(name: RefKey) -> tuple[RefKey, bytes | None]:
        return name, read_ref(t, packs.ref_key(*name))[0]

    with ThreadPoolExecutor(PARALLEL, thread_name_prefix="mlgitfs-gcref") as pool:
        return {name: oid for name, oid in pool.map(one, names) if oid is not None}


def list_packs(t: RemoteTransport) -> dict[Pack, set[str]]:
    """Every pack-related key, by pack: its suffixes present (pack, idx, loc, lidx, cidx)."""
    out: dict[Pack, set[str]] = {}
    for kind in KINDS:
        for key in t.list(kind + "/"):
            name, _, suffix = key[len(kind) + 1 :].partition(".")
            try:
                pack = from_hex(name)
            except CorruptObject:
                continue  # not ours: never touched
            if suffix in ("pack", "idx", "loc", "lidx", "cidx"):
                out.setdefault((kind, pack), set()).add(suffix)
    return out


def read_indexes(t: RemoteTransport, view: RemoteView, listed: dict[Pack, set[str]]) -> None:
    """Read the indexes of `listed` packs not in `view` yet; a pack whose index is missing
    or fails its check goes to `view.unindexed` (invisible to every reader)."""
    todo = [p for p, suffixes in listed.items() if "idx" in suffixes and p not in view.indexes]

    def one(pack: Pack) -> tuple[Pack, PackIndex | None, int]:
        try:
            data = packs.get_capped(t, packs.index_key(*pack), packs.INDEX_CAP)
            return pack, packs.decode_index(pack[0], pack[1], data), len(data)
        except (RemoteKeyMissing, CorruptObject):
            return pack, None, 0

    with ThreadPoolExecutor(PARALLEL, thread_name_prefix="mlgitfs-gcidx") as pool:
        for pack, index, size in pool.map(one, todo):
            if index is not None:
                view.indexes[pack] = index
                view.index_bytes[pack] = size
    view.unindexed = {p: s for p, s in listed.items() if p not in view.indexes}


def read_view(t: RemoteTransport) -> RemoteView:
    view = RemoteView(refs=read_refs(t))  # refs first: see the module note
    read_indexes(t, view, list_packs(t))
    for repo in sorted({repo for repo, _ in view.refs}):
        rules, _ = retentionsync.read_remote(t, repo)
        view.rules[repo] = rules.rules if rules is not None else ()
        view.let_go.update(retentionsync.read_expired(t, repo))
        view.erasures += [r for r, _ in erasuresync.read_remote(t, repo)[0]]
    return view


class ObjectSource:
    """Metadata objects by id: the local store's when it has them, else from the remote's
    meta packs (each downloaded whole once, entries checked against their ids)."""

    def __init__(self, store: Store, t: RemoteTransport, view: RemoteView) -> None:
        self.store, self.t, self.view = store, t, view
        self._where: dict[bytes, tuple[bytes, int]] = {}
        self._packs: dict[bytes, bytes] = {}
        self.fetched_bytes = 0
        self.update()

    def update(self) -> None:
        """Learn the meta packs the view holds now (after a re-read of new indexes)."""
        for (kind, pack), index in self.view.indexes.items():
            if kind == META:
                for i, e in enumerate(index.entries):
                    self._where.setdefault(e.id, (pack, i))

    def load(self, oid: bytes) -> bytes:
        with self.store.env.read() as txn:
            data = db.get_object_bytes(txn, ObjectId(oid))
        if data is not None:
            return data
        if oid not in self._where:
            raise CorruptObject(
                short_hex(oid), "reachable from a remote ref but in no pack of the remote: "
                "remote gc deleted nothing; run 'mlgitfs fsck --remote'",
            )  # fmt: skip
        pack, i = self._where[oid]
        return bytes(self.entry(META, pack, i))

    def maybe(self, oid: bytes) -> bytes | None:
        """`load`, None for an object in no pack (erase's walks skip those)."""
        try:
            return self.load(oid)
        except CorruptObject:
            return None

    def entry(self, kind: str, pack: bytes, i: int) -> bytes | memoryview:
        """The raw bytes of entry `i` of a pack, verified (the pack is read whole once)."""
        index = self.view.indexes[(kind, pack)]
        body = self._packs.get(pack)
        if body is None:
            body = self.t.get(packs.pack_key(kind, pack))
            self.fetched_bytes += len(body)
            self._packs[pack] = body
        e = index.entries[i]
        stored = memoryview(body)[e.offset : e.offset + e.length]
        return packs.open_entry(e.id, index.location(e), stored)

    def stored(self, kind: str, pack: bytes, i: int) -> tuple[bytes, int, bytes, int]:
        """(id, codec, stored bytes, raw length) of entry `i`, verified: a repack item."""
        self.entry(kind, pack, i)
        e = self.view.indexes[(kind, pack)].entries[i]
        return e.id, e.codec, self._packs[pack][e.offset : e.offset + e.length], e.raw_len

    def drop(self, pack: bytes) -> None:
        self._packs.pop(pack, None)

    def commit_node(self, oid: ObjectId) -> expiry.Node | None:
        try:
            obj = decode(self.load(oid), oid)
        except CorruptObject:
            return None
        return (obj.parents, obj.time_ns) if isinstance(obj, Commit) else None


def chunk_refs(data: bytes, oid: bytes) -> list[bytes]:
    """The chunks a tree's one-chunk files or a manifest name directly (its locator)."""
    obj = decode(data, oid)
    if isinstance(obj, Manifest):
        return [bytes(c.id) for c in obj.chunks]
    if isinstance(obj, Tree):
        return [bytes(e.ref) for e in obj.entries if e.kind is EntryKind.FILE]
    return []


def mark(
    source: ObjectSource, refs: Iterable[tuple[RefKey, bytes]], rules: dict[str, tuple[Rule, ...]],
    now_ns: int, marker: Marker | None = None, expired: frozenset[bytes] | None = None,
    let_go: Iterable[bytes] = (),
) -> tuple[Marker, dict[ObjectId, tuple[str, str]]]:  # fmt: skip
    """Mark from `refs` (with `marker` and `expired`: extend an earlier mark, keeping its
    expiry decisions). Returns the marker and the newly expired commits with (repo, rule).
    A commit in `let_go` (an earlier gc deleted its contents) stays expired whatever the
    rules say now: its chunks are gone."""
    refs = list(refs)
    decided: dict[ObjectId, tuple[str, str]] = {}
    if expired is None:
        stored = [(repo, ref, ObjectId(head)) for (repo, ref), head in refs]
        decided = expiry.decide(stored, source.commit_node, rules, frozenset(), now_ns)
        before = set(let_go)
        decided = {c: why for c, why in decided.items() if bytes(c) not in before}
        expired = frozenset(bytes(c) for c in decided) | before
    marker = marker or Marker()
    heads = [head for _, head in refs]
    records = source.view.erasures
    kept: list[TreeEntry] = []
    if records:  # as local gc: an erased occurrence keeps no chunk another file does not need
        marker.erased = frozenset().union(*(r.file_ids for r in records))
        kept = erase.keepers_by(source.maybe, records, heads, expired)
    marker.walk(source.load, heads, expired=expired, kept=kept)
    if records:
        source.view.erased_chunks = erase.erased_chunks_by(source.maybe, records, marker.chunks)
    return marker, decided


def live_ids(marker: Marker, kind: str) -> set[bytes]:
    return marker.chunks if kind == CHUNKS else marker.objects
