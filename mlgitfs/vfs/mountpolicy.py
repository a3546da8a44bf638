"""The policies of a writable mount beside mutability: the branch's protection rule, its
`signed_by` rule and its hooks, as `Policy`s (vfs/policy.py), and `mount_policies`, the one
place their order is set.

All read the branch's `.mlgitfs/hooks.toml` from the checkout's base (the branch's head: the
commit moves the branch from it by compare-and-swap), as every other operation reads them
from the head it moves (docs/governance.md). Neither refuses a system call: the overlay is
a draft, which `status` shows and `restore` undoes; what reaches the branch is the commit,
and that is what they judge.
"""

from __future__ import annotations

from collections.abc import Callable

from mlgitfs.meta.db import Mutability
from mlgitfs.repo.gate import Gate
from mlgitfs.repo.hooks import load_hooks
from mlgitfs.repo.protected import check_allowed
from mlgitfs.repo.signedby import check_signer
from mlgitfs.store.facade import Store
from mlgitfs.vfs.policy import (
    Change,
    MutabilityPolicy,
    OwnerOnly,
    Policies,
    Policy,
    Proposal,
    Refusal,
    compose,
)

VIA = "mount commit"  # the operation, as protected.check_allowed and the hooks name it


class ProtectedBranchPolicy:
    """`protected` and `merges_only` branch rules: a commit from a mount is a direct commit,
    refused (BranchProtected, exit 36, naming the rule and how the branch moves)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def check(self, change: Change) -> Refusal | None:
        return None  # changes stay in the overlay; only a commit would move the branch

    def admit(self, proposal: Proposal) -> Gate | None:
        hooks = load_hooks(self.store, self.store.commit(proposal.base).tree)
        rule = hooks.rule(proposal.branch)
        if rule is not None and rule.guarded:
            check_allowed(rule, proposal.branch, VIA)
        return None


class SignedByPolicy:
    """A `signed_by = ROLE` branch rule: the commit is signed with this store's signing key,
    which must be the key of a trust-policy identity holding ROLE on the branch (without a
    policy in force, any key). Refused as an import is: BranchProtected, exit 36, naming
    the rule (repo/signedby.py)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def check(self, change: Change) -> Refusal | None:
        return None  # who signs matters for the commit, not for the draft

    def admit(self, proposal: Proposal) -> Gate | None:
        hooks = load_hooks(self.store, self.store.commit(proposal.base).tree)
        rule = hooks.rule(proposal.branch)
        check_signer(
            self.store, proposal.repo, proposal.branch, rule, "a commit in a writable mount"
        )
        return None


class HookPolicy:
    """The branch's pre-commit hooks and checks, run on the candidate (repo/gate.py); its
    post-commit hooks once the commit is done. A failure refuses the commit (HookRefused)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def check(self, change: Change) -> Refusal | None:
        return None  # hooks judge a version, not a system call

    def admit(self, proposal: Proposal) -> Gate | None:
        # The rule is ProtectedBranchPolicy's to judge: here only hooks (and --no-verify's
        # own rule, allow_skip).
        return proposal.hooks.gate(self.store, proposal.branch, proposal.base, VIA, rules=False)


def mount_policies(
    store: Store,
    repo: str,
    owner: int,
    mutability: Mutability,
    unlocked: Callable[[str], bool],
    extra: tuple[Policy, ...] = (),
) -> Policies:
    """A writable mount's policies, in the order they are asked: who may change it, which
    committed files may change, whether the branch may move by a mount commit, whether this
    store's key may sign its move, and the hooks (cheap and local first; the one that may
    run commands last), in the order an import asks them. `extra` ones go between the
    built-in rules and the hooks."""
    return compose(
        OwnerOnly(owner),
        MutabilityPolicy(repo, mutability, unlocked),
        ProtectedBranchPolicy(store),
        SignedByPolicy(store),
        *extra,
        HookPolicy(store),
    )
