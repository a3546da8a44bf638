"""Check results as attestations: making them from a gate's passes, verifying them offline,
and the rule by which a required check is satisfied by one already present.

An attestation travels as a signed statement of kind "attestation" attached to its commit
(model/statement.py: the signing seam stores, signs, pushes and fetches statements;
`Attester` is what this module needs of it). Verifying one needs nothing but the local
store and key ring, and names the first thing wrong:

1. it is attached to the commit its signed subject names (else `AttestationMoved`), as
   `mlgitfs verify` checks first too;
2. its signer's key is in the key ring (else `UnknownKey`: nothing to check it with);
3. its signature is that key's signature of its bytes (else `SignatureInvalid`: altered);
4. its body decodes (else `CorruptObject`: a signer signed something that is no
   attestation);
5. the body is about that commit too (else `AttestationMoved`);
6. the body's tree is that commit's tree (else `AttestationTreeMismatch`).

The reuse rule (`satisfies`): a required check is satisfied without running it by a valid
attestation on the candidate commit itself whose check name, definition digest and
validator (for a command: the hash of its argv) are the ones the target's hooks file
defines now, and whose hooks file hash is that file's. The local results cache is keyed the
same way (definition and tree), so a teammate's signed verdict is trusted no further than
our own cached one; binding it to the commit, not only the tree, keeps a verdict from
being carried to another history (the base it measured changes against is that
commit's).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mlgitfs.errors import (
    AttestationMoved,
    AttestationTreeMismatch,
    CorruptObject,
    MlgitError,
    SignatureInvalid,
    UnknownKey,
)
from mlgitfs.model.attestation import (
    Attestation,
    CheckAttestation,
    PromotionAttestation,
    decode,
    text_digest,
)
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.repo.hooks import VALIDATOR_VERSION, Hook


@dataclass(frozen=True, slots=True)
class Signed:
    """A statement of kind "attestation" as the signing seam hands it over: its bytes, the
    commit it is attached to, who signed it, and what checking its signature found."""

    statement: str  # the statement's id (hex)
    attached_to: ObjectId  # the commit it was found under
    subject: ObjectId  # the commit its signature says it is about
    signer: str  # hex key id
    body: bytes
    signer_known: bool
    signature_ok: bool  # False too when the signer is unknown (nothing to check it with)


@dataclass(frozen=True, slots=True)
class Verified:
    statement: str
    signer: str
    body: Attestation | None  # None: it did not decode
    problem: MlgitError | None  # None: valid (a VerificationFailed or a CorruptObject)

    @property
    def ok(self) -> bool:
        return self.problem is None


class Attester(Protocol):
    """Signs and attaches attestations to commits, and hands them back for verification."""

    @property
    def signer(self) -> str | None:
        """The hex key id attestations made here are signed with (None: no key)."""
        ...

    def attach(self, repo: str, commit: ObjectId, bodies: Sequence[Attestation]) -> None: ...

    def signed(self, repo: str, commit: ObjectId) -> list[Signed]: ...


def verify(s: Signed, commit: ObjectId, tree: ObjectId) -> Verified:
    """What is wrong with `s` as an attestation of `commit` (whose tree is `tree`), if any;
    the checks in the order of the module docstring, the first failing one named."""
    who = f"attestation {s.statement[:12]} by key {s.signer[:16]} on {short_hex(commit)}"
    if s.subject != commit or s.attached_to != commit:
        about = s.subject if s.subject != commit else s.attached_to
        return Verified(s.statement, s.signer, None, _moved(who, about))
    if not s.signer_known:
        unknown = UnknownKey(
            f"{who}: signed by a key not in this store's key ring (`mlgitfs key import` it if "
            "you trust it)"
        )
        return Verified(s.statement, s.signer, None, unknown)
    if not s.signature_ok:
        bad = SignatureInvalid(f"{who}: its signature does not match its bytes (altered)")
        return Verified(s.statement, s.signer, None, bad)
    body, problem = body_problem(s.body, commit, tree, who)
    return Verified(s.statement, s.signer, body, problem)


def body_problem(
    data: bytes, commit: ObjectId, tree: ObjectId, who: str
) -> tuple[Attestation | None, MlgitError | None]:
    """Steps 4-6 on an attestation's body (also `mlgitfs verify`'s, repo/verify.py): the
    body, and what is wrong with it as an attestation of `commit` (tree `tree`), if any."""
    try:
        body = decode(data, who)
    except CorruptObject as exc:
        return None, exc
    if body.commit != commit:
        return body, _moved(who, body.commit)
    if body.tree != tree:
        return body, AttestationTreeMismatch(
            f"{who}: it names tree {short_hex(body.tree)}, the commit's tree is {short_hex(tree)}"
        )
    return body, None


def _moved(who: str, about: ObjectId) -> AttestationMoved:
    return AttestationMoved(f"{who}: it is about commit {short_hex(about)}, not this one (moved)")


def verify_all(
    attester: Attester | None, repo: str, commit: ObjectId, tree: ObjectId
) -> list[Verified]:
    """Every attestation attached to `commit` (whose tree is `tree`), verified."""
    if attester is None:
        return []
    return [verify(s, commit, tree) for s in attester.signed(repo, commit)]


def validator_of(h: Hook) -> str:
    """A built-in's type and the validators' version; a command's argv hash."""
    if h.command:
        return "command sha256:" + text_digest(json.dumps(list(h.command)).encode())
    return f"{h.check} v{VALIDATOR_VERSION}"


def check_body(
    h: Hook,
    commit: ObjectId,
    tree: ObjectId,
    base: ObjectId | None,
    event: str,
    hooks_file: str,
    time_ns: int,
) -> CheckAttestation:
    return CheckAttestation(
        h.name, h.kind, commit, tree, base, event, validator_of(h), h.digest, hooks_file,
        "passed", time_ns,
    )  # fmt: skip


def satisfies(v: Verified, h: Hook, hooks_file: str, commit: ObjectId, tree: ObjectId) -> bool:
    """Whether `v` lets required check `h` (of the hooks file hashed `hooks_file`) count as
    passed on `commit` without running it (the module docstring's rule)."""
    b = v.body
    return (
        v.ok
        and isinstance(b, CheckAttestation)
        and b.commit == commit
        and b.tree == tree
        and b.check == h.name
        and b.kind == h.kind
        and b.result == "passed"
        and b.definition == h.digest
        and b.validator == validator_of(h)
        and b.hooks_file == hooks_file
    )


def promotion_of(vs: Sequence[Verified], branch: str) -> Verified | None:
    """A valid promotion attestation of the commit to `branch`, if any."""
    for v in vs:
        if v.ok and isinstance(v.body, PromotionAttestation) and v.body.branch == branch:
            return v
    return None


def first_problem(vs: Sequence[Verified]) -> MlgitError | None:
    """The first invalid attestation's error, its message listing every invalid one."""
    bad = [v.problem for v in vs if v.problem is not None]
    if not bad:
        return None
    err = bad[0]
    if len(bad) == 1:
        return err
    more = f"; and {len(bad) - 1} more: " + "; ".join(b.message for b in bad[1:])
    if isinstance(err, CorruptObject):
        return CorruptObject(err.object_id, err.reason + more)
    return type(err)(err.message + more)
