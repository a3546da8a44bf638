"""Promotion of a version to a (protected) branch, and the attestations a commit carries:
the checks it passed and the promotions it made, re-verified offline (docs/governance.md,
"Protected branches and promotion" and "Attestations")."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.api.merging import _commit_of, _target
from mlgitfs.daemon.hookviews import hook_options
from mlgitfs.errors import UsageError
from mlgitfs.model.access import Policy
from mlgitfs.model.attestation import CheckAttestation, PromotionAttestation
from mlgitfs.model.ids import to_hex
from mlgitfs.repo import attest, attestroles
from mlgitfs.repo import promote as promotion
from mlgitfs.repo.attestations import attester_of
from mlgitfs.repo.gate import HookResult


@dataclass(frozen=True, slots=True)
class PromoteResult:
    repo: str
    source: str
    target: str
    status: str  # fast-forward, merged, up to date; with --dry-run: would fast-forward, ...
    old: str  # the target's head before
    commit: str  # its new head ("" when it did not move)
    required: tuple[str, ...]  # the required checks of the target's rule
    dry_run: bool
    checks: tuple[HookResult, ...] = ()  # every hook and check that ran, cached or not


@dataclass(frozen=True, slots=True)
class CheckRecord:
    name: str  # a required check of the promotion
    signer: str  # the key whose attestation satisfied it (hex id)


@dataclass(frozen=True, slots=True)
class AttestationItem:
    """One attestation attached to the commit, and what verifying it found."""

    statement: str  # the statement's id (hex)
    signer: str  # hex key id
    kind: str  # check, hook, promotion ("" when its body does not decode)
    name: str  # the check's name; a promotion's branch
    event: str  # the gate that ran the check (pre-commit, pre-merge, promote); how a
    # promotion moved its branch (promote, merge)
    commit: str
    tree: str
    base: str  # what the check measured changes against; the head a promotion replaced
    validator: str  # a built-in's "TYPE vN", a command's "command sha256:HEX"
    definition: str  # digest of the check's table in the hooks file
    hooks_file: str  # SHA-256 of the hooks file it was read from
    result: str
    time: float  # seconds since the epoch
    checks: tuple[CheckRecord, ...]  # a promotion's required checks
    valid: bool
    error: str  # the error class of what is wrong ("" when valid)
    problem: str  # what is wrong ("" when valid)
    identity: str = ""  # the signer's identity in the trust policy in force ("": none)
    role: str = ""  # the role it holds where the attestation applies ("": none, or no policy)


@dataclass(frozen=True, slots=True)
class Promotion:
    branch: str
    via: str  # promote, merge
    base: str  # the head the commit replaced ("" for none)
    time: float
    signer: str
    checks: tuple[CheckRecord, ...]


@dataclass(frozen=True, slots=True)
class ChecksResult:
    repo: str
    commit: str
    tree: str
    attestations: tuple[AttestationItem, ...]  # every one attached, valid or not
    promotions: tuple[Promotion, ...]  # the valid promotion attestations
    ran: tuple[HookResult, ...] = ()  # with run_for: the checks run (or found attested)

    @property
    def valid(self) -> bool:
        return all(a.valid for a in self.attestations)


def promote(home: Path | None, source: str, to: str, dry_run: bool = False) -> PromoteResult:
    """Move REPO@TO to SOURCE (or to SOURCE merged into it) once the target rule's required
    checks pass on that candidate; refused (and nothing moved) on any failure."""
    store = open_store(home)
    repo, cid = _commit_of(store, source)
    target = to if "@" in to else f"{repo}@{to}"
    to_repo, branch = _target(target)
    if to_repo != repo:
        raise UsageError(f"{source} is a commit of {repo}; it cannot be promoted in {to_repo}")
    out = promotion.promote(store, repo, cid, source, branch, hook_options(store), dry_run)
    return PromoteResult(
        repo, source, branch, out.status, to_hex(out.head),
        to_hex(out.commit) if out.commit is not None else "", out.required, dry_run,
        tuple(out.checks),
    )  # fmt: skip


def checks(
    home: Path | None, revspec: str, verify: bool = False, run_for: str | None = None
) -> ChecksResult:
    """The attestations attached to REVSPEC's commit, each re-verified offline (signer in
    the key ring, signature, about this commit, naming its tree). With `verify`, the first
    one that fails raises its error (the message names every one). With `run_for` (a
    branch), what promoting the commit to it would run is run first and its passes
    attested (HookRefused at a failure, nothing attested)."""
    store = open_store(home)
    repo, cid = _commit_of(store, revspec)
    ran: list[HookResult] = []
    if run_for is not None:
        ran = promotion.check_for(store, repo, cid, run_for, hook_options(store))
    policy = attestroles.policy_in_force(store)
    found = [
        attestroles.judge(policy, v, repo)
        for v in attest.verify_all(attester_of(store), repo, cid, store.commit(cid).tree)
    ]
    if verify:
        problem = attest.first_problem(found)
        if problem is not None:
            raise problem
    items = tuple(_with_role(_item(v), v, policy, repo) for v in found)
    promos = tuple(
        Promotion(a.name, a.event, a.base, a.time, a.signer, a.checks)
        for a in items
        if a.valid and a.kind == "promotion"
    )
    tree = to_hex(store.commit(cid).tree)
    return ChecksResult(repo, to_hex(cid), tree, items, promos, tuple(ran))


def _with_role(
    item: AttestationItem, v: attest.Verified, policy: Policy | None, repo: str
) -> AttestationItem:
    if policy is None or v.body is None:
        return item
    sr = attestroles.signer_role(policy, v, repo, None)
    return replace(item, identity=sr.identity, role=sr.role.label if sr.role else "")


def _item(v: attest.Verified) -> AttestationItem:
    b = v.body
    err, problem = (type(v.problem).__name__, v.problem.message) if v.problem else ("", "")
    if isinstance(b, CheckAttestation):
        return AttestationItem(
            v.statement, v.signer, b.kind, b.check, b.event, to_hex(b.commit), to_hex(b.tree),
            to_hex(b.base) if b.base else "", b.validator, b.definition, b.hooks_file,
            b.result, b.time_ns / 1e9, (), v.ok, err, problem,
        )  # fmt: skip
    if isinstance(b, PromotionAttestation):
        return AttestationItem(
            v.statement, v.signer, "promotion", b.branch, b.via, to_hex(b.commit),
            to_hex(b.tree), to_hex(b.base) if b.base else "", "", "", "", "promoted",
            b.time_ns / 1e9, tuple(CheckRecord(n, s) for n, s in b.checks), v.ok, err, problem,
        )  # fmt: skip
    return AttestationItem(
        v.statement, v.signer, "", "", "", "", "", "", "", "", "", "", 0.0, (), False, err,
        problem,
    )  # fmt: skip
