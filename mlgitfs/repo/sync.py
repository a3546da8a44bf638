"""Push, fetch, pull, clone and prefetch: moving versions between a store and a remote.

Push ordering (design §4; docs/remotes.md has the crash states):
1. learn what the remote has: read the pack indexes not seen before (cached in LMDB);
2. read each remote ref with its ETag; a ref the local one does not descend from is refused
   before anything is uploaded (NotFastForward, "pull first");
3. walk from the local heads, stopping at commits and subtrees the remote already has, so
   the cost follows what changed; the walk lists children before parents;
4. upload chunk packs (pack, then its index) in parallel, and only when all are up, the
   metadata packs one after another in walk order, each with its chunk locator (pack,
   locator, then index: store/packs.py). A metadata object therefore becomes
   visible (its index written) only after every chunk and object it names: whatever an
   interrupted push leaves visible is complete, which is what makes step 3's "stop at what
   the remote has" safe;
5. write `repos/REPO` if absent, then move each ref by compare-and-swap: If-Match the ETag
   read in step 2, If-None-Match: * to create. A lost race re-reads the ref: still a
   fast-forward → retry; otherwise NotFastForward. Tags never move.
6. unpin the chunks the remote now has (local imports and commits pin theirs), so the
   cache budget may evict them; they are fetched again on demand.
An interrupted push leaves every remote ref where it was; a rerun uploads only what is
missing (its index refresh sees the packs that made it).

Fetch writes objects (verified, decoded) before the remote-tracking refs that name them,
in one LMDB transaction for the refs; clone creates the repo and its branches last, so a
killed clone leaves no half-made repo and can simply be run again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mlgitfs.errors import (
    AlreadyExists,
    ConflictError,
    CorruptObject,
    MissingObject,
    MlgitError,
    NotFastForward,
    PreconditionFailed,
    RemoteError,
    RemoteKeyMissing,
    UnknownRef,
    UnknownRepo,
)
from mlgitfs.meta import chunks, db
from mlgitfs.meta.db import Mutability, RepoKind, RepoRecord
from mlgitfs.meta.remotes import RemoteRecord
from mlgitfs.model.ids import ChunkId, ObjectId, hash_bytes, short_hex
from mlgitfs.model.names import check_repo_name
from mlgitfs.model.objects import Commit, EntryKind, Manifest, Tree, TreeIndex
from mlgitfs.progress import announce
from mlgitfs.repo import remotes, retentionsync
from mlgitfs.repo.commitindex import index_commits
from mlgitfs.repo.gate import Candidate, HookOptions
from mlgitfs.repo.graph import ensure_generations, is_ancestor
from mlgitfs.repo.merge import Strategy
from mlgitfs.repo.mergebranch import merge_into_branch
from mlgitfs.repo.trees import MAX_DEPTH
from mlgitfs.store import compress, packs, remotedb
from mlgitfs.store.cache import Location
from mlgitfs.store.facade import Store
from mlgitfs.store.packs import CHUNKS, META
from mlgitfs.store.remote import RemoteTransport

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
UPLOADERS = 8
CAS_RETRIES = 5


@dataclass(frozen=True, slots=True)
class RefUpdate:
    ref: str  # "heads/main" or "tags/v1"
    old: bytes | None
    new: bytes | None
    status: str  # "created", "updated", "up to date", "rejected", "failed", "deleted"
    message: str = ""


@dataclass
class TransferStats:
    packs: int = 0
    meta_packs: int = 0
    chunks: int = 0
    objects: int = 0
    bytes: int = 0
    requests: int = 0
    seconds: float = 0.0


@dataclass
class SyncOutcome:
    remote: str
    repo: str
    updates: list[RefUpdate] = field(default_factory=list)
    stats: TransferStats = field(default_factory=TransferStats)


# --- push ---------------------------------------------------------------------------------


class _Plan:
    """What the remote lacks, children before parents (see step 3 of the module note)."""

    def __init__(self, store: Store, remote: str) -> None:
        self.store = store
        self.remote = remote
        self.seen: set[bytes] = set()
        self.chunks: list[tuple[bytes, Location]] = []
        self.meta: list[tuple[bytes, bytes]] = []
        self.chunk_refs: dict[bytes, list[bytes]] = {}  # tree or manifest → chunks it names
        self.present: list[bytes] = []  # chunks the remote had already

    def _remote_has(self, kind: str, ids: Iterable[bytes]) -> set[bytes]:
        with self.store.env.read() as txn:
            return {i for i in ids if remotedb.remote_has(txn, self.remote, kind, i)}

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
            self.tree(bytes(c.tree))
            self.meta.append((oid, c.encode()))

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
            self.store.read_chunk(ChunkId(cid))
            with self.store.env.read() as txn:
                loc = self.store.chunks.location(txn, ChunkId(cid))
            assert loc is not None
        self.chunks.append((cid, loc))


def _groups(sizes: Iterable[tuple[int, int]], target: int) -> list[list[int]]:
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


class _Uploader:
    def __init__(
        self, store: Store, rec: RemoteRecord, t: RemoteTransport, progress: Progress | None
    ):
        self.store = store
        self.rec = rec
        self.t = t
        self.progress = progress
        self.stats = TransferStats()
        self._chunk_bytes = 0  # stored bytes of the chunks uploaded, against the plan's total
        self._lock = threading.Lock()

    def _stored_chunk(self, cid: bytes, loc: Location) -> tuple[bytes, int, bytes, int]:
        try:
            stored = self.store.chunks.read_stored(loc)
        except MissingObject:
            # a gc moved it to a new segment since the plan looked (store/compact.py)
            with self.store.env.read() as txn:
                moved = self.store.chunks.location(txn, ChunkId(cid))
            if moved is None or moved.pack() == loc.pack():
                raise
            loc = moved
            stored = self.store.chunks.read_stored(loc)
        raw = compress.decompress(loc.codec, stored, loc.raw_len, f"chunk {short_hex(cid)}")
        if len(raw) != loc.raw_len or hash_bytes(raw) != cid:  # never spread local damage
            raise CorruptObject(short_hex(cid), "local chunk does not hash to its id; run fsck")
        return cid, loc.codec, stored, loc.raw_len

    def upload(
        self,
        kind: str,
        items: list[tuple[bytes, int, bytes, int]],
        chunk_refs: dict[bytes, list[bytes]] | None = None,
    ) -> None:
        index, data, idx = packs.build_pack(kind, items)
        self.t.put(packs.pack_key(kind, index.pack), data)
        sections: dict[bytes, packs.Section] = {}
        if chunk_refs is not None:  # a meta pack: its locator goes up before its index
            loc, lidx = self._locator(index.pack, [it[0] for it in items], chunk_refs)
            self.t.put(packs.locator_key(index.pack), loc)
            self.t.put(packs.locator_index_key(index.pack), lidx)
            sections = packs.decode_locator_index(index.pack, lidx)
        self.t.put(packs.index_key(kind, index.pack), idx)  # after the pack: see packs.py
        with self.store.env.write() as txn:
            remotedb.record_index(txn, self.rec.name, index)
            if chunk_refs is not None:
                remotedb.record_locator_index(txn, self.rec.name, index.pack, sections)
        with self._lock:
            s = self.stats
            if kind == CHUNKS:
                s.packs += 1
                s.chunks += len(items)
                self._chunk_bytes += sum(len(it[2]) for it in items)
            else:
                s.meta_packs += 1
                s.objects += len(items)
            s.bytes += len(data) + len(idx)
            s.requests += 2
            if self.progress is not None and kind == CHUNKS:  # the unit: chunks
                self.progress(s.chunks, self._chunk_bytes)

    def _locator(
        self, pack: bytes, oids: list[bytes], chunk_refs: dict[bytes, list[bytes]]
    ) -> tuple[bytes, bytes]:
        """The locator of a meta pack: where this remote keeps the chunks of its objects
        (all uploaded or found on the remote before any meta pack goes up)."""
        name = self.rec.name
        sections = []
        with self.store.env.read() as txn:
            for oid in oids:
                found = []
                for cid in dict.fromkeys(chunk_refs.get(oid, ())):
                    locs = [loc for r, loc in remotedb.locate(txn, CHUNKS, cid) if r == name]
                    if locs:
                        found.append((cid, locs[0]))
                sections.append((oid, found))
        return packs.build_locator(pack, sections)

    def chunk_pack(self, group: list[tuple[bytes, Location]]) -> None:
        self.upload(CHUNKS, [self._stored_chunk(cid, loc) for cid, loc in group])

    def run(self, plan: _Plan, target: int) -> None:
        announce(self.progress, len(plan.chunks), sum(loc.stored_len for _, loc in plan.chunks))
        groups = _groups(((i, loc.stored_len) for i, (_, loc) in enumerate(plan.chunks)), target)
        with ThreadPoolExecutor(UPLOADERS, thread_name_prefix="mlgitfs-push") as pool:
            list(pool.map(lambda g: self.chunk_pack([plan.chunks[i] for i in g]), groups))
        items = [packs.meta_item(oid, data) for oid, data in plan.meta]
        for g in _groups(((i, len(it[2])) for i, it in enumerate(items)), target):
            # in order: children before parents
            self.upload(META, [items[i] for i in g], plan.chunk_refs)


def read_ref(t: RemoteTransport, key: str) -> tuple[bytes | None, str | None]:
    got = packs.get_capped_with_etag(t, key, packs.REF_CAP)
    if got is None:
        return None, None
    return packs.decode_ref(key, got[0]), got[1]


def _contains(store: Store, ancestor: bytes, head: bytes) -> bool:
    if ancestor == head:
        return True
    if not store.has_object(ObjectId(ancestor)):
        return False  # never fetched: it cannot be in our history
    return is_ancestor(store, ObjectId(ancestor), ObjectId(head))


def _tracking(store: Store, repo: str, remote: str, ref: str) -> bytes | None:
    with store.env.read() as txn:
        return db.get_ref(txn, repo, remotes.tracking_ref(remote, ref))


def set_tracking(store: Store, repo: str, remote: str, values: dict[str, bytes | None]) -> None:
    with store.env.write() as txn:
        for ref, new in values.items():
            name = remotes.tracking_ref(remote, ref)
            cur = db.get_ref(txn, repo, name)
            if cur != new:
                db.set_ref(txn, repo, name, ObjectId(new) if new else None, cur, f"sync {remote}")


def _rejection(repo: str, ref: str, known: bytes | None, now: bytes | None) -> str:
    kind, name = ref.split("/", 1)
    if kind == "tags":
        return f"tag {repo}@{name} is at {short_hex(now or b'')} on the remote; tags never move"
    if known is None or known == now:
        return (
            f"remote {repo}@{name} is at {short_hex(now or b'')}, which is not in the local "
            "history; pull first"
        )
    return f"remote {name} moved from {short_hex(known)} to {short_hex(now or b'')}; pull first"


def _pre_push(
    store: Store,
    repo: str,
    todo: list[tuple[str, bytes, bytes | None, str | None]],
    hooks: HookOptions,
) -> None:
    """pre-push hooks of each branch about to move on the remote, before anything is sent:
    read from the pushed version (the local branch's head), with the remote's head (an
    ancestor, so local) as the base; a refusal sends nothing."""
    for ref, new, old, _ in todo:
        if not ref.startswith("heads/"):
            continue
        branch, cid = ref.removeprefix("heads/"), ObjectId(new)
        base = ObjectId(old) if old is not None else None
        gate = hooks.gate(store, branch, cid)
        cand = Candidate(
            repo, branch, base, cid, store.commit(cid).tree,
            store.commit(base).tree if base is not None else None,
        )  # fmt: skip
        try:
            gate.run(cand, ("pre-push",))
        finally:
            gate.flush()


def push(
    store: Store,
    repo: str,
    branch: str | None,
    remote: str | None = None,
    all_refs: bool = False,
    progress: Progress | None = None,
    pack_target: int = packs.PACK_TARGET,
    hooks: HookOptions | None = None,
) -> SyncOutcome:
    t0 = time.perf_counter()
    rec = remotes.choose(store, remote)
    if not rec.conditional_writes:
        raise remotes.no_conditional_writes(rec)
    with store.env.read() as txn:
        repo_rec = db.get_repo(txn, repo)
        if all_refs:
            local = [
                (r, o) for r, o in db.list_refs(txn, repo) if r.startswith(("heads/", "tags/"))
            ]
        else:
            head = db.get_ref(txn, repo, "heads/" + (branch or "main"))
            if head is None:
                raise UnknownRef(f"{repo} has no branch {branch or 'main'!r}")
            local = [("heads/" + (branch or "main"), head)]
    t = store.remote.transport(rec)
    remote_repo = rec.remote_repo(repo)
    remotes.check_config(store, rec.url, t, create=True)
    has_repo = _check_remote_repo(t, remote_repo, repo_rec)
    out = SyncOutcome(rec.name, repo)
    todo: list[tuple[str, bytes, bytes | None, str | None]] = []
    for ref, new in local:
        try:
            old, etag = read_ref(t, packs.ref_key(remote_repo, ref))
        except RemoteError as exc:  # one ref the remote cannot answer for stops only itself
            out.updates.append(RefUpdate(ref, None, new, "failed", exc.message))
            continue
        if old == new:
            out.updates.append(RefUpdate(ref, old, new, "up to date"))
        elif old is not None and (ref.startswith("tags/") or not _contains(store, old, new)):
            known = _tracking(store, repo, rec.name, ref)
            out.updates.append(
                RefUpdate(ref, old, new, "rejected", _rejection(repo, ref, known, old))
            )
        else:
            todo.append((ref, new, old, etag))
    _pre_push(store, repo, todo, hooks or HookOptions())
    set_tracking(store, repo, rec.name, {u.ref: u.old for u in out.updates if u.status != "failed"})
    if todo:
        store.remote.refresh(rec, CHUNKS)
        store.remote.refresh(rec, META)
        plan = _Plan(store, rec.name)
        plan.commits([new for _, new, _, _ in todo])
        up = _Uploader(store, rec, t, progress)
        up.run(plan, pack_target)
        out.stats = up.stats
        if not has_repo:
            _write_remote_repo(t, remote_repo, repo_rec)
        for ref, new_head, old, etag in todo:
            # Each ref on its own: one that cannot be written (a `file://` remote holding
            # `feature` cannot hold `feature/x`) never keeps the others, main above all, back.
            try:
                update = _move_ref(store, t, repo, remote_repo, rec.name, ref, new_head, old, etag)
            except (RemoteError, NotFastForward) as exc:
                update = RefUpdate(ref, old, new_head, "failed", exc.message)
            out.updates.append(update)
        # the remote has them now (indexed, so durable there): the budget may evict them
        with store.env.write() as txn:
            chunks.unpin(txn, [cid for cid, _ in plan.chunks])
            chunks.unpin(txn, plan.present)
        store.remote.enforce_budget(force=True)
    retentionsync.publish(store, t, repo, remote_repo)  # after the refs: see retentionsync
    out.stats.seconds = time.perf_counter() - t0
    failed = [u for u in out.updates if u.status == "failed"]
    rejected = [u for u in out.updates if u.status == "rejected"]
    if failed or rejected:
        moved = [u.ref for u in out.updates if u.status in ("created", "updated", "up to date")]
        done = f" (pushed: {', '.join(moved)})" if moved else ""
        reasons = [f"{u.ref}: {u.message}" for u in failed] + [u.message for u in rejected]
        error = RemoteError if failed else NotFastForward
        raise error(f"not pushed: {'; '.join(reasons)}{done}")
    return out


def _move_ref(
    store: Store,
    t: RemoteTransport,
    repo: str,
    remote_repo: str,
    remote: str,
    ref: str,
    new: bytes,
    old: bytes | None,
    etag: str | None,
) -> RefUpdate:
    key = packs.ref_key(remote_repo, ref)
    first = old
    for _ in range(CAS_RETRIES):
        try:
            if etag is None:
                t.put_if_absent(key, packs.encode_ref(new))
            else:
                t.put_if_match(key, packs.encode_ref(new), etag)
        except PreconditionFailed:
            now, etag = read_ref(t, key)
            if now == new:
                break  # someone pushed the very same commit
            if now is not None and (ref.startswith("tags/") or not _contains(store, now, new)):
                set_tracking(store, repo, remote, {ref: now})
                return RefUpdate(ref, now, new, "rejected", _rejection(repo, ref, first, now))
            old = now
            continue
        break
    else:
        raise NotFastForward(f"remote {ref} keeps moving; try again")
    set_tracking(store, repo, remote, {ref: new})
    return RefUpdate(ref, old, new, "created" if old is None else "updated")


def _check_remote_repo(t: RemoteTransport, remote_repo: str, rec: RepoRecord) -> bool:
    """Whether the remote has the repo's record; ConflictError if it is another kind of repo."""
    key = packs.repo_key(remote_repo)
    try:
        kind, mut, _ = packs.parse_repo(packs.get_capped(t, key, packs.RECORD_CAP), key)
    except RemoteKeyMissing:
        return False
    if (kind, mut) != (rec.kind.value, rec.mutability.value):
        raise ConflictError(
            f"the remote's {remote_repo} is a {kind} repo ({mut}); the local {rec.name} is a "
            f"{rec.kind.value} repo ({rec.mutability.value}): refusing to mix them"
        )
    return True


def _write_remote_repo(t: RemoteTransport, remote_repo: str, rec: RepoRecord) -> None:
    data = packs.render_repo(rec.kind.value, rec.mutability.value, rec.categories)
    # created meanwhile: _check_remote_repo compared kinds before the upload
    with contextlib.suppress(PreconditionFailed):
        t.put_if_absent(packs.repo_key(remote_repo), data)


# --- fetch, pull, clone ---------------------------------------------------------------------


def _remote_refs(t: RemoteTransport, remote_repo: str) -> dict[str, bytes]:
    base = f"refs/{remote_repo}/"
    names = [n for n in (packs.parse_ref_key(remote_repo, k) for k in t.list(base)) if n]

    def read(ref: str) -> tuple[str, bytes | None]:
        return ref, read_ref(t, base + ref)[0]

    with ThreadPoolExecutor(8, thread_name_prefix="mlgitfs-refs") as pool:
        return {ref: oid for ref, oid in pool.map(read, names) if oid is not None}


def missing_objects(store: Store, ids: Iterable[bytes]) -> list[bytes]:
    with store.env.read() as txn:
        return [i for i in dict.fromkeys(ids) if not db.has_object(txn, i)]


def _fetch_history(
    store: Store, heads: Iterable[bytes], stats: TransferStats, progress: Progress | None
) -> None:
    """Commits reachable from `heads` (and their inputs and root trees) into the store.

    `progress` counts objects (commits and root trees; no file contents are fetched) and
    their bytes. Their total is not known ahead: each commit names only its parents."""

    def arrived(objects: int, nbytes: int) -> None:
        stats.objects += objects
        stats.bytes += nbytes
        if progress is not None:
            progress(stats.objects, stats.bytes)

    heads = list(heads)
    frontier = missing_objects(store, heads)
    inputs: list[bytes] = []
    fetched: list[bytes] = []
    while frontier:
        got = store.remote.fetch_objects(frontier, arrived)
        fetched.extend(got)
        nxt: list[bytes] = []
        for oid, obj in got.items():
            if not isinstance(obj, Commit):
                raise CorruptObject(short_hex(oid), f"a ref or parent names a {obj.TAG}")
            nxt.extend(bytes(p) for p in obj.parents)
            inputs.extend(bytes(i) for _, i in obj.inputs)
        frontier = missing_objects(store, nxt)
    roots = [bytes(store.commit(ObjectId(h)).tree) for h in heads]
    store.remote.fetch_objects(missing_objects(store, inputs + roots), arrived)
    ensure_generations(store, [ObjectId(h) for h in heads])  # while the history is at hand
    try:  # the trees each new commit changed are read (fetched) to make its record
        index_commits(store, fetched)
    except MlgitError as exc:  # the index only saves work: log walks unindexed commits
        log.info("commit-graph records of fetched commits not written: %s", exc)


def fetch(
    store: Store, repo: str, remote: str | None = None, progress: Progress | None = None
) -> SyncOutcome:
    t0 = time.perf_counter()
    with store.env.read() as txn:
        db.get_repo(txn, repo)
    rec = remotes.choose(store, remote)
    out = _fetch(store, rec, repo, progress)
    theirs, _ = retentionsync.read_remote(store.remote.transport(rec), rec.remote_repo(repo))
    with store.env.write() as txn:
        retentionsync.adopt(txn, repo, theirs)
    out.stats.seconds = time.perf_counter() - t0
    return out


def _fetch(
    store: Store, rec: RemoteRecord, repo: str, progress: Progress | None = None
) -> SyncOutcome:
    t = store.remote.transport(rec)
    remotes.check_config(store, rec.url, t, create=False)
    found = _remote_refs(t, rec.remote_repo(repo))
    store.remote.refresh(rec, META)
    out = SyncOutcome(rec.name, repo)
    _fetch_history(store, found.values(), out.stats, progress)
    with store.env.read() as txn:
        prefix = remotes.tracking_ref(rec.name, "")
        before = {r[len(prefix) :]: o for r, o in db.list_refs(txn, repo, prefix)}
    values: dict[str, bytes | None] = {r: None for r in before if r not in found}
    values.update(found)
    set_tracking(store, repo, rec.name, values)
    for ref, new in sorted(values.items()):
        old = before.get(ref)
        status = "up to date" if old == new else ("deleted" if new is None else "updated")
        out.updates.append(RefUpdate(ref, old, new, status))
    return out


def pull(
    store: Store,
    repo: str,
    branch: str,
    remote: str | None = None,
    progress: Progress | None = None,
    ff_only: bool = False,
    strategy: Strategy | None = None,
) -> SyncOutcome:
    """Fetch, then bring `repo@branch` to the remote's branch: a fast-forward, or (diverged,
    unless `ff_only`) a merge commit (repo/mergebranch.py; conflicts change nothing)."""
    out = fetch(store, repo, remote, progress)
    theirs = _tracking(store, repo, out.remote, "heads/" + branch)
    if theirs is None:
        raise UnknownRef(f"remote {out.remote} has no branch {repo}@{branch}")
    with store.env.read() as txn:
        ours = db.get_ref(txn, repo, "heads/" + branch)
    ref = "heads/" + branch
    if ours == theirs or (ours is not None and _contains(store, theirs, ours)):
        update = RefUpdate(ref, ours, ours, "up to date")
    elif ours is None or _contains(store, ours, theirs):
        with store.env.write() as txn:  # CAS: a commit made meanwhile wins over the pull
            db.set_ref(txn, repo, ref, ObjectId(theirs), ours, f"pull {out.remote}")
        update = RefUpdate(ref, ours, theirs, "updated")
    elif ff_only:
        raise NotFastForward(
            f"{repo}@{branch} ({short_hex(ours)}) and {out.remote}'s {branch} "
            f"({short_hex(theirs)}) have diverged: each has commits the other lacks. Pull "
            "without --ff-only to merge them, or reset the branch to the remote's head"
        )
    else:
        label = f"{out.remote}/{branch}"
        merged = merge_into_branch(
            store, repo, branch, ObjectId(theirs), label, f"merge {label} into {branch}",
            strategy=strategy,
        )  # fmt: skip
        update = RefUpdate(ref, ours, merged.commit, "merged")
    _adopt_tags(store, repo, out.remote)
    return SyncOutcome(out.remote, repo, [update], out.stats)


def _adopt_tags(store: Store, repo: str, remote: str) -> None:
    """Create local tags the remote has and the store lacks (existing tags never move)."""
    prefix = remotes.tracking_ref(remote, "tags/")
    with store.env.write() as txn:
        for name, oid in list(db.list_refs(txn, repo, prefix)):
            tag = "tags/" + name[len(prefix) :]
            if db.get_ref(txn, repo, tag) is None:
                db.set_ref(txn, repo, tag, oid, None, f"fetch {remote}")


def clone(
    store: Store,
    url: str,
    repo: str,
    local_name: str | None = None,
    endpoint_url: str | None = None,
    remote: str = remotes.DEFAULT_REMOTE,
    progress: Progress | None = None,
) -> tuple[RepoRecord, SyncOutcome]:
    t0 = time.perf_counter()
    local = check_repo_name(local_name or repo)
    check_repo_name(repo)
    with store.env.read() as txn:
        if db.has_repo(txn, local):
            raise AlreadyExists(f"repo {local!r} already exists in the store at {store.home}")
    rec, added = remotes.for_clone(store, remote, url, endpoint_url, local, repo)
    try:
        record, out = _clone_into(store, rec, url, repo, local, progress)
    except BaseException:
        # Nothing left behind (Ctrl-C included): the remote record this clone added goes, with
        # its tracking refs; fetched objects stay, unreferenced and harmless.
        _drop_tracking(store, local, rec.name)
        if added:
            remotes.remove(store, rec.name)
        raise
    out.stats.seconds = time.perf_counter() - t0
    return record, out


def _clone_into(
    store: Store, rec: RemoteRecord, url: str, repo: str, local: str, progress: Progress | None
) -> tuple[RepoRecord, SyncOutcome]:
    t = store.remote.transport(rec)
    key = packs.repo_key(repo)
    try:
        kind, mut, cats = packs.parse_repo(packs.get_capped(t, key, packs.RECORD_CAP), key)
        record = RepoRecord(local, RepoKind(kind), Mutability(mut), cats, time.time_ns())
    except RemoteKeyMissing as exc:
        raise UnknownRepo(f"{t.describe()} has no repo {repo!r}") from exc
    except ValueError as exc:
        raise CorruptObject(key, "unknown kind or mutability") from exc
    out = _fetch(store, rec, local, progress)
    rules, _ = retentionsync.read_remote(t, repo)
    prefix = remotes.tracking_ref(rec.name, "")
    with store.env.write() as txn:  # last, in one transaction: no half-made repo
        db.create_repo(txn, record)
        retentionsync.adopt(txn, local, rules)
        for name, oid in list(db.list_refs(txn, local, prefix)):
            db.set_ref(txn, local, name[len(prefix) :], oid, None, f"clone {url}")
    return record, out


def _drop_tracking(store: Store, repo: str, remote: str) -> None:
    with store.env.write() as txn:
        if db.has_repo(txn, repo):
            return  # the clone got as far as making the repo: keep what it made
        prefix = remotes.tracking_ref(remote, "")
        for name, oid in list(db.list_refs(txn, repo, prefix)):
            db.set_ref(txn, repo, name, None, oid, "failed clone")
