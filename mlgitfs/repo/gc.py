"""Local gc: mark what the roots reach, sweep the rest from LMDB, give segment space back.

The protocol and its ordering rules are in docs/design.md ("gc"); in short:

1. **Mark** on one read snapshot S: the roots (meta/roots.py: the commits of refs, the
   reflog and checkout bases; the checkouts' overlay records) and everything they reach
   (repo/gcmark.py). Still on S, list the *candidates*: objects and chunk locations S
   holds that were not marked. Whatever is written after S is no candidate: never swept.
2. **Sweep**, one write transaction W (LMDB serializes it with every writer): read the
   roots again, extend the mark from them (what was committed during the mark, stopping at
   what is marked), delete the candidates still unmarked and the stat-cache entries that
   name them, and raise the gc epoch. A writer that chose to reuse a candidate before W and
   commits after it sees the epoch moved and checks what it names (repo/commits.py).
3. **Segments** (store/compact.py): files of the chunk cache with nothing live are
   unlinked, files whose live fraction is under the threshold are rewritten; only segments
   that existed at S, and only under their lock.

`dry_run` stops after 1 and writes nothing: the result says what each step would free.
One gc at a time per store (the flock of `gc.lock` in the store, not waited for).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from mlgitfs.errors import ConflictError, CorruptObject, StoreError
from mlgitfs.meta import chunks, db, erasures, gcstate, reflog, retention, statcache, statements
from mlgitfs.meta.env import ReadTxn
from mlgitfs.meta.roots import gc_roots
from mlgitfs.model.decode import decode
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.objects import Commit
from mlgitfs.model.retention import ExpiryRecord
from mlgitfs.repo import erase, expiry
from mlgitfs.repo.gcmark import Marker, mark_roots, overlay_entries
from mlgitfs.store.cache import RECORD_HEADER, Location
from mlgitfs.store.compact import compact
from mlgitfs.store.facade import Store

LOCK_FILE = "gc.lock"
DEFAULT_THRESHOLD = 0.95  # at most 5% of a segment left as garbage (restic prune's 5% unused)


@dataclass
class GcResult:
    dry_run: bool
    threshold: float
    live_objects: int = 0
    live_chunks: int = 0
    expired: list[str] = field(default_factory=list)  # REPO@commit (rule) of expired ones
    objects: int = 0  # swept (would be, with dry_run)
    object_bytes: int = 0
    chunks: int = 0
    chunk_bytes: int = 0  # stored bytes of the swept chunks, headers included
    rescued: int = 0  # candidates found live by the sweep (named during the mark)
    segments_deleted: int = 0
    segments_rewritten: int = 0
    segment_bytes_freed: int = 0  # bytes on disk the segment step gives back
    segments_busy: int = 0  # skipped: a writer held them
    bytes_before: int = 0  # the chunk cache's segment files
    bytes_after: int = 0
    seconds_mark: float = 0.0
    seconds_sweep: float = 0.0
    seconds_segments: float = 0.0


@dataclass
class _Candidates:
    objects: list[tuple[bytes, int]]
    chunks: list[tuple[bytes, bytes]]  # chunk id, its location as S recorded it
    statcache: list[tuple[bytes, bytes]]  # key, the ref it names
    live_bytes: dict[int, int]  # segment -> bytes of marked records
    segment_limit: int  # the newest segment S knew of
    dead_segments: set[int]  # segments holding a candidate chunk's record


def gc(
    store: Store,
    dry_run: bool = False,
    threshold: float = DEFAULT_THRESHOLD,
    now_ns: int | None = None,
    mounted: Callable[[], Iterable[bytes]] = lambda: (),
    purge: bool = False,
    first: Callable[[], None] = lambda: None,
) -> GcResult:
    """`now_ns` (default: the clock) decides which reflog entries and versions expired.
    `mounted` gives the commits live mounts serve (roots too: a read-only mount of a commit
    no ref keeps), asked at the mark and again at the sweep. `purge` (erase): every segment
    holding a swept chunk is rewritten whatever its live fraction, so no swept byte stays on
    disk (others follow `threshold`). `first` runs under gc's lock before the mark (erase
    writes its record there, so no gc that started before it sweeps without it)."""
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold {threshold} is not in [0, 1]")
    res = GcResult(dry_run, threshold)
    now = time.time_ns() if now_ns is None else now_ns
    if dry_run:
        _run(store, res, now, mounted, purge)
        return res
    with _gc_lock(store):
        first()
        _run(store, res, now, mounted, purge)
    return res


def _run(
    store: Store, res: GcResult, now: int, mounted: Callable[[], Iterable[bytes]], purge: bool
) -> None:
    res.bytes_before = store.chunks.usage()
    t0 = time.perf_counter()
    marker = Marker()
    with store.env.read() as txn:
        roots = gc_roots(txn, now, pins=False)
        expiries = {e.commit: e for e in expiry.expiry(txn, now)}
        expired = frozenset(bytes(c) for c in expiries)
        records = erasures.list_all(txn)
        marker.erased = frozenset().union(*(r.file_ids for r in records))
        mark_roots(marker, txn, roots, expired)
        present = _present(txn, mounted())
        marker.mark(txn, present)
        if records:
            commits = [bytes(c) for c in roots.commits] + present
            kept = erase.keepers(txn, records, commits, expired, overlay_entries(txn))
            marker.mark(txn, (), kept=kept)
        cand = _candidates(txn, marker)
    res.expired = [f"{e.repo}@{short_hex(e.commit)} ({e.reason})" for e in expiries.values()]
    res.seconds_mark = time.perf_counter() - t0
    # Only segments S saw garbage in enough to act on; the rest are not even opened (the
    # sweep deletes only candidates, which S did not count as live: S's count is an upper
    # bound, and store/compact.py decides again under each segment's lock).
    segments = [
        (seg, size)
        for seg, size in store.chunks.segments()
        if seg <= cand.segment_limit
        and (
            cand.live_bytes.get(seg, 0) == 0
            or cand.live_bytes[seg] < res.threshold * size
            or (purge and seg in cand.dead_segments)
        )
    ]
    forced = {seg for seg, _ in segments if purge and seg in cand.dead_segments}
    if res.dry_run:
        res.live_objects, res.live_chunks = len(marker.objects), len(marker.chunks)
        res.objects, res.object_bytes = len(cand.objects), sum(n for _, n in cand.objects)
        res.chunks = len(cand.chunks)
        res.chunk_bytes = sum(_record_bytes(loc) for _, loc in cand.chunks)
        for seg, size in segments:
            live = cand.live_bytes.get(seg, 0)
            if live == 0:
                res.segments_deleted += 1
                res.segment_bytes_freed += size
            elif live < res.threshold * size or seg in forced:
                res.segments_rewritten += 1
                res.segment_bytes_freed += size - live
        res.bytes_after = res.bytes_before - res.segment_bytes_freed
        return
    t1 = time.perf_counter()
    _sweep(store, marker, cand, expiries, now, mounted, res)
    res.live_objects, res.live_chunks = len(marker.objects), len(marker.chunks)
    del marker, cand  # the segment step needs neither: it reads locations under each lock
    t2 = time.perf_counter()
    res.seconds_sweep = t2 - t1
    stats = compact(store.chunks, [s for s, _ in segments if s not in forced], res.threshold)
    both = [stats, compact(store.chunks, sorted(forced), 1.0)] if forced else [stats]
    res.segments_deleted = sum(st.deleted for st in both)
    res.segments_rewritten = sum(st.rewritten for st in both)
    res.segment_bytes_freed = sum(st.freed for st in both)
    res.segments_busy = sum(st.skipped_busy for st in both)
    res.seconds_segments = time.perf_counter() - t2
    res.bytes_after = store.chunks.usage()


def _candidates(txn: ReadTxn, marker: Marker) -> _Candidates:
    objects = [(oid, n) for oid, n in db.all_objects(txn) if oid not in marker.objects]
    dead: list[tuple[bytes, bytes]] = []
    live_bytes: dict[int, int] = {}
    live = marker.chunks
    for cid, data in chunks.locations(txn):
        if cid in live:
            seg, stored = _SEG_LEN.unpack_from(data)  # not a Location: a million of these
            live_bytes[seg] = live_bytes.get(seg, 0) + stored + RECORD_HEADER
        else:
            dead.append((cid, data))
    gone = {oid for oid, _ in objects} | {cid for cid, _ in dead}
    stale = [(k, ref) for k, ref in statcache.entries(txn) if ref in gone] if gone else []
    limit = db.get_config(txn, "counter.segment")
    dead_segments = {_SEG_LEN.unpack_from(data)[0] for _, data in dead}
    return _Candidates(objects, dead, stale, live_bytes, limit if isinstance(limit, int) else 0,
                       dead_segments)  # fmt: skip


_SEG_LEN = struct.Struct("<I8xI")  # a packed Location's segment and stored length


def _record_bytes(location: bytes) -> int:
    return Location.unpack(location).stored_len + RECORD_HEADER


def _sweep(
    store: Store,
    marker: Marker,
    cand: _Candidates,
    expiries: dict[ObjectId, expiry.Expiry],
    now: int,
    mounted: Callable[[], Iterable[bytes]],
    res: GcResult,
) -> None:
    """One write transaction: the final mark, the deletions, the epoch (see the module).
    A version expired at S but no longer (a rule or ref changed meanwhile) gets its files
    marked; those still expired get their expiry record, read by whoever asks for them."""
    with store.env.write() as txn:
        roots = gc_roots(txn, now, pins=False)
        still = frozenset(bytes(e.commit) for e in expiry.expiry(txn, now)) & {
            bytes(c) for c in expiries
        }
        revived = [bytes(c) for c in expiries if bytes(c) not in still]
        trees = [bytes(_commit(txn, c).tree) for c in revived]
        commits = [bytes(c) for c in roots.commits] + _present(txn, mounted())
        loose = overlay_entries(txn)
        marker.mark(txn, commits, loose, still, trees)
        records = erasures.list_all(txn)
        if records:  # an occurrence not erased committed during the mark keeps its bytes
            marker.mark(txn, (), kept=erase.keepers(txn, records, commits, still, loose))
            # what only erased files hold: the fetcher never brings it back from a remote
            erasures.set_erased_chunks(txn, erase.erased_chunks(txn, records, marker.chunks))
        for oid in still:
            e = expiries[ObjectId(oid)]
            retention.record_expired(txn, e.commit, ExpiryRecord(now, e.reason))
        # reflog entries past the expiry were no root of this gc (same txn, same now): they go
        reflog.prune(txn, now)
        gone: set[bytes] = set()
        signed = statements.count(txn) > 0  # a commit's statements go with it
        for oid, size in cand.objects:
            if oid in marker.objects:
                res.rescued += 1
            elif db.delete_object(txn, oid):
                if signed:
                    statements.delete_subject(txn, ObjectId(oid))
                gone.add(oid)
                res.objects += 1
                res.object_bytes += size
        for cid, loc in cand.chunks:
            if cid in marker.chunks or chunks.get_location(txn, cid) != loc:
                res.rescued += 1
            else:
                chunks.delete_location(txn, cid)
                chunks.unpin(txn, [cid])
                gone.add(cid)
                res.chunks += 1
                res.chunk_bytes += _record_bytes(loc)
        statcache.delete(txn, [k for k, ref in cand.statcache if ref in gone])
        gcstate.bump_epoch(txn)


@contextlib.contextmanager
def _gc_lock(store: Store) -> Iterator[None]:
    path = store.home / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot open {path}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConflictError(
                f"another gc is running on the store at {store.home}; nothing was changed"
            ) from exc
        yield
    finally:
        os.close(fd)


def _commit(txn: ReadTxn, oid: bytes) -> Commit:
    data = db.get_object_bytes(txn, ObjectId(oid))
    obj = None if data is None else decode(data, oid)
    if not isinstance(obj, Commit):
        raise CorruptObject(short_hex(oid), "an expired version's commit is not a commit")
    return obj


def _present(txn: ReadTxn, commits: Iterable[bytes]) -> list[bytes]:
    """The mounted commits the store has (a mount of a remote's commit may not be local)."""
    return [c for c in commits if db.has_object(txn, c)]
