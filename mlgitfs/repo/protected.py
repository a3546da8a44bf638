"""What a protected branch lets an operation do: which operations may move it (the branch
rule of the hooks file, repo/hooks.py), and whether a commit pushed onto it carries the
promotion attestation that stands for the checks it passed (docs/governance.md).

Both refuse with `BranchProtected` naming the rule, and say how the branch is moved instead.
"""

from __future__ import annotations

from collections.abc import Sequence

from mlgitfs.errors import BranchProtected, SignerLacksRole
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.repo.attest import Verified, promotion_of
from mlgitfs.repo.hooks import HOOKS_PATH, BranchRule

_VIA = {
    "commit": "a direct commit",
    "import": "an import",
    "write": "a write through the Python filesystem (fsspec)",
    "mount commit": "a commit in a writable mount",
    "revert": "a revert",
    "cherry-pick": "a cherry-pick",
    "merge": "a merge",
    "push": "a push",
    "reset": "a reset",
    "delete": "deleting it",
}


def check_allowed(rule: BranchRule, branch: str, via: str) -> None:
    """BranchProtected naming the rule unless `via` may move the protected `branch`."""
    if via == "promote" or (via == "merge" and rule.merges_only) or via == "push":
        return  # a push is judged by the pushed commit's promotion attestation (push.py)
    what = "protected = true" if not rule.merges_only else "merges_only = true"
    how = "`mlgitfs promote REPO@SRC --to " + branch + "`"
    if rule.merges_only:
        how += " or `mlgitfs merge SRC --into REPO@" + branch + "`"
    raise BranchProtected(
        f"branch {branch!r} is protected (branch rule {rule.pattern!r} in {HOOKS_PATH}: "
        f"{what}): {_VIA.get(via, via)} is refused; move it with {how}; nothing was changed",
        rule.pattern,
    )


def check_pushable(
    trusted: Sequence[Verified], repo: str, branch: str, cid: ObjectId, rule: BranchRule
) -> None:
    """BranchProtected unless `cid` carries a valid promotion attestation for `branch`
    among `trusted` (its attestations, each judged for `branch`: Gate.trusted). Valid means
    by a key in the key ring (made here, or fetched with the commit), and by a maintainer of
    the branch where a trust policy is in force."""
    if promotion_of(trusted, branch) is not None:
        return
    lacking = [v.problem for v in trusted if isinstance(v.problem, SignerLacksRole)]
    if lacking:
        raise SignerLacksRole(
            f"{short_hex(cid)} is not pushed to protected {repo}@{branch}: "
            f"{lacking[0].message}; nothing was sent"
        )
    raise BranchProtected(
        f"branch {branch!r} is protected (branch rule {rule.pattern!r} in {HOOKS_PATH}): "
        f"{short_hex(cid)} has no valid promotion attestation for it, so it is not pushed; "
        f"run `mlgitfs promote {repo}@SRC --to {branch}`; nothing was sent",
        rule.pattern,
    )
