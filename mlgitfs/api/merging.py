"""Merge, merge-base, reset, revert and cherry-pick of branches (docs/merge.md).

A merge that finds conflicts raises `MergeConflict` (exit 23) carrying them; nothing
changed. `reset` refuses, unless forced, to leave commits that no other ref holds, and
always refuses while the branch's checkout has uncommitted changes or a live writable mount.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.api.branches import checkout_guard
from mlgitfs.daemon.hookviews import hook_options
from mlgitfs.errors import UnsafeOperation, UsageError
from mlgitfs.meta import db
from mlgitfs.model.ids import ObjectId, short_hex, to_hex
from mlgitfs.model.revspec import branch_name, parse_revspec
from mlgitfs.repo import graph, refs
from mlgitfs.repo.commits import branch_ref
from mlgitfs.repo.gate import HookResult
from mlgitfs.repo.merge import Strategy
from mlgitfs.repo.mergebranch import FastForward, MergeOutcome, apply_change, merge_into_branch
from mlgitfs.repo.signedby import check_signer
from mlgitfs.store.facade import Store


@dataclass(frozen=True, slots=True)
class ResolvedItem:
    path: str
    kind: str  # the conflict kind a rule or --strategy resolved
    strategy: str


@dataclass(frozen=True, slots=True)
class MergeResult:
    repo: str
    branch: str
    source: str
    status: str  # up to date, fast-forward, merged (revert, cherry-pick: committed)
    ours: str  # the branch's head before
    theirs: str
    base: str  # "" when none was needed
    commit: str  # the branch's new head; "" when it did not move (or --dry-run)
    tree: str
    dry_run: bool
    resolved: tuple[ResolvedItem, ...]
    renames: tuple[tuple[str, str], ...]
    hooks: tuple[HookResult, ...] = ()  # the hooks and checks that ran, cached or not


@dataclass(frozen=True, slots=True)
class MergeBaseResult:
    a: str
    b: str
    bases: tuple[str, ...]  # the chosen one first; empty when unrelated


@dataclass(frozen=True, slots=True)
class ResetResult:
    repo: str
    branch: str
    old: str
    new: str
    dropped: bool  # the old head is now held by no ref (only with --force)


def _target(text: str) -> tuple[str, str]:
    spec = parse_revspec(text)
    if spec.back is not None or spec.path:
        raise UsageError(f"name a branch as REPO@BRANCH, not {text!r}")
    return spec.repo, branch_name(spec.ref)


def _commit_of(store: Store, text: str, repo: str | None = None) -> tuple[str, ObjectId]:
    r = refs.resolve(store, parse_revspec(text, default_repo=repo))
    if r.spec.path:
        raise UsageError(f"{text!r} names a path; name a commit")
    if repo is not None and r.repo != repo:
        raise UsageError(f"{text} is a commit of {r.repo}, not of {repo}")
    return r.repo, r.commit_id


def _result(repo: str, branch: str, source: str, out: MergeOutcome) -> MergeResult:
    return MergeResult(
        repo,
        branch,
        source,
        out.status,
        to_hex(out.ours),
        to_hex(out.theirs),
        to_hex(out.base) if out.base is not None else "",
        to_hex(out.commit) if out.commit is not None else "",
        to_hex(out.tree) if out.tree is not None else "",
        out.dry_run,
        tuple(ResolvedItem(p, k.value, s.value) for p, k, s in out.resolved),
        tuple(sorted(out.renames.items())),
        tuple(out.hooks),
    )


def _strategy(name: str | None) -> Strategy | None:
    if name is None:
        return None
    if name not in ("ours", "theirs"):
        raise UsageError(f"--strategy is ours or theirs, not {name!r}")
    return Strategy(name)


def merge(
    home: Path | None,
    source: str,
    into: str | None = None,
    message: str | None = None,
    ff_only: bool = False,
    no_ff: bool = False,
    strategy: str | None = None,
    dry_run: bool = False,
    no_verify: bool = False,
) -> MergeResult:
    """Merge SOURCE (REPO@REF) into INTO (REPO@BRANCH; default REPO@main), gated by the
    branch's pre-merge and pre-commit hooks (`no_verify`: skipped, where allowed)."""
    if ff_only and no_ff:
        raise UsageError("--ff-only and --no-ff contradict each other")
    store = open_store(home)
    repo, theirs = _commit_of(store, source)
    into_repo, branch = _target(into or f"{repo}@main")
    if into_repo != repo:
        raise UsageError(f"{source} is a commit of {repo}; it cannot be merged into {into_repo}")
    ff = FastForward.ONLY if ff_only else FastForward.NEVER if no_ff else FastForward.AUTO
    out = merge_into_branch(
        store, repo, branch, theirs, source, message, ff, _strategy(strategy), dry_run,
        hooks=hook_options(store, no_verify),
    )  # fmt: skip
    return _result(repo, branch, source, out)


def merge_base(home: Path | None, a: str, b: str) -> MergeBaseResult:
    store = open_store(home)
    repo, ca = _commit_of(store, a)
    _, cb = _commit_of(store, b, repo)
    return MergeBaseResult(
        to_hex(ca), to_hex(cb), tuple(to_hex(x) for x in graph.merge_bases(store, ca, cb))
    )


def _pick(
    home: Path | None,
    revspec: str,
    into: str | None,
    message: str | None,
    strategy: str | None,
    dry_run: bool,
    revert: bool,
) -> MergeResult:
    store = open_store(home)
    repo, cid = _commit_of(store, revspec)
    into_repo, branch = _target(into or f"{repo}@main")
    if into_repo != repo:
        raise UsageError(f"{revspec} is a commit of {repo}, not of {into_repo}")
    commit = store.commit(cid)
    if not commit.parents:
        raise UsageError(f"{revspec} ({short_hex(cid)}) is a root commit: nothing to apply")
    parent = store.commit(commit.parents[0]).tree  # a merge commit: against its first parent
    verb = "revert" if revert else "cherry-pick"
    text = message or f"{verb} {short_hex(cid)}: {commit.message}"
    base, theirs = (commit.tree, parent) if revert else (parent, commit.tree)
    out = apply_change(
        store, repo, branch, base, theirs, cid, text, _strategy(strategy), dry_run,
        hooks=hook_options(store), via=verb,
    )  # fmt: skip
    return _result(repo, branch, revspec, out)


def revert(
    home: Path | None,
    revspec: str,
    into: str | None = None,
    message: str | None = None,
    strategy: str | None = None,
    dry_run: bool = False,
) -> MergeResult:
    """A new commit on INTO (default REPO@main) that undoes REVSPEC's changes."""
    return _pick(home, revspec, into, message, strategy, dry_run, revert=True)


def cherry_pick(
    home: Path | None,
    revspec: str,
    into: str | None = None,
    message: str | None = None,
    strategy: str | None = None,
    dry_run: bool = False,
) -> MergeResult:
    """A new commit on INTO (default REPO@main) that makes REVSPEC's changes again."""
    return _pick(home, revspec, into, message, strategy, dry_run, revert=False)


def reset(home: Path | None, repo_branch: str, revspec: str, force: bool = False) -> ResetResult:
    """Move REPO@BRANCH to REVSPEC."""
    store = open_store(home)
    repo, branch = _target(repo_branch)
    _, target = _commit_of(store, revspec, repo)
    ref = branch_ref(branch)
    with store.env.read() as txn:
        db.get_repo(txn, repo)
        old = db.get_ref(txn, repo, ref)
    if old is None:
        raise UsageError(f"{repo} has no branch {branch!r} (create it with 'mlgitfs branch')")
    gate = hook_options(store).gate(store, branch, old, "reset")  # a protected branch refuses
    check_signer(store, repo, branch, gate.rule, "a reset")  # as would a signed_by rule
    with checkout_guard(store, repo, branch) as (_, dirty):
        if dirty:
            raise UnsafeOperation(
                f"{repo}@{branch} has uncommitted changes in its checkout (see 'mlgitfs "
                "status'): commit or restore them first; a reset would leave them on a base "
                "they no longer fit"
            )
        dropped = not refs.held_elsewhere(store, repo, ref, old, (target,))
        if dropped and not force:
            raise UnsafeOperation(
                f"{repo}@{branch} ({short_hex(old)}) holds commits that no other branch, tag or "
                f"remote holds, and {short_hex(target)} does not contain them: resetting would "
                "drop them. Tag or push them first, or reset with --force"
            )
        with store.env.write() as txn:  # a clean checkout follows the branch at its next mount
            db.set_ref(txn, repo, ref, target, old, f"reset to {revspec}")
    return ResetResult(repo, branch, to_hex(old), to_hex(target), dropped)
