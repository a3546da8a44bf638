"""Branch rules requiring a signature by a role (`signed_by` in a `[[branch]]` of
`.mlgitfs/hooks.toml`; docs/governance.md, "Signed by a role").

Locally, an operation that moves such a branch (commit, import, merge, promote, and push,
which signs the ref move) is refused before anything is written unless this store's signing
key is the key of a policy identity holding at least that role on the repo and branch
(`BranchProtected`, naming the rule). Without a trust policy in force (repo/attestroles.py)
no role can be checked: the rule then asks for a signing key only. On fetch the trust check
asks the same of the ref statement that moved the branch (repo/trustcheck.py).
"""

from __future__ import annotations

from mlgitfs.errors import BranchProtected
from mlgitfs.model.signing import short_key_id
from mlgitfs.repo import keyring
from mlgitfs.repo.access import role_of
from mlgitfs.repo.attestroles import policy_in_force
from mlgitfs.repo.hooks import HOOKS_PATH, BranchRule
from mlgitfs.store.facade import Store


def check_signer(store: Store, repo: str, branch: str, rule: BranchRule | None, via: str) -> None:
    """BranchProtected unless this store's signing key may move `repo@branch` under `rule`."""
    if rule is None or rule.signed_by is None:
        return
    need = rule.signed_by
    named = f"branch rule {rule.pattern!r} in {HOOKS_PATH}: signed_by = {need.label!r}"
    with store.env.read() as txn:
        key = keyring.signer(keyring.Keyring(store.home), txn)
    if key is None:
        raise BranchProtected(
            f"{repo}@{branch} must be signed by a {need.label} ({named}) and this store signs "
            f"nothing (mlgitfs key generate): {via} is refused; nothing was changed",
            rule.pattern,
        )
    policy = policy_in_force(store)
    if policy is None:
        return  # no role to check: a signature is what the rule can ask
    ident = policy.identity_of(key.key_id)
    role = role_of(policy, ident, repo, branch) if ident is not None else None
    if role is not None and role >= need:
        return
    who = ident or f"key {short_key_id(key.key_id)} (no identity of the trust policy)"
    held = role.label if role is not None else "no role"
    raise BranchProtected(
        f"{repo}@{branch} must be signed by a {need.label} ({named}); this store signs as "
        f"{who}, who holds {held} there: {via} is refused; nothing was changed",
        rule.pattern,
    )
