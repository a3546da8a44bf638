"""Which commits have expired: in a ref's history, governed by a retention rule, kept by none.

An expired commit keeps its metadata (commit, trees, manifests: log, lineage and a diff of
names and sizes still work); gc may drop its file contents (chunks no kept version holds).
For each repo with rules, each ref is governed by the rule its name matches (a
remote-tracking ref by its branch's or tag's name, so `origin/main` follows `main`):
- a branch keeps what the policy's `keep` decides of its whole history (repo/retention.py);
- a tag keeps its commit unless the policy says tags are not kept; its history is kept by
  the branches, not by the tag;
- a ref no rule matches keeps its whole history, and a repo without rules keeps everything.
Never expired, whatever the rules: a branch's head, a checkout's base (its overlay is a delta
against it), and a commit a live reflog entry names (the reflog's window is the undo
window of retention too: set `config reflog-expiry` to shorten it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from contextlib import contextmanager
from dataclasses import dataclass

from mlgitfs.errors import FileErased, MissingObject, VersionExpired
from mlgitfs.meta import checkouts, db, reflog, retention
from mlgitfs.meta.env import ReadTxn
from mlgitfs.model.decode import decode
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.objects import Commit
from mlgitfs.model.retention import Rule, rule_for
from mlgitfs.model.revspec import BRANCH_QUALIFIER, TAG_QUALIFIER
from mlgitfs.repo import retention as policy_math
from mlgitfs.repo.erase import erased_error
from mlgitfs.store.facade import Store

TRACKING = "remotes/"


@dataclass(frozen=True, slots=True)
class Expiry:
    """An expired commit and the rule it fell out of (in words, for errors and dry runs)."""

    repo: str
    commit: ObjectId
    time_ns: int
    reason: str


def _governed_name(ref: str) -> tuple[str, bool] | None:
    """(branch or tag name, is a tag) of a stored ref; None for anything else."""
    if ref.startswith(TRACKING):
        ref = ref[len(TRACKING) :].partition("/")[2]
    if ref.startswith(BRANCH_QUALIFIER):
        return ref[len(BRANCH_QUALIFIER) :], False
    if ref.startswith(TAG_QUALIFIER):
        return ref[len(TAG_QUALIFIER) :], True
    return None


Node = tuple[tuple[ObjectId, ...], int]  # a commit's parents and time
Loader = Callable[[ObjectId], Node | None]  # None: not in the store (or not a commit)


class _History:
    """Commits by id through `load`, each loaded once."""

    def __init__(self, load: Loader) -> None:
        self.load = load
        self.nodes: dict[ObjectId, Node | None] = {}

    def node(self, oid: ObjectId) -> Node | None:
        if oid not in self.nodes:
            self.nodes[oid] = self.load(oid)
        return self.nodes[oid]

    def of(self, head: ObjectId) -> list[tuple[ObjectId, int]]:
        """Every commit reachable from `head` by parents, with its time (a commit not in the
        store, as beyond a partial fetch, ends its line)."""
        out: list[tuple[ObjectId, int]] = []
        seen = {head}
        stack = [head]
        while stack:
            oid = stack.pop()
            node = self.node(oid)
            if node is None:
                continue
            out.append((oid, node[1]))
            for p in node[0]:
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        return out


def decide(
    refs: Iterable[tuple[str, str, ObjectId]],
    load: Loader,
    rules: Mapping[str, tuple[Rule, ...]],
    held: Set[ObjectId],
    now_ns: int,
) -> dict[ObjectId, tuple[str, str]]:
    """The expired commits (each with its repo and the rule that governed it) of a store
    whose refs are (repo, stored ref name, head), under each repo's `rules`, as of `now_ns`;
    `held` never expires (checkout bases, live reflog commits). Pure: the module note says
    what it decides; `expiry` feeds it from LMDB."""
    hist = _History(load)
    governed: dict[ObjectId, tuple[str, str]] = {}
    kept: set[ObjectId] = set()
    for repo, ref, head in refs:
        named = _governed_name(ref)
        if named is None or not named[1]:
            kept.add(head)  # a branch's head, never a tag's: keep_tags decides that
        rule = None if named is None else rule_for(rules.get(repo, ()), named[0])
        if rule is None or named is None:
            kept.update(oid for oid, _ in hist.of(head))
            continue
        label = (repo, rule.label(repo))
        if named[1]:  # a tag: its commit only; its history is the branches' to keep
            if rule.policy.keep_tags:
                kept.add(head)
            elif hist.node(head) is not None:
                governed.setdefault(head, label)
            continue
        history = hist.of(head)
        kept.update(policy_math.keep(history, rule.policy, now_ns))
        for oid, _ in history:
            governed.setdefault(oid, label)
    return {oid: g for oid, g in governed.items() if oid not in kept and oid not in held}


def expiry(txn: ReadTxn, now_ns: int) -> list[Expiry]:
    """Every expired commit of the store as of `now_ns` with its reason, oldest first. A
    commit two repos share expires only when neither keeps it."""

    def load(oid: ObjectId) -> Node | None:
        data = db.get_object_bytes(txn, oid)
        obj = None if data is None else decode(data, oid)
        return (obj.parents, obj.time_ns) if isinstance(obj, Commit) else None

    held = {rec.base for _, _, rec in checkouts.list_checkouts(txn)}
    refs: list[tuple[str, str, ObjectId]] = []
    rules: dict[str, tuple[Rule, ...]] = {}
    for rec in db.list_repos(txn):
        held.update(ObjectId(c) for c in reflog.live_commits(txn, rec.name, now_ns))
        rules[rec.name] = retention.get_rules(txn, rec.name)
        refs.extend((rec.name, ref, head) for ref, head in db.list_refs(txn, rec.name))
    hist = _History(load)
    out = []
    for oid, (repo, why) in decide(refs, hist.node, rules, held, now_ns).items():
        node = hist.node(oid)
        assert node is not None  # decide governs only commits it could load
        out.append(Expiry(repo, oid, node[1], why))
    return sorted(out, key=lambda e: (e.time_ns, e.commit))


def expired_commits(txn: ReadTxn, now_ns: int) -> frozenset[ObjectId]:
    """The commits whose file contents gc may drop as of `now_ns`, keeping their commit and
    tree metadata (the contract with gc: it marks from meta.roots.gc_roots and does not
    mark the chunks of these commits' files unless a kept version holds them too)."""
    return frozenset(e.commit for e in expiry(txn, now_ns))


def expired_error(store: Store, repo: str, commit: ObjectId) -> VersionExpired | None:
    """The error a read of `commit`'s missing file contents should give when gc let them go
    because the version expired (its expiry record names the rule); None otherwise."""
    with store.env.read() as txn:
        record = retention.get_expired(txn, commit)
    if record is None:
        return None
    when = dt.datetime.fromtimestamp(record.time_ns // 1_000_000_000, dt.UTC)
    return VersionExpired(
        short_hex(commit),
        f"{repo}@{short_hex(commit)} has expired: its file contents were let go by gc on "
        f"{when:%Y-%m-%d %H:%M} UTC under the {record.reason}; its history, names and sizes "
        "remain (log, ls, diff)",
    )


@contextmanager
def explain_missing(
    store: Store,
    repo: str,
    commit: ObjectId,
    path: bytes | None = None,
    file_id: bytes | None = None,
) -> Iterator[None]:
    """Turn a MissingObject met while reading `commit`'s files into FileErased when an
    erasure covers the file (`path` and `file_id` when known; else any of the commit's), or
    into VersionExpired when the version expired (a chunk missing for another reason stays
    what it is)."""
    try:
        yield
    except (VersionExpired, FileErased):
        raise
    except MissingObject as exc:
        err = missing_reason(store, repo, commit, path, file_id)
        if err is None:
            raise
        raise err from exc


def missing_reason(
    store: Store,
    repo: str,
    commit: ObjectId,
    path: bytes | None = None,
    file_id: bytes | None = None,
) -> MissingObject | None:
    """FileErased when an erasure covers the file of `commit` (`path` and `file_id` when
    known), else VersionExpired when the version expired, else None: why a file's contents
    are missing, for the CLI's reads and both kinds of mount."""
    err: MissingObject | None = erased_error(store, repo, commit, path, file_id)
    return expired_error(store, repo, commit) if err is None else err
