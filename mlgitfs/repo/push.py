"""Push: moving versions from a store to a remote.

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
"""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from mlgitfs.errors import (
    ConflictError,
    NotFastForward,
    PreconditionFailed,
    RemoteDenied,
    RemoteError,
    RemoteKeyMissing,
    UnknownRef,
    UsageError,
)
from mlgitfs.meta import chunks, db
from mlgitfs.meta.db import RepoRecord
from mlgitfs.meta.remotes import RemoteRecord
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.progress import announce
from mlgitfs.repo import (
    erasuresync,
    refsign,
    remotegcstate,
    remotes,
    retentionsync,
    statementsync,
)
from mlgitfs.repo.gate import HookOptions
from mlgitfs.repo.hookrun import Candidate
from mlgitfs.repo.hooks import load_hooks
from mlgitfs.repo.protected import check_pushable
from mlgitfs.repo.pushplan import Plan, groups, stored_chunk
from mlgitfs.repo.refsign import RefSigner
from mlgitfs.repo.remotegcstate import Condemned
from mlgitfs.repo.signedby import check_signer
from mlgitfs.repo.sync import (
    Progress,
    RefUpdate,
    SyncOutcome,
    TransferStats,
    contains,
    read_ref,
    set_tracking,
    tracking,
)
from mlgitfs.store import packs, remotedb
from mlgitfs.store.cache import Location
from mlgitfs.store.commitlist import CommitLinks, build_commit_list, commit_list_key
from mlgitfs.store.facade import Store
from mlgitfs.store.packs import CHUNKS, META
from mlgitfs.store.remote import RemoteTransport

UPLOADERS = 8
GC_REPLANS = 4  # plans against newly condemned packs before a push gives up (exit 14)
CAS_RETRIES = 5


class _Uploader:
    def __init__(
        self, store: Store, rec: RemoteRecord, t: RemoteTransport, progress: Progress | None
    ):
        self.store = store
        self.rec = rec
        self.t = t
        self.progress = progress
        self.gcs = Condemned()  # the plan's: the locators never name condemned packs
        self.stats = TransferStats()
        self._chunk_bytes = 0  # stored bytes of the chunks uploaded, against the plan's total
        self._lock = threading.Lock()

    def upload(
        self,
        kind: str,
        items: list[tuple[bytes, int, bytes, int]],
        chunk_refs: dict[bytes, list[bytes]] | None = None,
        commits: dict[bytes, CommitLinks] | None = None,
    ) -> None:
        index, data, idx = packs.build_pack(kind, items)
        self.t.put(packs.pack_key(kind, index.pack), data)
        sections: dict[bytes, packs.Section] = {}
        listed: dict[bytes, CommitLinks] = {}
        if chunk_refs is not None:  # a meta pack: locator and commit list before its index
            loc, lidx = self._locator(index.pack, [it[0] for it in items], chunk_refs)
            self.t.put(packs.locator_key(index.pack), loc)
            self.t.put(packs.locator_index_key(index.pack), lidx)
            sections = packs.decode_locator_index(index.pack, lidx)
            listed = {it[0]: (commits or {})[it[0]] for it in items if it[0] in (commits or {})}
            self.t.put(commit_list_key(index.pack), build_commit_list(index.pack, listed.items()))
        self.t.put(packs.index_key(kind, index.pack), idx)  # after the pack: see packs.py
        with self.store.env.write() as txn:
            remotedb.record_index(txn, self.rec.name, index)
            if chunk_refs is not None:
                remotedb.record_locator_index(txn, self.rec.name, index.pack, sections)
                remotedb.record_commit_list(txn, self.rec.name, index.pack, listed)
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
                    locs = [
                        loc
                        for r, loc in remotedb.locate(txn, CHUNKS, cid)
                        if r == name and not self.gcs.holds(CHUNKS, loc.pack)
                    ]
                    if locs:
                        found.append((cid, locs[0]))
                sections.append((oid, found))
        return packs.build_locator(pack, sections)

    def chunk_pack(self, group: list[tuple[bytes, Location]]) -> None:
        self.upload(CHUNKS, [stored_chunk(self.store, cid, loc) for cid, loc in group])

    def run(self, plan: Plan, target: int) -> None:
        self.gcs = plan.gcs
        announce(self.progress, len(plan.chunks), sum(loc.stored_len for _, loc in plan.chunks))
        chunk_groups = groups(
            ((i, loc.stored_len) for i, (_, loc) in enumerate(plan.chunks)), target
        )
        with ThreadPoolExecutor(UPLOADERS, thread_name_prefix="mlgitfs-push") as pool:
            list(pool.map(lambda g: self.chunk_pack([plan.chunks[i] for i in g]), chunk_groups))
        items = [packs.meta_item(oid, data) for oid, data in plan.meta]
        for g in groups(((i, len(it[2])) for i, it in enumerate(items)), target):
            # in order: children before parents
            self.upload(META, [items[i] for i in g], plan.chunk_refs, plan.links)


def _upload_all(
    store: Store,
    rec: RemoteRecord,
    t: RemoteTransport,
    heads: list[bytes],
    up: _Uploader,
    target: int,
) -> list[Plan]:
    """Steps 1, 3 and 4, with remote gc (docs/design.md, "gc (remote)"): what running gcs
    condemned counts as absent; and just before the refs move, `gc/` is listed again: a
    gc that condemned packs since this push began may hold something the push reused, so
    the plan is made again against the new lists (it uploads only what they took)."""
    gcs = remotegcstate.read_condemned(t)
    plans: list[Plan] = []
    for _ in range(GC_REPLANS):
        store.remote.refresh(rec, CHUNKS)
        store.remote.refresh(rec, META)
        done = frozenset(oid for p in plans for oid, _ in p.meta)
        plan = Plan(store, rec.name, gcs, through=done)
        plan.commits(heads)
        plan.meta = [m for m in plan.meta if m[0] not in done]
        up.run(plan, target)
        plans.append(plan)
        now = remotegcstate.read_condemned(t)
        if now.lists <= gcs.lists:
            return plans
        gcs = now
    raise ConflictError(
        "remote gcs kept condemning packs during the push; nothing was moved: push again"
    )


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
        gate = hooks.gate(store, branch, cid, "push")
        check_signer(store, repo, branch, gate.rule, "a push")  # it signs the ref move
        if old is not None:  # a version that drops the rule is judged by it, as on fetch
            try:
                was = load_hooks(store, store.commit(ObjectId(old)).tree).rule(branch)
            except UsageError:
                was = None  # a file that does not parse: the pushed version's rule decides
            check_signer(store, repo, branch, was, "a push")
        if gate.rule is not None and gate.rule.guarded:
            check_pushable(gate.trusted(repo, cid, branch), repo, branch, cid, gate.rule)
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
    rec = remotes.writable(store, remotes.choose(store, remote))
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
        elif old is not None and (ref.startswith("tags/") or not contains(store, old, new)):
            known = tracking(store, repo, rec.name, ref)
            out.updates.append(
                RefUpdate(ref, old, new, "rejected", _rejection(repo, ref, known, old))
            )
        else:
            todo.append((ref, new, old, etag))
    _pre_push(store, repo, todo, hooks or HookOptions())
    signer = refsign.ref_signer(store, remote_repo)  # a key it needs and lacks: before uploads
    set_tracking(store, repo, rec.name, {u.ref: u.old for u in out.updates if u.status != "failed"})
    denied: set[str] = set()
    todo = _writable(t, remote_repo, todo, out, denied)
    if todo:
        up = _Uploader(store, rec, t, progress)
        plans = _upload_all(store, rec, t, [new for _, new, _, _ in todo], up, pack_target)
        out.stats = up.stats
        # the signatures of what is now visible there, before any ref names it
        _push_statements(store, t, rec.name)
        if not has_repo:
            _write_remote_repo(t, remote_repo, repo_rec)
        for ref, new_head, old, etag in todo:
            # Each ref on its own: one that cannot be written (a `file://` remote holding
            # `feature` cannot hold `feature/x`) never keeps the others, main above all, back.
            try:
                update = _move_ref(
                    store, t, repo, remote_repo, rec.name, ref, new_head, old, etag, signer
                )
            except (RemoteError, NotFastForward) as exc:
                update = RefUpdate(ref, old, new_head, "failed", exc.message)
                if isinstance(exc, RemoteDenied):  # the store's policy (docs/governance.md)
                    denied.add(ref)
            out.updates.append(update)
        # the remote has them now (indexed, so durable there): the budget may evict them
        with store.env.write() as txn:
            for plan in plans:
                chunks.unpin(txn, [cid for cid, _ in plan.chunks])
                chunks.unpin(txn, plan.present)
        store.remote.enforce_budget(force=True)
    elif not denied:  # no ref moves; statements made since the last push (attestations) go
        _push_statements(store, t, rec.name)  # (not when the store refused every ref)
    retentionsync.publish(store, t, repo, remote_repo)  # after the refs: see retentionsync
    erasuresync.publish_repo(store, t, repo, remote_repo)  # likewise
    out.stats.seconds = time.perf_counter() - t0
    failed = [u for u in out.updates if u.status == "failed"]
    rejected = [u for u in out.updates if u.status == "rejected"]
    if failed or rejected:
        moved = [u.ref for u in out.updates if u.status in ("created", "updated", "up to date")]
        done = f" (pushed: {', '.join(moved)})" if moved else ""
        reasons = [f"{u.ref}: {u.message}" for u in failed] + [u.message for u in rejected]
        error = RemoteError if failed else NotFastForward
        if failed and not rejected and all(u.ref in denied for u in failed):
            error = RemoteDenied
        raise error(f"not pushed: {'; '.join(reasons)}{done}")
    return out


PREFLIGHT_ETAG = '"mlgitfs-preflight-never-matches"'


def _writable(
    t: RemoteTransport,
    remote_repo: str,
    todo: list[tuple[str, bytes, bytes | None, str | None]],
    out: SyncOutcome,
    denied: set[str],
) -> list[tuple[str, bytes, bytes | None, str | None]]:
    """The refs of `todo` these credentials may write, found before anything is uploaded
    (the others are reported failed and added to `denied`). A write whose If-Match never
    holds is refused by the store's access policy (403) before its precondition is looked
    at (412), so it tells the two apart and writes nothing: the remote enforces conditional
    writes (`remotes.writable`). A writer's push of a protected branch thus sends nothing."""
    keep = []
    for item in todo:
        ref, new, old, _ = item
        try:
            t.put_if_match(packs.ref_key(remote_repo, ref), b"", PREFLIGHT_ETAG)
        except RemoteDenied as exc:
            out.updates.append(RefUpdate(ref, old, new, "failed", exc.message))
            denied.add(ref)
            continue
        except (PreconditionFailed, RemoteKeyMissing):
            pass  # allowed: the precondition was judged
        keep.append(item)
    return keep


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
    signer: RefSigner | None = None,
) -> RefUpdate:
    key = packs.ref_key(remote_repo, ref)
    first = old
    for _ in range(CAS_RETRIES):
        st = signer(ref, old, new) if signer is not None else None  # old may change: re-sign
        data = packs.encode_ref(new, st.encode() if st is not None else None)
        try:
            if etag is None:
                t.put_if_absent(key, data)
            else:
                t.put_if_match(key, data, etag)
        except PreconditionFailed:
            now, etag = read_ref(t, key)
            if now == new:
                break  # someone pushed the very same commit
            if now is not None and (ref.startswith("tags/") or not contains(store, now, new)):
                set_tracking(store, repo, remote, {ref: now})
                return RefUpdate(ref, now, new, "rejected", _rejection(repo, ref, first, now))
            old = now
            continue
        break
    else:
        raise NotFastForward(f"remote {ref} keeps moving; try again")
    if st is not None:
        statementsync.attach(store, [st], remote)
    set_tracking(store, repo, remote, {ref: new})
    return RefUpdate(ref, old, new, "created" if old is None else "updated")


def _push_statements(store: Store, t: RemoteTransport, remote: str) -> None:
    def on_remote(commit: bytes) -> bool:
        with store.env.read() as txn:
            return remotedb.remote_has(txn, remote, META, commit)

    statementsync.push_statements(store, t, remote, on_remote)


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
