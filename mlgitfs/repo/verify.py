"""Checking signed statements against a set of trusted keys: the verifier `mlgitfs verify`,
and the function a trust policy calls (`check_statement`, `verify_commit`, `check_ref`).

A statement holds for the commit it is attached to when, in this order:
1. its subject is that commit (else `VerificationFailed`: moved onto another commit);
2. its signer is a trusted key (else `UnknownKey`);
3. the signature is that key's signature of (kind, subject, body, signer) (else
   `SignatureInvalid`);
4. its body describes the commit: a ``commit`` statement names the commit's tree and
   author; a ``ref`` statement moved a ref to that commit (else `VerificationFailed`); an
   ``attestation`` is about that commit and its tree (repo/attest.py: else
   `AttestationMoved`, `AttestationTreeMismatch`, or `CorruptObject` for no attestation).
A commit is *signed* when one ``commit`` statement holds for it (else `Unsigned`). Kinds
this module does not know are judged by 1-3.
The commit itself is loaded through the store, which checks it against its id first: a
flipped byte in it is a `CorruptObject` before any signature is looked at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from mlgitfs.errors import (
    CorruptObject,
    MlgitError,
    SignatureInvalid,
    UnknownKey,
    Unsigned,
    VerificationFailed,
)
from mlgitfs.meta import statements
from mlgitfs.model import statement as stm
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.objects import Commit
from mlgitfs.model.signing import KeyId, PublicKey, short_key_id
from mlgitfs.model.statement import Statement
from mlgitfs.repo.attest import body_problem
from mlgitfs.repo.keyring import Keyring
from mlgitfs.store.facade import Store

Trusted = Mapping[KeyId, PublicKey]


@dataclass(frozen=True, slots=True)
class StatementCheck:
    """One statement of a commit and what the verifier found (`error` None: it holds)."""

    statement: Statement
    error: MlgitError | None


@dataclass(frozen=True, slots=True)
class CommitVerdict:
    commit: ObjectId
    checks: tuple[StatementCheck, ...]

    @property
    def signed(self) -> bool:
        return any(c.error is None and c.statement.kind == stm.COMMIT for c in self.checks)

    def first_error(self) -> MlgitError | None:
        """The error `verify` exits with: a failed statement's, else Unsigned when no commit
        statement holds."""
        for c in self.checks:
            if c.error is not None:
                return c.error
        if not self.signed:
            return Unsigned(f"commit {short_hex(self.commit)} carries no author's signature")
        return None


def trusted_keys(ring: Keyring) -> dict[KeyId, PublicKey]:
    """Every public key the key ring knows (the trust `mlgitfs verify` uses)."""
    return {k.key_id: k.public for k in ring.known()}


def check_signature(st: Statement, trusted: Trusted, what: str) -> None:
    """Steps 2-3: the signer is trusted and the signature is its signature."""
    key = trusted.get(st.signer)
    if key is None:
        raise UnknownKey(
            f"{what} is signed by key {short_key_id(st.signer)}, which is not trusted here "
            "(mlgitfs key import)"
        )
    if not st.signed_by(key):
        raise SignatureInvalid(
            f"{what}: the signature by key {short_key_id(st.signer)} does not verify; the "
            "statement or the commit it names was altered"
        )


def check_statement(st: Statement, cid: ObjectId, commit: Commit, trusted: Trusted) -> None:
    """Whether `st`, attached to commit `cid`, holds for it (steps 1-4); raises the named
    error of the first step that fails."""
    what = f"{st.kind} statement {short_hex(st.id)} of commit {short_hex(cid)}"
    if st.subject != cid:
        raise VerificationFailed(
            f"{what} is about commit {short_hex(st.subject)}: it was moved onto another commit"
        )
    check_signature(st, trusted, what)
    if st.kind == stm.COMMIT:
        problem = stm.commit_body_problem(st, commit)
        if problem:
            raise VerificationFailed(f"{what}: {problem}")
    elif st.kind == stm.REF:
        move = stm.decode_ref_move(st)
        if move.new != cid:
            raise VerificationFailed(f"{what} moved {move.ref} to another commit")
    elif st.kind == stm.ATTESTATION:
        _, wrong = body_problem(st.body, cid, commit.tree, what)
        if wrong is not None:
            raise wrong


def verify_commit(store: Store, cid: ObjectId, trusted: Trusted) -> CommitVerdict:
    """Every statement attached to `cid`, each checked (nothing raised for a statement: the
    verdict holds each one's error). CorruptObject if the commit itself is damaged."""
    commit = store.commit(cid)
    with store.env.read() as txn:
        sts = statements.of_subject(txn, cid)
    checks = []
    for st in sts:
        try:
            check_statement(st, cid, commit, trusted)
            checks.append(StatementCheck(st, None))
        except (VerificationFailed, CorruptObject) as exc:
            checks.append(StatementCheck(st, exc))
    return CommitVerdict(cid, tuple(checks))


def verify_commits(store: Store, cids: Iterable[ObjectId], trusted: Trusted) -> list[CommitVerdict]:
    return [verify_commit(store, c, trusted) for c in cids]


def check_ref(
    st: Statement | None,
    remote_repo: str,
    ref: str,
    commit: ObjectId,
    trusted: Trusted | None,
    require: bool = False,
) -> None:
    """A ref statement read beside a remote ref that names `commit`: it must say that this
    ref of this repo was moved to this commit, and (when `trusted` is given) be signed by a
    trusted key. None (an unsigned move) is refused only with `require`."""
    where = f"{remote_repo}@{ref.split('/', 1)[-1]}"
    if st is None:
        if require:
            raise Unsigned(f"the remote's {where} was moved without a ref statement")
        return
    what = f"the ref statement of the remote's {where}"
    if st.kind != stm.REF:
        raise VerificationFailed(f"{what} is a {st.kind} statement, not a ref statement")
    move = stm.decode_ref_move(st)
    if st.subject != commit or move.new != commit:
        raise VerificationFailed(
            f"{what} moved it to {short_hex(move.new)}, but the ref names {short_hex(commit)}"
        )
    if move.repo != remote_repo or move.ref != ref:
        raise VerificationFailed(f"{what} is about {move.repo}@{move.ref}: replayed from there")
    if trusted is not None:
        check_signature(st, trusted, what)
