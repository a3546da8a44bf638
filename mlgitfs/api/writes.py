"""Writes without a mount: path → content changes committed onto a branch (repo/pathcommit.py).

What fsspec's writable side calls (mlgitfs/fsspec_fs.py): `write_target` reads the branch's
head when a file is opened for writing; `write_paths` makes the one commit of everything
written since, by compare-and-swap from that head. The repo's mutability applies as at a
mount's commit (no unlock exists without a mount), and the branch's rules and pre-commit
hooks as for an import.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlgitfs.api._common import commit_info, open_store
from mlgitfs.api.results import CommitInfo
from mlgitfs.daemon.hookviews import hook_options
from mlgitfs.errors import PolicyError, UnknownRef, UsageError
from mlgitfs.meta import db
from mlgitfs.meta.db import Mutability
from mlgitfs.model.ids import ObjectId, from_hex, to_hex
from mlgitfs.model.revspec import TAG_QUALIFIER, branch_name, parse_revspec, reflog_selector
from mlgitfs.repo import refs
from mlgitfs.repo.commits import CommitRequest
from mlgitfs.repo.gate import HookResult
from mlgitfs.repo.pathcommit import Guard, PathEdit, commit_paths
from mlgitfs.store.facade import Store
from mlgitfs.vfs.policy import Change, MutabilityPolicy

__all__ = ["PathEdit", "WriteResult", "WriteTarget", "write_paths", "write_target"]


@dataclass(frozen=True, slots=True)
class WriteTarget:
    repo: str
    branch: str
    head: str | None  # hex of the head read when the write began; None: a repo's first branch


@dataclass(frozen=True, slots=True)
class WriteResult:
    repo: str
    branch: str
    commit: CommitInfo  # the new commit; the head when nothing changed
    changed: bool
    paths: tuple[str, ...]
    bytes_stored: int
    hooks: tuple[HookResult, ...]


def write_target(home: Path | None, text: str) -> WriteTarget:
    """The branch a write to REPO@BRANCH goes to, with its head now. A tag, a remote-tracking
    ref, a commit id, `~N` or `@{N}` is refused: a commit moves a branch and nothing else.
    A branch that does not exist is refused too, except in a repo with no branch at all
    (its first version)."""
    store = open_store(home)
    spec = parse_revspec(text)
    if spec.path:
        raise UsageError(f"{text!r}: a write target is REPO@BRANCH, its path given apart")
    what = f"{spec.repo}@{spec.ref}"
    if spec.names_commit or reflog_selector(spec.ref) is not None:
        raise UsageError(f"{text} names a commit: writes commit onto a branch (REPO@BRANCH)")
    if spec.ref.startswith(TAG_QUALIFIER):
        raise UsageError(f"{what} names a tag: tags never move; write to a branch")
    try:
        oid, branch = refs.resolve_ref(store, spec.repo, spec.ref)
    except UnknownRef:
        with store.env.read() as txn:
            empty = not any(r.startswith("heads/") for r, _ in db.list_refs(txn, spec.repo))
        if empty:
            return WriteTarget(spec.repo, branch_name(spec.ref), None)
        raise UnknownRef(
            f"{spec.repo} has no branch {spec.ref!r}: create it first ('mlgitfs branch "
            f"{what}'); a write commits onto an existing branch"
        ) from None
    if branch is None:
        with store.env.read() as txn:
            tag = db.get_ref(txn, spec.repo, TAG_QUALIFIER + spec.ref) is not None
        kind = "a tag: tags never move" if tag else "no branch (a commit or a remote's ref)"
        raise UsageError(f"{what} is {kind}; write to a branch (REPO@BRANCH)")
    return WriteTarget(spec.repo, branch, to_hex(oid))


def write_paths(
    home: Path | None,
    target: WriteTarget,
    edits: Sequence[PathEdit],
    message: str | None = None,
    author: str | None = None,
    no_verify: bool = False,
) -> WriteResult:
    """One commit of `edits` on the target's branch from the head it was read at
    (ConflictError when the branch moved since; nothing changes). No commit when nothing
    changed. `message` defaults to a line naming what was written and removed."""
    store = open_store(home)
    guard = mutability_guard(store, target.repo, "write")
    req = CommitRequest(target.repo, target.branch, message or _message(edits), {}, [], author)
    head = None if target.head is None else ObjectId(from_hex(target.head))
    out = commit_paths(
        store, req, head, edits, guard=guard, hooks=hook_options(store, no_verify), via="write"
    )
    info = commit_info(out.commit, store.commit(out.commit))
    return WriteResult(target.repo, target.branch, info, out.changed, out.paths,
                       out.bytes_stored, tuple(out.hooks))  # fmt: skip


def mutability_guard(store: Store, repo: str, op: str, unlock: Sequence[str] = ()) -> Guard | None:
    """The repo's mutability as a `Guard` for a commit made without a mount (a write, an
    import); None for a mutable repo (nothing to ask, no diff to make). `unlock`: import's
    --unlock patterns, each a path of the version or a glob (fnmatch: `*` matches across
    `/`), letting a flexible repo's files they match change; a strict repo refuses them
    (PolicyError), as `mlgitfs unlock` does."""
    with store.env.read() as txn:
        mutability = db.get_repo(txn, repo).mutability
    if unlock and mutability is Mutability.STRICT:
        raise PolicyError(
            f"{repo} is strict: a committed file's content never changes, --unlock included; "
            "add files under new names instead; nothing was imported"
        )
    if mutability is Mutability.MUTABLE:
        return None
    patterns = [p.strip("/") for p in unlock]

    def unlocked(path: str) -> bool:
        return any(path == p or fnmatch.fnmatchcase(path, p) for p in patterns)

    flag = "--unlock" if op == "import" else None
    policy = MutabilityPolicy(repo, mutability, unlocked, mounted=False, unlock_flag=flag)

    def guard(path: str) -> str | None:
        refusal = policy.check(Change(op, path, True))
        return None if refusal is None else refusal.reason

    return guard


def _message(edits: Sequence[PathEdit]) -> str:
    final = {e.path.strip("/"): e.content is not None for e in edits}
    written = sorted(p for p, w in final.items() if w)
    removed = sorted(p for p, w in final.items() if not w)
    parts = []
    for verb, paths in (("write", written), ("remove", removed)):
        if paths:
            parts.append(f"{verb} {', '.join(paths) if len(paths) <= 3 else f'{len(paths)} paths'}")
    return " and ".join(parts) or "write"
