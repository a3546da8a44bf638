"""Resolving revspecs to commits and paths; creating and deleting branches and tags."""

from __future__ import annotations

from dataclasses import dataclass

from mlgitfs.errors import AlreadyExists, AmbiguousRef, MlgitError, UnknownRef
from mlgitfs.meta import db, reflog
from mlgitfs.meta.env import ReadTxn
from mlgitfs.model.ids import HEX_LEN, ObjectId, is_hex_prefix, short_hex
from mlgitfs.model.objects import Commit, TreeEntry
from mlgitfs.model.revspec import (
    BRANCH_QUALIFIER,
    TAG_QUALIFIER,
    Revspec,
    check_new_ref_name,
    parse_revspec,
    reflog_selector,
)
from mlgitfs.repo import graph
from mlgitfs.repo.trees import resolve_path
from mlgitfs.store.facade import Store

TRACKING_PREFIX = "remotes/"  # remote-tracking refs: remotes/REMOTE/heads/B, remotes/REMOTE/tags/T


@dataclass(frozen=True, slots=True)
class Resolved:
    spec: Revspec
    commit_id: ObjectId
    commit: Commit
    branch: str | None  # set when REF named a branch (and no ~N): the mount is writable
    entry: TreeEntry | None  # the entry at spec.path; None for the root

    @property
    def repo(self) -> str:
        return self.spec.repo


def _commits_by_prefix(txn: ReadTxn, prefix: str) -> list[bytes]:
    """The store's commit ids that start with a hex prefix (of any repo)."""
    if len(prefix) == HEX_LEN:
        raw = bytes.fromhex(prefix)
        data = db.get_object_bytes(txn, ObjectId(raw))
        return [raw] if data is not None and data[1:8] == b"\xa6commit" else []
    key_prefix = bytes.fromhex(prefix[: len(prefix) // 2 * 2]) if len(prefix) >= 2 else b""
    # Only commits count: their encoding starts with a 9-item array and the tag.
    return [
        key
        for key, value in db.objects_with_prefix(txn, key_prefix)
        if key.hex().startswith(prefix) and value[1:8] == b"\xa6commit"
    ]


def _roots(txn: ReadTxn, repo: str) -> set[bytes]:
    """The commits a repo's history hangs from: what its refs name or ever named."""
    return {bytes(oid) for _, oid in db.list_refs(txn, repo)} | db.reflog_commits(txn, repo)


def _in_history(store: Store, oid: bytes, roots: set[bytes]) -> bool:
    for root in roots:
        try:
            if graph.is_ancestor(store, ObjectId(oid), ObjectId(root)):
                return True
        except MlgitError:  # a root whose commits are not all here: not this one's proof
            continue
    return False


def _commit_in_repo(store: Store, repo: str, prefix: str, found: list[bytes],
                    roots: set[bytes]) -> ObjectId | None:  # fmt: skip
    """The one commit of `found` (ids starting with `prefix`) in the repo's history: a
    commit of another repo of the store is not this repo's, however its id starts."""
    mine = [oid for oid in found if _in_history(store, oid, roots)]
    if len(mine) > 1:
        raise AmbiguousRef(f"{repo}@{prefix} is ambiguous: give more characters of the commit id")
    return ObjectId(mine[0]) if mine else None


def candidates(ref: str) -> list[tuple[str, bool]]:
    """The stored refs `ref` may name, in order, each with whether it is a local branch."""
    if ref.startswith(BRANCH_QUALIFIER):
        return [(ref, True)]
    if ref.startswith(TAG_QUALIFIER) or ref.startswith(TRACKING_PREFIX):
        return [(ref, False)]
    out = [("heads/" + ref, True), ("tags/" + ref, False)]
    remote, sep, rest = ref.partition("/")
    if sep:  # REMOTE/BRANCH or REMOTE/tags/TAG: a remote-tracking ref
        kind_ref = rest if rest.startswith(TAG_QUALIFIER) else "heads/" + rest
        out.append((f"{TRACKING_PREFIX}{remote}/{kind_ref}", False))
    return out


def _from_reflog(txn: ReadTxn, repo: str, name: str, n: int) -> ObjectId:
    """The value ref `name` had `n` moves ago (0: now), by its reflog."""
    for ref, _ in candidates(name):
        moves = list(reflog.entries(txn, repo, ref))[::-1]  # newest first
        if not moves:
            continue
        if n > len(moves):
            raise UnknownRef(
                f"{repo}@{name}@{{{n}}}: its reflog holds {len(moves)} moves, so "
                f"@{{{len(moves)}}} is the oldest (see 'mlgitfs reflog {repo}@{name}')"
            )
        value = moves[0].new if n == 0 else moves[n - 1].old
        if value is None:
            what = "deleted" if n == 0 else "created"
            raise UnknownRef(
                f"{repo}@{name}@{{{n}}} names nothing: {name} was {what} then "
                f"(see 'mlgitfs reflog {repo}@{name}')"
            )
        return value
    raise UnknownRef(f"{repo} has no reflog for {name!r} (see 'mlgitfs reflog {repo}')")


def resolve_ref(store: Store, repo: str, ref: str) -> tuple[ObjectId, str | None]:
    """(commit id, branch name or None) for a branch, tag, remote-tracking ref, commit id
    (prefix) or NAME@{N}. `heads/NAME` and `tags/NAME` name a branch or a tag alone."""
    selector = reflog_selector(ref)
    if selector is not None:
        with store.env.read() as txn:
            db.get_repo(txn, repo)
            was = _from_reflog(txn, repo, *selector)
        store.commit(was)  # MissingObject once gc has taken an expired entry's commit
        return was, None
    with store.env.read() as txn:
        db.get_repo(txn, repo)
        found = [(name, is_branch, db.get_ref(txn, repo, name)) for name, is_branch in
                 candidates(ref)]  # fmt: skip
        found = [(n, b, o) for n, b, o in found if o is not None]
        if len(found) > 1 and found[0][1] and found[1][0].startswith(TAG_QUALIFIER):
            raise AmbiguousRef(
                f"{repo}@{ref} is both a branch and a tag: write {repo}@heads/{ref} or "
                f"{repo}@tags/{ref}"
            )
        if found:
            name, is_branch, oid = found[0]
            assert oid is not None
            return oid, (name[len(BRANCH_QUALIFIER) :] if is_branch else None)
        commits: list[bytes] = []
        roots: set[bytes] = set()
        if is_hex_prefix(ref) and len(ref) >= 4:
            commits = _commits_by_prefix(txn, ref)
            roots = _roots(txn, repo) if commits else set()
    # Outside the transaction: the history walk reads commits through the store.
    oid = _commit_in_repo(store, repo, ref, commits, roots) if commits else None
    if oid is not None:
        store.commit(oid)  # raises CorruptObject when it is not a commit
        return oid, None
    raise UnknownRef(f"{repo} has no branch, tag or commit {ref!r} (see 'mlgitfs branch {repo}')")


def resolve(store: Store, spec: Revspec | str) -> Resolved:
    if isinstance(spec, str):
        spec = parse_revspec(spec)
    oid, branch = resolve_ref(store, spec.repo, spec.ref)
    commit = store.commit(oid)
    for i in range(spec.back or 0):
        if not commit.parents:
            raise UnknownRef(
                f"{spec.repo}@{spec.ref}~{spec.back}: the first-parent history of "
                f"{spec.repo}@{spec.ref} has {i + 1} commits, so ~{i} is the oldest"
            )
        oid = commit.parents[0]
        commit = store.commit(oid)
    if spec.names_commit:  # ~N, ~0 included, names a commit: never a (writable) branch
        branch = None
    entry = resolve_path(store, commit.tree, spec.path)
    return Resolved(spec, oid, commit, branch, entry)


def held_elsewhere(
    store: Store, repo: str, ref: str, oid: ObjectId, also: tuple[ObjectId, ...] = ()
) -> bool:
    """Whether commit `oid` stays reachable without `ref`: from `also` or from another ref of
    the repo (branch, tag or remote-tracking ref)."""
    from mlgitfs.repo.graph import is_ancestor

    with store.env.read() as txn:
        others = [o for r, o in db.list_refs(txn, repo) if r != ref]
    return any(is_ancestor(store, oid, h) for h in (*also, *others))


def ref_label(ref: str) -> str:
    """How output names a stored ref, spelled as a revspec's REF resolves it:
    heads/main → main, tags/v1 → v1, remotes/origin/heads/main → origin/main,
    remotes/origin/tags/v1 → origin/tags/v1."""
    if ref.startswith(TRACKING_PREFIX):
        remote, _, rest = ref[len(TRACKING_PREFIX) :].partition("/")
        if rest.startswith(BRANCH_QUALIFIER):
            rest = rest[len(BRANCH_QUALIFIER) :]
        return f"{remote}/{rest}"
    return ref.split("/", 1)[1]


def list_refs(store: Store, repo: str, kind: str) -> list[tuple[str, ObjectId]]:
    """Branches (kind "heads") or tags (kind "tags") of a repo, by name."""
    with store.env.read() as txn:
        db.get_repo(txn, repo)
        return [(name[len(kind) + 1 :], oid) for name, oid in db.list_refs(txn, repo, kind + "/")]


def create_ref(store: Store, repo: str, kind: str, name: str, target: ObjectId) -> None:
    what = "branch" if kind == "heads" else "tag"
    check_new_ref_name(name, what)
    with store.env.write() as txn:
        db.get_repo(txn, repo)
        if db.get_ref(txn, repo, f"{kind}/{name}") is not None:
            raise AlreadyExists(f"{what} {repo}@{name} already exists")
        check_no_other_kind(txn, repo, kind, name)
        db.set_ref(txn, repo, f"{kind}/{name}", target, None, f"create {kind}/{name}")


def check_no_other_kind(txn: ReadTxn, repo: str, kind: str, name: str) -> None:
    """Refuse a branch beside a tag of the same name (or a tag beside a branch): `REPO@NAME`
    would name both; and a ref nested under another of its kind, or the reverse."""
    _check_no_nesting(txn, repo, kind, name)
    other = "tags" if kind == "heads" else "heads"
    if db.get_ref(txn, repo, f"{other}/{name}") is not None:
        what, there = ("branch", "tag") if kind == "heads" else ("tag", "branch")
        raise AlreadyExists(
            f"{repo} has a {there} named {name!r}: a {what} of the same name would make "
            f"{repo}@{name} ambiguous; choose another name"
        )


def _check_no_nesting(txn: ReadTxn, repo: str, kind: str, name: str) -> None:
    """Refuse `feature/x` beside `feature` (and the reverse) among branches or among tags:
    on a remote they would be a key and a folder of the same name (a `file://` remote and
    git cannot hold both), so one of them could never be pushed."""
    what = "branch" if kind == "heads" else "tag"
    parts = name.split("/")
    clash = next(
        (above for i in range(1, len(parts))
         if db.get_ref(txn, repo, f"{kind}/{(above := '/'.join(parts[:i]))}") is not None),
        None,
    )  # fmt: skip
    if clash is None:
        below = next(iter(db.list_refs(txn, repo, f"{kind}/{name}/")), None)
        clash = None if below is None else below[0][len(kind) + 1 :]
    if clash is not None:
        raise AlreadyExists(
            f"{repo} has a {what} named {clash!r}: a {what} {name!r} cannot exist beside it "
            "(one would be a folder of the other on a remote); choose another name"
        )


def delete_ref(store: Store, repo: str, kind: str, name: str) -> ObjectId:
    """Delete branch (kind "heads") or tag ("tags") `name`; returns the commit it named."""
    what = "branch" if kind == "heads" else "tag"
    with store.env.write() as txn:
        db.get_repo(txn, repo)
        current = db.get_ref(txn, repo, f"{kind}/{name}")
        if current is None:
            raise UnknownRef(f"{repo} has no {what} {name!r}")
        db.set_ref(txn, repo, f"{kind}/{name}", None, current, f"delete {kind}/{name}")
    return current


def describe(oid: ObjectId) -> str:
    return short_hex(oid)
