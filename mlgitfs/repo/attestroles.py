"""Attestations judged by role: where a trust policy is in force, an attestation counts only
if its signer holds the role its claim needs (docs/governance.md, "Attestations and roles").

The policy in force is the store's (meta/access.py: the version adopted from the remote, or
local edits); a store whose policy grants nothing, or whose setting `trust` is ``off``, has
none, and the key ring alone decides (repo/attest.py: a valid signature by a known key
counts).

Roles needed, on the attestation's repo:
- a check (``check`` or ``hook``): writer on the branch it is counted for. A check states a
  fact about content anyone with write access could have produced and checked themselves;
  asking more would make every promotion re-run checks a writer already ran;
- a promotion: maintainer on the branch it names. It is what lets a commit be pushed onto
  a protected branch, which only a maintainer may move.

The signer's identity is the policy's identity whose key made the signature (a key the
policy does not name holds no role). A signature that verifies but whose signer lacks the
role is `SignerLacksRole`; the attestation is then invalid for that use.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mlgitfs.errors import SignerLacksRole
from mlgitfs.meta import access as access_db
from mlgitfs.model.access import Policy, Role
from mlgitfs.model.attestation import PromotionAttestation
from mlgitfs.model.ids import short_hex
from mlgitfs.repo.access import role_of
from mlgitfs.repo.attest import Verified
from mlgitfs.repo.trustcheck import trust_mode
from mlgitfs.store.facade import Store


def policy_in_force(store: Store) -> Policy | None:
    """The store's trust policy, or None when it grants nothing or `trust` is off (the key
    ring decides)."""
    with store.env.read() as txn:
        policy = access_db.get(txn)
        off = trust_mode(txn) == "off"
    return policy if policy.grants and not off else None


@dataclass(frozen=True, slots=True)
class SignerRole:
    identity: str  # "" when the policy names no identity with the signer's key
    role: Role | None  # the role held where the attestation applies (None: none)
    need: Role


def signer_role(policy: Policy, v: Verified, repo: str, branch: str | None) -> SignerRole:
    """Who signed `v` and what they hold on `repo` (on the promotion's branch for a
    promotion, else on `branch`; any branch when None)."""
    ident = policy.identity_of(bytes.fromhex(v.signer)) or ""
    where: str | None
    if isinstance(v.body, PromotionAttestation):
        need, where = Role.MAINTAINER, v.body.branch
    else:
        need, where = Role.WRITER, branch
    role: Role | None = role_of(policy, ident, repo, where) if ident else None
    return SignerRole(ident, role, need)


def judge(policy: Policy | None, v: Verified, repo: str, branch: str | None = None) -> Verified:
    """`v`, made invalid (`SignerLacksRole`) when a policy is in force and its valid
    signature's signer lacks the role its claim needs on `repo` (see the module note)."""
    if policy is None or not v.ok:
        return v
    sr = signer_role(policy, v, repo, branch)
    if sr.role is not None and sr.role >= sr.need:
        return v
    b = v.body
    what = f"attestation {v.statement[:12]}"
    if b is not None:
        what += f" on {short_hex(b.commit)}"
    held = sr.role.label if sr.role is not None else "no role"
    where = b.branch if isinstance(b, PromotionAttestation) else branch
    on = f"{repo}@{where}" if where else repo
    if sr.identity:
        who = f"{sr.identity} who holds {held} on {on}"
    else:
        who = f"key {v.signer[:16]}, the key of no identity of the policy (no role on {on})"
    err = SignerLacksRole(
        f"{what}: signed by {who}; it counts only when signed by a "
        f"{sr.need.label} (trust policy version {policy.seq})"
    )
    return replace(v, problem=err)
