"""Fetch, pull and clone: moving versions from a remote into a store; and what push
(repo/push.py) shares with them: the outcome types, refs on the remote, remote-tracking refs.

Fetch writes objects (verified, decoded) before the remote-tracking refs that name them,
in one LMDB transaction for the refs; clone creates the repo and its branches last, so a
killed clone leaves no half-made repo and can simply be run again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from mlgitfs.errors import (
    AlreadyExists,
    CorruptObject,
    MissingObject,
    MlgitError,
    NotFastForward,
    RemoteKeyMissing,
    UnknownRef,
    UnknownRepo,
)
from mlgitfs.meta import db
from mlgitfs.meta.db import Mutability, RepoKind, RepoRecord
from mlgitfs.meta.erasures import ErasureRecord
from mlgitfs.meta.remotes import RemoteRecord
from mlgitfs.model import statement
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.names import check_repo_name
from mlgitfs.model.objects import Commit
from mlgitfs.model.statement import Statement
from mlgitfs.progress import announce
from mlgitfs.repo import (
    erasuresync,
    refsign,
    remotes,
    retentionsync,
    statementsync,
    trust,
    trustcheck,
    verify,
)
from mlgitfs.repo.commitindex import index_commits
from mlgitfs.repo.diffprefetch import prefetch_diffs
from mlgitfs.repo.gate import HookOptions
from mlgitfs.repo.graph import ensure_generations, is_ancestor
from mlgitfs.repo.keyring import Keyring
from mlgitfs.repo.merge import Strategy
from mlgitfs.repo.mergebranch import merge_into_branch
from mlgitfs.store import packs, remotedb
from mlgitfs.store.facade import Store
from mlgitfs.store.packs import META
from mlgitfs.store.remote import RemoteTransport

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


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
    erased: list[ErasureRecord] = field(default_factory=list)  # records learnt (fetch, clone)


# --- refs on the remote and remote-tracking refs ------------------------------------------


def read_ref(t: RemoteTransport, key: str) -> tuple[bytes | None, str | None]:
    commit, _, etag = read_ref_record(t, key)
    return commit, etag


def read_ref_record(
    t: RemoteTransport, key: str
) -> tuple[bytes | None, Statement | None, str | None]:
    """A remote ref's commit, its ref statement (None for an unsigned move) and its ETag."""
    got = packs.get_capped_with_etag(t, key, packs.REF_CAP)
    if got is None:
        return None, None, None
    commit, raw = packs.decode_ref_record(key, got[0])
    st = statement.decode(raw, f"the ref statement in {key}") if raw is not None else None
    return commit, st, got[1]


def contains(store: Store, ancestor: bytes, head: bytes) -> bool:
    if ancestor == head:
        return True
    if not store.has_object(ObjectId(ancestor)):
        return False  # never fetched: it cannot be in our history
    return is_ancestor(store, ObjectId(ancestor), ObjectId(head))


def tracking(store: Store, repo: str, remote: str, ref: str) -> bytes | None:
    with store.env.read() as txn:
        return db.get_ref(txn, repo, remotes.tracking_ref(remote, ref))


def set_tracking(store: Store, repo: str, remote: str, values: dict[str, bytes | None]) -> None:
    with store.env.write() as txn:
        for ref, new in values.items():
            name = remotes.tracking_ref(remote, ref)
            cur = db.get_ref(txn, repo, name)
            if cur != new:
                db.set_ref(txn, repo, name, ObjectId(new) if new else None, cur, f"sync {remote}")


# --- fetch, pull, clone ---------------------------------------------------------------------


def _remote_refs(t: RemoteTransport, remote_repo: str) -> dict[str, tuple[bytes, Statement | None]]:
    """Each ref of the remote's repo: its commit and its ref statement (if signed)."""
    base = f"refs/{remote_repo}/"
    names = [n for n in (packs.parse_ref_key(remote_repo, k) for k in t.list(base)) if n]

    def read(ref: str) -> tuple[str, bytes | None, Statement | None]:
        oid, st, _ = read_ref_record(t, base + ref)
        return ref, oid, st

    with ThreadPoolExecutor(8, thread_name_prefix="mlgitfs-refs") as pool:
        return {ref: (oid, st) for ref, oid, st in pool.map(read, names) if oid is not None}


def missing_objects(store: Store, ids: Iterable[bytes]) -> list[bytes]:
    with store.env.read() as txn:
        return [i for i in dict.fromkeys(ids) if not db.has_object(txn, i)]


def _planned(store: Store, remote: str, heads: list[bytes]) -> list[bytes] | None:
    """Every object a fetch of `heads` needs (the commits the store lacks, their inputs and
    the heads' root trees), read from the remote's commit lists (store/commitlist.py)
    without a request; None when a needed commit is in no list (a pack an older mlgitfs
    pushed). A commit the store has is taken with its history (a fetch stores whole ones)."""
    commits: list[bytes] = []
    inputs: list[bytes] = []
    trees: dict[bytes, bytes] = {}
    seen: set[bytes] = set()
    todo = list(heads)
    with store.env.read() as txn:
        while todo:
            oid = todo.pop()
            if oid in seen or db.has_object(txn, oid):
                continue
            seen.add(oid)
            links = remotedb.commit_links(txn, remote, oid)
            if links is None:
                return None
            commits.append(oid)
            trees[oid] = links.tree
            todo.extend(links.parents)
            inputs.extend(links.inputs)
        roots = [trees[h] for h in heads if h in trees]
        extra = [i for i in dict.fromkeys(inputs + roots) if i not in seen]
        return commits + [i for i in extra if not db.has_object(txn, i)]


def _fetch_history(
    store: Store,
    heads: Iterable[bytes],
    stats: TransferStats,
    progress: Progress | None,
    remote: str | None = None,
) -> None:
    """Commits reachable from `heads` (and their inputs and root trees) into the store.

    `progress` counts objects (commits and root trees; no file contents are fetched) and
    their bytes. When the remote's commit lists name every commit needed (`_planned`), the
    totals are announced before the first download and everything is asked for in one
    batch (neighbours in one request, many in parallel); then, and otherwise from the
    start, a walk fetches what the commits really name and the store lacks, a round of
    requests per generation (each commit names only its parents)."""

    def arrived(objects: int, nbytes: int) -> None:
        stats.objects += objects
        stats.bytes += nbytes
        if progress is not None:
            progress(stats.objects, stats.bytes)

    heads = list(heads)
    plan = _planned(store, remote, heads) if remote is not None else None
    fetched: list[bytes] = []
    inputs: list[bytes] = []
    frontier = missing_objects(store, heads)
    try:  # an id a list names and no index has: a list that lies, walk instead
        located = store.remote.locate(META, plan) if plan is not None else None
    except MissingObject:
        located = None
    if plan is not None and located is not None:
        announce(progress, len(plan), sum(loc.raw_len for _, loc in located.values()))
        nxt = list(heads)
        for oid, obj in store.remote.fetch_objects(plan, arrived).items():
            if isinstance(obj, Commit):  # walked below from what it really names
                fetched.append(oid)
                nxt.extend(bytes(p) for p in obj.parents)
                inputs.extend(bytes(i) for _, i in obj.inputs)
        frontier = missing_objects(store, nxt)
    while frontier:
        got = store.remote.fetch_objects(frontier, arrived)
        fetched.extend(got)
        nxt = []
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
        prefetch_diffs(store, fetched)  # a batch per directory level, not a GET per tree
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
    t = store.remote.transport(rec)
    theirs, _ = retentionsync.read_remote(t, rec.remote_repo(repo))
    gone = retentionsync.read_expired(t, rec.remote_repo(repo))
    erased, _ = erasuresync.read_remote(t, rec.remote_repo(repo))
    with store.env.write() as txn:
        retentionsync.adopt(txn, repo, theirs)
        retentionsync.adopt_expired(txn, gone)
        out.erased = erasuresync.adopt(txn, repo, erased)
    out.stats.seconds = time.perf_counter() - t0
    return out


def _fetch(
    store: Store, rec: RemoteRecord, repo: str, progress: Progress | None = None
) -> SyncOutcome:
    t = store.remote.transport(rec)
    remotes.check_config(store, rec.url, t, create=False)
    signed = _remote_refs(t, rec.remote_repo(repo))
    ref_statements = refsign.check_fetched(store, rec.remote_repo(repo), signed)
    found = {ref: oid for ref, (oid, _) in signed.items()}
    store.remote.refresh(rec, META)
    out = SyncOutcome(rec.name, repo)
    trusted = verify.trusted_keys(Keyring(store.home))
    # the statement packs are read and their signatures checked while the history walk
    # waits on the remote and the disk; attached once their commits are here, before the
    # refs move
    with ThreadPoolExecutor(1, thread_name_prefix="mlgitfs-stmtcheck") as pool:
        signed_later = pool.submit(statementsync.read_statements, store, t, rec.name, trusted)
        _fetch_history(store, found.values(), out.stats, progress, rec.name)
        fetched = signed_later.result()
    statementsync.attach_fetched(store, rec.name, fetched)
    statementsync.attach(store, ref_statements, rec.name)
    with store.env.read() as txn:
        prefix = remotes.tracking_ref(rec.name, "")
        before = {r[len(prefix) :]: o for r, o in db.list_refs(txn, repo, prefix)}
    # the trust policy judges the moves before any ref moves (repo/trustcheck.py)
    verdict = trustcheck.check_fetch(store, rec, t, rec.remote_repo(repo), signed, before)
    trustcheck.record(store, repo, verdict)  # before the refs move: a mount judges by it
    if verdict.policy is not None:
        trust.adopt(store, rec, verdict.policy)
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
    hooks: HookOptions | None = None,
) -> SyncOutcome:
    """Fetch, then bring `repo@branch` to the remote's branch: a fast-forward, or (diverged,
    unless `ff_only`) a merge commit (repo/mergebranch.py, gated by `hooks`; conflicts change
    nothing)."""
    out = fetch(store, repo, remote, progress)
    theirs = tracking(store, repo, out.remote, "heads/" + branch)
    if theirs is None:
        raise UnknownRef(f"remote {out.remote} has no branch {repo}@{branch}")
    with store.env.read() as txn:
        ours = db.get_ref(txn, repo, "heads/" + branch)
    ref = "heads/" + branch
    if ours == theirs or (ours is not None and contains(store, theirs, ours)):
        update = RefUpdate(ref, ours, ours, "up to date")
    elif ours is None or contains(store, ours, theirs):
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
            strategy=strategy, hooks=hooks,
        )  # fmt: skip
        update = RefUpdate(ref, ours, merged.commit, "merged")
    _adopt_tags(store, repo, out.remote)
    return SyncOutcome(out.remote, repo, [update], out.stats, out.erased)


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
    pin: bytes | None = None,
) -> tuple[RepoRecord, SyncOutcome]:
    t0 = time.perf_counter()
    local = check_repo_name(local_name or repo)
    check_repo_name(repo)
    with store.env.read() as txn:
        if db.has_repo(txn, local):
            raise AlreadyExists(f"repo {local!r} already exists in the store at {store.home}")
    rec, added = remotes.for_clone(store, remote, url, endpoint_url, local, repo)
    try:
        if pin is not None:
            trust.pin(store, rec, pin)
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
    gone = retentionsync.read_expired(t, repo)
    erased, _ = erasuresync.read_remote(t, repo)
    prefix = remotes.tracking_ref(rec.name, "")
    with store.env.write() as txn:  # last, in one transaction: no half-made repo
        db.create_repo(txn, record)
        retentionsync.adopt(txn, local, rules)
        retentionsync.adopt_expired(txn, gone)
        out.erased = erasuresync.adopt(txn, local, erased)
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
