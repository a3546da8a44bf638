"""Resolving revspecs to commits and paths; creating and deleting branches and tags."""

from __future__ import annotations

from dataclasses import dataclass

from mlgitfs.errors import AlreadyExists, AmbiguousRef, UnknownRef
from mlgitfs.meta import db
from mlgitfs.meta.env import ReadTxn
from mlgitfs.model.ids import HEX_LEN, ObjectId, is_hex_prefix, short_hex
from mlgitfs.model.names import check_ref_name
from mlgitfs.model.objects import Commit, TreeEntry
from mlgitfs.model.revspec import Revspec, parse_revspec
from mlgitfs.repo.store import Store
from mlgitfs.repo.trees import resolve_path


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


def _commit_in_repo(store: Store, txn: ReadTxn, repo: str, prefix: str) -> ObjectId | None:
    """A commit id from a hex prefix, among commits reachable from the repo's refs."""
    matches: set[bytes] = set()
    if len(prefix) == HEX_LEN:
        raw = bytes.fromhex(prefix)
        data = txn.get("objects", raw)
        return ObjectId(raw) if data is not None and data[1:8] == b"\xa6commit" else None
    key_prefix = bytes.fromhex(prefix[: len(prefix) // 2 * 2]) if len(prefix) >= 2 else b""
    for key, value in txn.scan("objects", key_prefix):
        # Only commits count: their encoding starts with a 9-item array and the tag.
        if key.hex().startswith(prefix) and value[1:8] == b"\xa6commit":
            matches.add(key)
            if len(matches) > 1:
                break
    if len(matches) > 1:
        raise AmbiguousRef(f"{repo}@{prefix} is ambiguous: give more characters of the commit id")
    return ObjectId(matches.pop()) if matches else None


def resolve_ref(store: Store, repo: str, ref: str) -> tuple[ObjectId, str | None]:
    """(commit id, branch name or None) for a branch, tag, or commit id (prefix)."""
    with store.env.read() as txn:
        db.get_repo(txn, repo)
        branch = db.get_ref(txn, repo, "heads/" + ref)
        tag = db.get_ref(txn, repo, "tags/" + ref)
        if branch is not None and tag is not None:
            raise AmbiguousRef(f"{repo}@{ref} is both a branch and a tag")
        if branch is not None:
            return branch, ref
        if tag is not None:
            return tag, None
        if is_hex_prefix(ref) and len(ref) >= 4:
            oid = _commit_in_repo(store, txn, repo, ref)
            if oid is not None:
                store.commit(oid)  # raises CorruptObject when it is not a commit
                return oid, None
    raise UnknownRef(f"{repo} has no branch, tag or commit {ref!r} (see 'mlgitfs branch {repo}')")


def resolve(store: Store, spec: Revspec | str) -> Resolved:
    if isinstance(spec, str):
        spec = parse_revspec(spec)
    oid, branch = resolve_ref(store, spec.repo, spec.ref)
    commit = store.commit(oid)
    for i in range(spec.back):
        if not commit.parents:
            raise UnknownRef(f"{spec.repo}@{spec.ref}~{i + 1}: history has only {i + 1} commits")
        oid = commit.parents[0]
        commit = store.commit(oid)
    if spec.back:
        branch = None
    entry = resolve_path(store, commit.tree, spec.path)
    return Resolved(spec, oid, commit, branch, entry)


def list_refs(store: Store, repo: str, kind: str) -> list[tuple[str, ObjectId]]:
    """Branches (kind "heads") or tags (kind "tags") of a repo, by name."""
    with store.env.read() as txn:
        db.get_repo(txn, repo)
        return [(name[len(kind) + 1 :], oid) for name, oid in db.list_refs(txn, repo, kind + "/")]


def create_ref(store: Store, repo: str, kind: str, name: str, target: ObjectId) -> None:
    check_ref_name(name, "branch" if kind == "heads" else "tag")
    with store.env.write() as txn:
        db.get_repo(txn, repo)
        if db.get_ref(txn, repo, f"{kind}/{name}") is not None:
            what = "branch" if kind == "heads" else "tag"
            raise AlreadyExists(f"{what} {repo}@{name} already exists")
        db.set_ref(txn, repo, f"{kind}/{name}", target, None, f"create {kind}/{name}")


def delete_branch(store: Store, repo: str, name: str) -> ObjectId:
    with store.env.write() as txn:
        db.get_repo(txn, repo)
        current = db.get_ref(txn, repo, "heads/" + name)
        if current is None:
            raise UnknownRef(f"{repo} has no branch {name!r}")
        db.set_ref(txn, repo, "heads/" + name, None, current, f"delete heads/{name}")
    return current


def describe(oid: ObjectId) -> str:
    return short_hex(oid)
