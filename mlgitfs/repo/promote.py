"""Promotion: move a (protected) branch to a candidate only when its required checks pass.

The candidate is SRC's commit when the target's head is its ancestor (a fast-forward), else
the merge of SRC into the target made by the merge machinery (refused on conflicts). The
target's rule (`[[branch]]` in its head's `.mlgitfs/hooks.toml`) names the required checks;
they run with the target's pre-merge and pre-commit hooks, before the branch moves, and the
move is a compare-and-swap on the head they were read from: on any failure nothing moves.
The checks the promoted commit passed, and the promotion, are then attested: signed
statements attached to the commit (repo/attest.py), pushed and fetched with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlgitfs.errors import UsageError
from mlgitfs.meta import db
from mlgitfs.model.ids import ObjectId
from mlgitfs.repo.commits import branch_ref
from mlgitfs.repo.gate import Gate, HookOptions, HookResult
from mlgitfs.repo.graph import is_ancestor
from mlgitfs.repo.hookrun import Candidate
from mlgitfs.repo.mergebranch import MERGE_EVENTS, merge_into_branch
from mlgitfs.repo.signedby import check_signer
from mlgitfs.store.facade import Store


@dataclass
class PromoteOutcome:
    status: str  # fast-forward, merged, up to date (re-checked), would fast-forward, would merge
    head: ObjectId  # the target's head before
    source: ObjectId
    commit: ObjectId | None  # the target's new head (None: it did not move)
    required: tuple[str, ...]  # the target rule's required checks
    checks: list[HookResult] = field(default_factory=list)  # every hook and check that ran


def promote(
    store: Store,
    repo: str,
    source: ObjectId,
    label: str,
    target: str,
    hooks: HookOptions,
    dry_run: bool = False,
) -> PromoteOutcome:
    with store.env.read() as txn:
        db.get_repo(txn, repo)
        head = db.get_ref(txn, repo, branch_ref(target))
    if head is None:
        raise UsageError(f"{repo} has no branch {target!r} to promote to; create it first")
    opts = HookOptions(hooks.views, hooks.no_verify, True, hooks.attester)
    gate = opts.gate(store, target, head)  # refuses a bad hooks file before anything runs
    check_signer(store, repo, target, gate.rule, "a promotion")
    required = tuple(h.name for h in gate.required)
    if is_ancestor(store, source, head):
        # Up to date: the checks run on the head (against its first parent) and are
        # attested, which also mends a promotion whose attestation a crash lost.
        cand = _run(store, gate, repo, target, _first_parent(store, head), head)
        if not dry_run:
            gate.record(repo, target, cand, "promote")
        return PromoteOutcome("up to date", head, source, None, required, gate.results)
    if dry_run:
        if is_ancestor(store, head, source):
            _run(store, gate, repo, target, head, source)
            return PromoteOutcome("would fast-forward", head, source, None, required, gate.results)
        # The merge commit is made only at promotion: a dry run finds its conflicts.
        merge_into_branch(store, repo, target, source, label, dry_run=True, hooks=opts)
        return PromoteOutcome("would merge", head, source, None, required)
    out = merge_into_branch(
        store, repo, target, source, label, f"promote {label} to {target}", hooks=opts
    )
    return PromoteOutcome(out.status, head, source, out.commit, required, out.hooks)


def check_for(
    store: Store, repo: str, commit: ObjectId, target: str, hooks: HookOptions
) -> list[HookResult]:
    """Run on `commit` what promoting it to `target` would (the target rule's required
    checks, its pre-merge and pre-commit hooks), and attest the passes, so that a later
    promotion of this commit is satisfied by them without running them again. Moves
    nothing; HookRefused (nothing attested) at the first failure."""
    with store.env.read() as txn:
        db.get_repo(txn, repo)
        head = db.get_ref(txn, repo, branch_ref(target))
    if head is None:
        raise UsageError(f"{repo} has no branch {target!r} whose checks could be run")
    gate = HookOptions(hooks.views, False, True, hooks.attester).gate(store, target, head)
    # What changed is measured as a promotion would: against the target's head when it
    # is an ancestor (a fast-forward), else against the commit's first parent.
    base = head if is_ancestor(store, head, commit) else _first_parent(store, commit)
    gate.attest(_run(store, gate, repo, target, base, commit))
    return gate.results


def _first_parent(store: Store, commit: ObjectId) -> ObjectId | None:
    return (store.commit(commit).parents or (None,))[0]


def _run(
    store: Store, gate: Gate, repo: str, target: str, base: ObjectId | None, commit: ObjectId
) -> Candidate:
    """Run the promotion's gate on `commit` (what changed measured against `base`)."""
    cand = Candidate(
        repo, target, base, commit, store.commit(commit).tree,
        store.commit(base).tree if base is not None else None,
    )  # fmt: skip
    try:
        gate.run(cand, MERGE_EVENTS)
    finally:
        gate.flush()
    return cand
