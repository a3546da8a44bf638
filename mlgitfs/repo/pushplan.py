"""The push plan: what a remote lacks of some heads, children before parents (repo/push.py
uploads it; repo/bundle.py writes it to a file), and reading a planned chunk's stored bytes.

The walk stops at commits, trees and manifests the remote already has, so a push costs what
changed. With remote gc (docs/design.md, "gc (remote)"): an id the remote holds only in a
pack a gc condemned counts as absent, the walk never stops at metadata a gc kept for its
names only (`gc/expired`), and a plan made again during a push walks through what the
earlier plans uploaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mlgitfs.errors import CorruptObject, MissingObject
from mlgitfs.model.ids import ChunkId, ObjectId, hash_bytes, short_hex
from mlgitfs.model.objects import EntryKind, Manifest, Tree, TreeIndex
from mlgitfs.repo.remotegcstate import Condemned
from mlgitfs.repo.trees import MAX_DEPTH
from mlgitfs.store import compress, packs, remotedb
from mlgitfs.store.cache import Location
from mlgitfs.store.commitlist import CommitLinks, links_of
from mlgitfs.store.facade import Store
from mlgitfs.store.packs import CHUNKS, META

# (commit whose tree is walked, chunk id) -> whether that chunk may be absent because gc
# let it go (an expired version, an erased file): bundles carry the records instead
LetGo = Callable[[bytes | None, bytes], bool]


class Plan:
    """What the remote lacks, children before parents (see step 3 of the module note).
    An id the remote holds only in packs a remote gc condemned counts as absent, and the
    walk never stops at metadata a gc kept for its names only (`gc/expired`)."""

    def __init__(
        self,
        store: Store,
        remote: str,
        gcs: Condemned | None = None,
        let_go: LetGo | None = None,
        through: frozenset[bytes] = frozenset(),
    ) -> None:
        self.store = store
        self.remote = remote
        self.gcs = gcs or Condemned()
        # uploaded by an earlier plan of this push: walked through (what they name may be
        # condemned since), never uploaded twice
        self.through = through
        self.let_go = let_go  # None: every chunk must be there (a push)
        self.gone: list[bytes] = []  # chunks absent because `let_go` says they went
        self._commit: bytes | None = None  # the commit whose tree is being walked
        self.seen: set[bytes] = set()
        self.chunks: list[tuple[bytes, Location]] = []
        self.meta: list[tuple[bytes, bytes]] = []
        self.chunk_refs: dict[bytes, list[bytes]] = {}  # tree or manifest → chunks it names
        self.present: list[bytes] = []  # chunks the remote had already
        self.links: dict[bytes, CommitLinks] = {}  # for the meta packs' commit lists

    def _remote_has(self, kind: str, ids: Iterable[bytes]) -> set[bytes]:
        if kind == META and self.through:
            ids = [i for i in ids if i not in self.through]
        with self.store.env.read() as txn:
            if not self.gcs.packs and not self.gcs.expired:
                return {i for i in ids if remotedb.remote_has(txn, self.remote, kind, i)}
            return {
                i
                for i in ids
                if not (kind == META and i in self.gcs.expired)
                and any(
                    r == self.remote and not self.gcs.holds(kind, loc.pack)
                    for r, loc in remotedb.locate(txn, kind, i)
                )
            }

    def commits(self, heads: Iterable[bytes]) -> None:
        order: list[bytes] = []
        stack: list[tuple[bytes, bool]] = [(h, False) for h in heads]
        while stack:
            oid, done = stack.pop()
            if done:
                order.append(oid)
                continue
            if oid in self.seen or self._remote_has(META, [oid]):
                continue
            self.seen.add(oid)
            stack.append((oid, True))
            c = self.store.commit(ObjectId(oid))
            # inputs (commits of other repos) go too: lineage and fsck need them
            stack.extend((bytes(p), False) for p in (*c.parents, *(i for _, i in c.inputs)))
        for oid in order:  # parents first, each after its tree
            c = self.store.commit(ObjectId(oid))
            self._commit = oid
            self.tree(bytes(c.tree))
            self.meta.append((oid, c.encode()))
            self.links[oid] = links_of(c)

    def tree(self, root: bytes) -> None:
        """The directories below `root` the remote lacks, each after everything it names
        (iterative: a deep tree does not exhaust the stack)."""
        stack: list[tuple[bytes, Tree | TreeIndex | None, int]] = [(root, None, 0)]
        while stack:
            oid, expanded, depth = stack.pop()
            if expanded is not None:  # its children are planned: now the object itself
                self.meta.append((oid, expanded.encode()))
                continue
            if oid in self.seen or self._remote_has(META, [oid]):
                continue
            if depth > 2 * MAX_DEPTH:  # pages count as a level
                raise CorruptObject(short_hex(oid), f"a tree deeper than {MAX_DEPTH} levels")
            self.seen.add(oid)
            obj = self.store.get_object(ObjectId(oid))
            children: list[bytes] = []
            if isinstance(obj, TreeIndex):
                children = [bytes(p.page) for p in obj.pages]
            elif isinstance(obj, Tree):
                files = [e for e in obj.entries if e.kind is EntryKind.FILE]
                on_remote = self._remote_has(CHUNKS, [e.ref for e in files])
                self.chunk_refs[oid] = [e.ref for e in files]
                self.present.extend(on_remote)
                for e in obj.entries:
                    if e.kind is EntryKind.DIR:
                        children.append(e.ref)
                    elif e.kind is EntryKind.CHUNKED:
                        self.manifest(e.ref)
                    elif e.kind is EntryKind.FILE and e.ref not in on_remote:
                        self.chunk(e.ref)
            else:
                raise CorruptObject(short_hex(oid), "a directory entry names a non-tree object")
            stack.append((oid, obj, depth))
            stack.extend((c, None, depth + 1) for c in reversed(children))

    def manifest(self, oid: bytes) -> None:
        if oid in self.seen or self._remote_has(META, [oid]):
            return
        self.seen.add(oid)
        m = self.store.get(ObjectId(oid), Manifest)
        on_remote = self._remote_has(CHUNKS, [bytes(c.id) for c in m.chunks])
        self.chunk_refs[oid] = [bytes(c.id) for c in m.chunks]
        self.present.extend(on_remote)
        for c in m.chunks:
            if bytes(c.id) not in on_remote:
                self.chunk(bytes(c.id))
        self.meta.append((oid, m.encode()))

    def chunk(self, cid: bytes) -> None:
        if cid in self.seen:
            return
        self.seen.add(cid)
        with self.store.env.read() as txn:
            loc = self.store.chunks.location(txn, ChunkId(cid))
        if loc is None:  # only on another remote (a partial clone): bring it here first
            try:
                self.store.read_chunk(ChunkId(cid))
            except MissingObject:
                if self.let_go is None or not self.let_go(self._commit, cid):
                    raise
                self.gone.append(cid)  # expired or erased: its absence is recorded instead
                return
            with self.store.env.read() as txn:
                loc = self.store.chunks.location(txn, ChunkId(cid))
            assert loc is not None
        self.chunks.append((cid, loc))


def groups(sizes: Iterable[tuple[int, int]], target: int) -> list[list[int]]:
    """Indexes of consecutive items grouped into packs of about `target` bytes and at most
    PACK_ENTRIES items (readers refuse indexes of more than packs.MAX_PACK_ENTRIES)."""
    out: list[list[int]] = [[]]
    total = 0
    for i, size in sizes:
        if out[-1] and (total + size > target or len(out[-1]) >= packs.PACK_ENTRIES):
            out.append([])
            total = 0
        out[-1].append(i)
        total += size
    return [g for g in out if g]


def stored_chunk(store: Store, cid: bytes, loc: Location) -> tuple[bytes, int, bytes, int]:
    """(id, codec, stored bytes, raw length) of a local chunk, checked against its id (never
    spread local damage); `loc` is where the plan found it."""
    try:
        stored = store.chunks.read_stored(loc)
    except MissingObject:
        # a gc moved it to a new segment since the plan looked (store/compact.py)
        with store.env.read() as txn:
            moved = store.chunks.location(txn, ChunkId(cid))
        if moved is None or moved.pack() == loc.pack():
            raise
        loc = moved
        stored = store.chunks.read_stored(loc)
    raw = compress.decompress(loc.codec, stored, loc.raw_len, f"chunk {short_hex(cid)}")
    if len(raw) != loc.raw_len or hash_bytes(raw) != cid:
        raise CorruptObject(short_hex(cid), "local chunk does not hash to its id; run fsck")
    return cid, loc.codec, stored, loc.raw_len
