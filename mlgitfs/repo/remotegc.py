"""Remote gc: reclaim packs on an S3 or `file://` remote while others push, fetch and mount,
with no server and no lock a push waits for (docs/design.md, "gc (remote)", has the
states and the crash table).

1. **Announce**: take `gc/lease` (If-None-Match: *; taken over once older than its ttl),
   write `gc/<id>`.
2. **Mark** (repo/remotegcmark.py): every ref of every repo, then every index; retention
   as the remote's `retention/REPO` rules decide; each live id gets one *owner* pack (the
   pack with most live entries first), so duplicates count once. A pack owning nothing is
   *dead*; one whose owned bytes are under `threshold` of its size is *sparse*.
3. **Repack**: the owned entries of sparse packs go into new packs, chunk packs before meta
   packs (with fresh chunk locators), each pack before its index: the push order.
4. **Condemn**: `gc/<id>.condemned` lists the dead and sparse packs and those without an
   index, with T1; `gc/expired` the metadata kept for its names only.
5. **Grace**: wait until T1 + grace, renewing the lease.
6. **Delete**: read the refs again and mark from those that moved; an id so reached that
   only condemned packs hold *revives* one of them (kept). Each other condemned pack: its
   index, then its locator, then the pack. Packs still without an index go. Last, the
   records of this gc and of dead gcs, and the lease.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mlgitfs.errors import CorruptObject, RemoteKeyMissing, UsageError
from mlgitfs.model.decode import decode
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.objects import Commit
from mlgitfs.model.retention import ExpiryRecord
from mlgitfs.repo import remotegcstate as state
from mlgitfs.repo import remotes, retentionsync
from mlgitfs.repo.gcmark import Marker
from mlgitfs.repo.remotegcmark import (
    ObjectSource,
    Pack,
    RemoteView,
    chunk_refs,
    list_packs,
    live_ids,
    mark,
    read_indexes,
    read_refs,
    read_view,
)
from mlgitfs.store import packs
from mlgitfs.store.commitlist import CommitLinks, build_commit_list, commit_list_key, links_of
from mlgitfs.store.facade import Store
from mlgitfs.store.packs import CHUNKS, KINDS, META, PackLocation
from mlgitfs.store.remote import RemoteTransport

DEFAULT_GRACE = 3600.0  # seconds; longer than any push (a push re-checks before its CAS)
DEFAULT_THRESHOLD = 0.95  # like local gc: at most 5% of a pack left as garbage


@dataclass
class RemoteGcResult:
    remote: str
    dry_run: bool
    threshold: float
    grace: float
    gc_id: str = ""
    expired: list[str] = field(default_factory=list)  # REPO@commit (rule)
    refs: int = 0
    live_objects: int = 0
    live_chunks: int = 0
    packs_before: int = 0
    packs_dead: int = 0  # deleted (would be, with dry_run)
    packs_repacked: int = 0  # sparse packs whose live entries were copied, then deleted
    packs_written: int = 0  # new packs holding those entries
    packs_revived: int = 0  # condemned, then reached by a push during the grace: kept
    packs_unindexed: int = 0  # packs without an index, older than the grace: deleted
    bytes_before: int = 0  # packs and indexes
    bytes_after: int = 0
    bytes_freed: int = 0
    bytes_copied: int = 0  # live bytes the repack uploaded
    seconds_mark: float = 0.0
    seconds_repack: float = 0.0
    seconds_grace: float = 0.0
    seconds_delete: float = 0.0


@dataclass
class _Plan:
    owned: dict[Pack, list[int]]  # pack → indexes of the entries it owns
    dead: set[Pack]
    sparse: set[Pack]


def gc_remote(
    store: Store,
    remote: str | None,
    dry_run: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
    grace: float = DEFAULT_GRACE,
    now_ns: int | None = None,
    pack_target: int = packs.PACK_TARGET,
    phase: Callable[[str], None] = lambda _: None,
) -> RemoteGcResult:
    """`phase` is told each phase as it begins (a test's kill points and progress)."""
    if not 0.0 <= threshold <= 1.0:
        raise UsageError(f"--threshold {threshold} is not between 0 and 1")
    if not grace >= 0:
        raise UsageError(f"--grace {grace} must not be negative")
    rec = remotes.choose(store, remote)
    if not dry_run and not rec.conditional_writes:
        raise remotes.no_conditional_writes(rec)
    t = store.remote.transport(rec)
    remotes.check_config(store, rec.url, t, create=False)
    res = RemoteGcResult(rec.name, dry_run, threshold, grace)
    if dry_run:
        _mark(store, t, res, now_ns, threshold)
        return res
    res.gc_id = state.new_gc_id()
    lease = state.Lease(t, res.gc_id, int(grace * 1e9))
    phase("announce")
    lease.take()
    started = time.time_ns()
    state.write_record(t, res.gc_id, started, "marking")
    phase("mark")
    view, source, marker, plan, decided = _mark(store, t, res, now_ns, threshold)
    expired = frozenset(bytes(c) for c in decided) | view.let_go
    lease.renew(force=True)
    state.write_record(t, res.gc_id, started, "repacking")
    phase("repack")
    t0 = time.perf_counter()
    written = _repack(t, view, source, plan, res, pack_target)
    res.seconds_repack = time.perf_counter() - t0
    # a copy identical to a pack already there (a killed gc made it) is that pack: kept
    doomed = (plan.dead | plan.sparse | set(view.unindexed)) - written
    phase("condemn")
    lease.renew(force=True)
    t1 = time.time_ns()
    _publish_expired(t, decided, t1)  # before any chunk goes: readers learn why
    state.write_condemned(t, res.gc_id, t1, int(grace * 1e9), doomed)
    t.put(state.EXPIRED_KEY, state.encode_ids(marker.partial()))
    state.write_record(t, res.gc_id, started, "grace")
    phase("grace")
    t0 = time.perf_counter()
    while (left := t1 + int(grace * 1e9) - time.time_ns()) > 0:
        lease.renew()
        time.sleep(min(left / 1e9, max(grace / 3, 0.05)))
    res.seconds_grace = time.perf_counter() - t0
    lease.renew(force=True)
    state.write_record(t, res.gc_id, started, "deleting")
    phase("delete")
    t0 = time.perf_counter()
    _delete(t, view, source, marker, expired, doomed, written, res, now_ns, lease)
    for key in state.gc_records(t):  # ours, and those of dead gcs (we hold the lease)
        t.delete(key)
    lease.release()
    res.seconds_delete = time.perf_counter() - t0
    return res


def _mark(
    store: Store, t: RemoteTransport, res: RemoteGcResult, now_ns: int | None, threshold: float
) -> tuple[RemoteView, ObjectSource, Marker, _Plan, dict[ObjectId, tuple[str, str]]]:
    t0 = time.perf_counter()
    view = read_view(t)
    source = ObjectSource(store, t, view)
    now = time.time_ns() if now_ns is None else now_ns
    marker, decided = mark(source, view.refs.items(), view.rules, now, let_go=view.let_go)
    res.refs = len(view.refs)
    res.expired = [f"{repo}@{short_hex(c)} ({why})" for c, (repo, why) in sorted(decided.items())]
    res.live_objects, res.live_chunks = len(marker.objects), len(marker.chunks)
    plan = _classify(view, marker, threshold)
    _stale_locators(t, view, plan)
    res.packs_before = len(view.indexes)
    res.bytes_before = sum(i.size for i in view.indexes.values()) + sum(view.index_bytes.values())
    res.packs_dead, res.packs_repacked = len(plan.dead), len(plan.sparse)
    res.packs_unindexed = len(view.unindexed)
    freed = sum(view.indexes[p].size + view.index_bytes[p] for p in plan.dead | plan.sparse)
    res.bytes_copied = sum(
        view.indexes[p].entries[i].length for p in plan.sparse for i in plan.owned[p]
    )
    res.bytes_freed = freed - res.bytes_copied
    res.bytes_after = res.bytes_before - res.bytes_freed
    res.seconds_mark = time.perf_counter() - t0
    return view, source, marker, plan, decided


def _classify(view: RemoteView, marker: Marker, threshold: float) -> _Plan:
    """Owners first (packs with most live entries first), then dead and sparse packs."""
    live_count: dict[Pack, int] = {}
    for pack, index in view.indexes.items():
        live = live_ids(marker, pack[0])
        live_count[pack] = sum(1 for e in index.entries if e.id in live)
    owner: dict[tuple[str, bytes], Pack] = {}
    owned: dict[Pack, list[int]] = {}
    # most live entries first, then the fewest entries (a repack's copy before the sparse
    # pack it was copied from, when a killed gc left both)
    order = sorted(view.indexes, key=lambda p: (-live_count[p], len(view.indexes[p].entries), p))
    for pack in order:
        live = live_ids(marker, pack[0])
        mine = owned.setdefault(pack, [])
        for i, e in enumerate(view.indexes[pack].entries):
            if e.id in live and (pack[0], e.id) not in owner:
                owner[(pack[0], e.id)] = pack
                mine.append(i)
    for kind in KINDS:
        missing = [i for i in live_ids(marker, kind) if (kind, i) not in owner]
        if missing and kind == CHUNKS:  # metadata not in a pack stops _mark's walk already
            raise CorruptObject(
                short_hex(missing[0]), f"{len(missing)} reachable chunks are in no pack of the "
                "remote: remote gc deleted nothing; run 'mlgitfs fsck --remote'",
            )  # fmt: skip
    dead, sparse = set(), set()
    for pack, mine in owned.items():
        index = view.indexes[pack]
        kept = sum(index.entries[i].length for i in mine)
        if not mine:
            dead.add(pack)
        elif kept < (1.0 if pack[0] == META else threshold) * index.size:
            # A meta pack keeps no dead object: a push stops its walk at any object the
            # remote shows, so none may stay visible whose chunks or children go (and
            # metadata is small: rewriting it is cheap)
            sparse.add(pack)
        elif view.erased_chunks and any(e.id in view.erased_chunks for e in index.entries):
            sparse.add(pack)  # erased bytes leave whatever the pack's live fraction
    return _Plan(owned, dead, sparse)


def _stale_locators(t: RemoteTransport, view: RemoteView, plan: _Plan) -> None:
    """A meta pack whose locator names a chunk pack that will not stay (condemned now, or
    deleted by an earlier gc) is repacked: its copy gets a locator naming where the chunks
    are, so readers do not chase deleted packs (they would find the chunks, at the cost of
    reading every chunk index again)."""
    stays = {p[1] for p in view.indexes if p[0] == CHUNKS} - {
        p[1] for p in plan.dead | plan.sparse if p[0] == CHUNKS
    }
    for pack in sorted(view.indexes):
        if pack[0] != META or pack in plan.dead or pack in plan.sparse:
            continue
        try:
            named = packs.locator_packs(t.get(packs.locator_key(pack[1])))
        except RemoteKeyMissing:
            continue  # no locator (an older push): readers use the chunk indexes
        if named - stays:
            plan.sparse.add(pack)


def _repack(
    t: RemoteTransport,
    view: RemoteView,
    source: ObjectSource,
    plan: _Plan,
    res: RemoteGcResult,
    target: int,
) -> set[Pack]:
    """Copy the owned entries of sparse packs into new packs: chunks first, then metadata
    with locators naming where the chunks live once the condemned packs are gone."""
    written: set[Pack] = set()
    final: dict[bytes, PackLocation] = {}  # chunk id → its location in a pack that stays
    for pack, mine in plan.owned.items():
        if pack[0] == CHUNKS and pack not in plan.sparse:
            index = view.indexes[pack]
            final.update((index.entries[i].id, index.location(index.entries[i])) for i in mine)
    for kind in (CHUNKS, META):  # chunk packs before meta packs (the push order)
        items: list[tuple[bytes, int, bytes, int]] = []
        size = 0
        for pack in sorted(p for p in plan.sparse if p[0] == kind):
            for i in plan.owned[pack]:
                item = source.stored(kind, pack[1], i)
                items.append(item)
                size += len(item[2])
                if size >= target or len(items) >= packs.PACK_ENTRIES:
                    written.add(_upload(t, kind, items, final, source, res))
                    items, size = [], 0
            source.drop(pack[1])
        if items:
            written.add(_upload(t, kind, items, final, source, res))
    return written


def _upload(
    t: RemoteTransport,
    kind: str,
    items: list[tuple[bytes, int, bytes, int]],
    final: dict[bytes, PackLocation],
    source: ObjectSource,
    res: RemoteGcResult,
) -> Pack:
    index, data, idx = packs.build_pack(kind, items)
    t.put(packs.pack_key(kind, index.pack), data)
    if kind == META:  # its locator and commit list before its index, as a push writes them
        sections = []
        commits: list[tuple[bytes, CommitLinks]] = []
        for e in index.entries:
            data = source.load(e.id)
            refs = chunk_refs(data, e.id)
            sections.append((e.id, [(c, final[c]) for c in dict.fromkeys(refs) if c in final]))
            obj = decode(data, e.id)
            if isinstance(obj, Commit):
                commits.append((e.id, links_of(obj)))
        loc, lidx = packs.build_locator(index.pack, sections)
        t.put(packs.locator_key(index.pack), loc)
        t.put(packs.locator_index_key(index.pack), lidx)
        t.put(commit_list_key(index.pack), build_commit_list(index.pack, commits))
    else:
        final.update((e.id, index.location(e)) for e in index.entries)
    t.put(packs.index_key(kind, index.pack), idx)  # after the pack: see store/packs.py
    res.packs_written += 1
    return kind, index.pack


def _delete(
    t: RemoteTransport,
    view: RemoteView,
    source: ObjectSource,
    marker: Marker,
    expired: frozenset[bytes],
    doomed: set[Pack],
    written: set[Pack],
    res: RemoteGcResult,
    now_ns: int | None,
    lease: state.Lease,
) -> None:
    """Mark from refs that moved during the grace; revive what that reaches only in condemned
    packs; delete the rest, each index before its pack."""
    old = dict(view.refs)
    was_unindexed = set(view.unindexed)
    known = set(view.indexes)
    view.refs = read_refs(t)
    listed = list_packs(t)  # after the refs: a moved ref's objects are in listed indexes
    read_indexes(t, view, listed)
    source.update()
    moved = [(name, head) for name, head in view.refs.items() if old.get(name) != head]
    now = time.time_ns() if now_ns is None else now_ns
    if moved:
        mark(source, moved, view.rules, now, marker, expired)
    # Every object a pack made since the mark shows (a push's, finished or killed) keeps
    # what it names: a later push may stop its walk at it.
    shown = [
        e.id
        for pack, index in view.indexes.items()
        if pack[0] == META and pack not in known and pack not in written
        for e in index.entries
    ]
    if shown:
        # an erased file id such an object names keeps its chunks (its path and version are
        # not known here): erasure errs toward keeping, the next gc looks again
        erased, marker.erased = marker.erased, frozenset()
        marker.walk(source.load, shown, expired=expired)
        marker.erased = erased
    keep: dict[tuple[str, bytes], bool] = {}
    for pack, index in view.indexes.items():
        if pack not in doomed:
            live = live_ids(marker, pack[0])
            keep.update(((pack[0], e.id), True) for e in index.entries if e.id in live)
    revived: set[Pack] = set()
    for pack in sorted(doomed & set(view.indexes)):
        live = live_ids(marker, pack[0])
        if any(e.id in live and (pack[0], e.id) not in keep for e in view.indexes[pack].entries):
            revived.add(pack)
            keep.update(((pack[0], e.id), True) for e in view.indexes[pack].entries)
    res.packs_revived = len(revived)
    lease.renew(force=True)  # a gc that lost its lease deletes nothing
    for pack in sorted(doomed - revived):
        kind, pid = pack
        if pack in was_unindexed and pack in view.indexes:
            continue  # its push wrote the index since the mark: visible now, kept
        t.delete(packs.index_key(kind, pid))
        if kind == META:
            t.delete(packs.locator_index_key(pid))
            t.delete(packs.locator_key(pid))
            t.delete(commit_list_key(pid))
        t.delete(packs.pack_key(kind, pid))
        lease.renew()
    if revived:
        back = sum(view.indexes[p].size + view.index_bytes.get(p, 0) for p in revived)
        res.bytes_freed -= back
        res.bytes_after += back


def bytes_on_remote(t: RemoteTransport) -> int:
    """Bytes of every pack, index and locator on the remote (for tests and the bench)."""
    total = 0
    for kind in KINDS:
        for key in t.list(kind + "/"):
            info = t.head(key)
            total += info.size if info is not None else 0
    return total


def _publish_expired(
    t: RemoteTransport, decided: dict[ObjectId, tuple[str, str]], now: int
) -> None:
    by_repo: dict[str, dict[bytes, ExpiryRecord]] = {}
    for commit, (repo, why) in decided.items():
        by_repo.setdefault(repo, {})[bytes(commit)] = ExpiryRecord(now, why)
    for repo, records in sorted(by_repo.items()):
        retentionsync.publish_expired(t, repo, records)
