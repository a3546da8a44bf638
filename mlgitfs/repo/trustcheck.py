"""Fetched history against the remote's trust policy: what `fetch`, `pull` and `clone` check
before any ref moves (docs/governance.md, "Trusted history").

For each ref of the remote that moved since the last fetch (its remote-tracking ref):
- the move must carry a ref statement (repo/refsign.py) signed by the key of an identity of
  the policy whose role covers it: writer for an unprotected branch or a tag, maintainer
  for a protected one. A move is judged by the rules of what it replaces: the branch is
  protected when the branch rule of the old head, of the first parent of any commit the
  move brings, or of the new head says so (a commit that drops the rule is judged by it);
- on a protected branch, every commit the move brings (reachable from the new head, not
  from the old one) must carry a commit statement that holds, signed by the key of an
  identity holding at least writer on the repo;
- on a branch whose rule (read as for protection) has `signed_by = ROLE`, the ref
  statement's signer must hold at least ROLE there (repo/signedby.py checks the same before
  a local move).
A breach is `TrustViolation` with every problem named (up to a few), and nothing moved;
a policy replaced or replayed without an admin's signature is `PolicyRollback` or
`PolicyUnauthorized` (repo/trust.py). The setting `trust` decides: ``refuse`` (the
default), ``warn`` (log each problem, record it against its commit, move the refs), ``off``
(check nothing). A remote without a policy is not checked. The recorded breaches
(meta/trustbreaches.py) are what `mount` judges a version by (repo/mounttrust.py).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

from mlgitfs.errors import (
    PolicyRollback,
    PolicyUnauthorized,
    TrustViolation,
    UsageError,
    VerificationFailed,
)
from mlgitfs.meta import db, trustbreaches
from mlgitfs.meta.env import ReadTxn
from mlgitfs.meta.remotes import RemoteRecord
from mlgitfs.model import statement as stm
from mlgitfs.model.access import Policy, Role, SignedPolicy
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.signing import KeyId, PublicKey, short_key_id
from mlgitfs.model.statement import Statement
from mlgitfs.repo import trust
from mlgitfs.repo.access import may_move, role_of
from mlgitfs.repo.graph import ensure_generations, is_ancestor
from mlgitfs.repo.hooks import load_hooks
from mlgitfs.repo.verify import check_ref, verify_commit
from mlgitfs.store.facade import Store
from mlgitfs.store.remote import RemoteTransport

log = logging.getLogger(__name__)

TRUST = "trust"  # config: refuse (default), warn, off
TRUST_MODES = ("refuse", "warn", "off")  # the first: the default
SHOWN = 5  # problems named in a refusal


def trust_mode(txn: ReadTxn) -> str:
    return db.get_choice(txn, TRUST, TRUST_MODES)


def check_mode(value: str) -> str:
    return db.check_choice(TRUST, value, TRUST_MODES)


def _keys(policy: Policy) -> dict[KeyId, PublicKey]:
    out = {}
    for name, _ in policy.keys:
        key = policy.key_of(name)
        if key is not None:
            out[key.key_id] = key
    return out


class _Rules:
    """Whether the branch rules of a commit protect a branch, read once per tree."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen: dict[tuple[bytes, str], tuple[bool, Role | None]] = {}

    def _rule(self, commit: bytes | None, branch: str) -> tuple[bool, Role | None]:
        """Whether the rules of `commit` protect `branch`, and the role they require its
        moves be signed by."""
        if commit is None:
            return False, None
        tree = self.store.commit(ObjectId(commit)).tree
        key = (bytes(tree), branch)
        if key not in self.seen:
            try:
                rule = load_hooks(self.store, tree).rule(branch)
                self.seen[key] = (
                    (rule.guarded, rule.signed_by) if rule is not None else (False, None)
                )
            except UsageError:
                # a hooks file that does not parse protects nothing less
                self.seen[key] = (True, None)
        return self.seen[key]

    def protects(self, commit: bytes | None, branch: str) -> bool:
        return self._rule(commit, branch)[0]

    def signed_by(
        self, branch: str, new: bytes, old: bytes | None, brought: list[ObjectId]
    ) -> Role | None:
        """The highest role the rules of what a move replaces (as `guarded` reads them)
        require a move of `branch` be signed by (None: none)."""
        firsts = [bytes(p[0]) for p in (self.store.commit(c).parents for c in brought) if p]
        roles = [self._rule(c, branch)[1] for c in (old, new, *firsts)]
        held = [r for r in roles if r is not None]
        return max(held) if held else None

    def guarded(self, branch: str, new: bytes, old: bytes | None, brought: list[ObjectId]) -> bool:
        """A move is judged by the rules of what it replaces: the old head's, and for each
        commit it brings, its first parent's (a commit that drops the rule is judged by the
        rule it drops), and the new head's."""
        if self.protects(new, branch) or self.protects(old, branch):
            return True
        return any(
            self.protects(bytes(p[0]), branch)
            for p in (self.store.commit(c).parents for c in brought)
            if p
        )


def _ref_problem(
    policy: Policy,
    remote_repo: str,
    ref: str,
    commit: bytes,
    st: Statement | None,
    guarded: bool,
    signed_by: Role | None = None,
) -> str | None:
    kind, _, name = ref.partition("/")
    where = f"{remote_repo}@{name}"
    moved = f"{where} was moved to {short_hex(commit)}"
    if st is None:
        return f"{moved} without a signature (no ref statement)"
    ident = policy.identity_of(st.signer)
    if ident is None:
        return f"{moved} by key {short_key_id(st.signer)}, the key of no identity of the policy"
    key = policy.key_of(ident)
    try:
        check_ref(st, remote_repo, ref, ObjectId(commit), {st.signer: key} if key else {})
    except VerificationFailed as exc:
        return exc.message
    if kind == "heads" and signed_by is not None:
        role = role_of(policy, ident, remote_repo, name)
        if role is None or role < signed_by:
            held = role.label if role is not None else "no role"
            return (
                f"{moved} by {ident}, who holds {held} there; its branch rule requires a "
                f"signature by a {signed_by.label} (signed_by)"
            )
    if kind == "heads":
        allowed = may_move(policy, ident, remote_repo, name, guarded)
    else:
        role = role_of(policy, ident, remote_repo)
        allowed = role is not None and role >= Role.WRITER
    if allowed:
        return None
    role = role_of(policy, ident, remote_repo, name if kind == "heads" else None)
    need = "maintainer: it is protected" if guarded else "writer"
    held = role.label if role is not None else "no role"
    return f"{moved} by {ident}, who holds {held} there; moving it needs {need}"


def _new_commits(store: Store, new: bytes, old: bytes | None) -> list[ObjectId]:
    """Commits reachable from `new` and not from `old`, newest first."""
    out: list[ObjectId] = []
    seen: set[bytes] = set()
    todo = [ObjectId(new)]
    while todo:
        cid = todo.pop()
        if bytes(cid) in seen:
            continue
        seen.add(bytes(cid))
        if old is not None and is_ancestor(store, cid, ObjectId(old)):
            continue
        out.append(cid)
        todo.extend(store.commit(cid).parents)
    return out


def _commit_problem(
    store: Store, policy: Policy, keys: Mapping[KeyId, PublicKey], repo: str, cid: ObjectId
) -> str | None:
    verdict = verify_commit(store, cid, keys)
    signers = [
        c.statement.signer
        for c in verdict.checks
        if c.error is None and c.statement.kind == stm.COMMIT
    ]
    for signer in signers:
        ident = policy.identity_of(signer)
        role = role_of(policy, ident, repo) if ident is not None else None
        if role is not None and role >= Role.WRITER:
            return None
    what = f"commit {short_hex(cid)}"
    if signers:
        ident = policy.identity_of(signers[0])
        return f"{what} is signed by {ident}, who may not write {repo}"
    unknown = [c.statement.signer for c in verdict.checks if c.statement.kind == stm.COMMIT]
    if unknown:
        return f"{what} is signed by key {short_key_id(unknown[0])}, the key of no identity"
    return f"{what} carries no author's signature"


@dataclass(frozen=True, slots=True)
class FetchVerdict:
    """What `check_fetch` found: the verified policy to adopt once the refs move (None:
    nothing to adopt), and the breaches `trust = warn` let through, to record before the
    refs move (`record`) so that a mount can judge the versions it serves."""

    policy: SignedPolicy | None = None
    breaches: tuple[trustbreaches.Breach, ...] = ()


def check_fetch(
    store: Store,
    rec: RemoteRecord,
    t: RemoteTransport,
    remote_repo: str,
    found: Mapping[str, tuple[bytes, Statement | None]],
    before: Mapping[str, bytes],
) -> FetchVerdict:
    """Check the moves from `before` (remote-tracking refs) to `found` (the remote's refs,
    their commits fetched and statements attached) against the remote's policy."""
    with store.env.read() as txn:
        mode = trust_mode(txn)
    if mode == "off":
        return FetchVerdict()
    try:
        signed = trust.fetch_policy(store, rec, t)
    except (PolicyRollback, PolicyUnauthorized) as exc:
        if mode == "refuse":
            raise type(exc)(f"{exc.message}; nothing was fetched") from exc
        log.warning("%s (trust = warn: the version trusted before is kept)", exc.message)
        return FetchVerdict()
    if signed is None:
        return FetchVerdict()
    policy = signed.policy
    keys = _keys(policy)
    problems: list[str] = []
    at: list[tuple[bytes, bool, str]] = []  # (commit, history scope, problem)
    rules = _Rules(store)
    for ref, (commit, st) in sorted(found.items()):
        old = before.get(ref)
        if old == commit:
            continue
        branch = ref.removeprefix("heads/")
        brought = _new_commits(store, commit, old) if ref.startswith("heads/") else []
        guarded = ref.startswith("heads/") and rules.guarded(branch, commit, old, brought)
        heads = ref.startswith("heads/")
        need = rules.signed_by(branch, commit, old, brought) if heads else None
        problem = _ref_problem(policy, remote_repo, ref, commit, st, guarded, need)
        if problem:
            problems.append(problem)
            at.append((commit, False, problem))
        if guarded:
            for cid in brought:
                problem = _commit_problem(store, policy, keys, remote_repo, cid)
                if problem:
                    problems.append(f"{problem} (on protected {remote_repo}@{branch})")
                    at.append((bytes(cid), True, problems[-1]))
    if not problems:
        return FetchVerdict(signed)
    if mode == "refuse":
        more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
        raise TrustViolation(
            f"history of {remote_repo} on {rec.name} breaks its access policy (version "
            f"{policy.seq}): {'; '.join(problems[:SHOWN])}{more}; nothing was fetched"
        )
    for p in problems:
        log.warning("%s (trust = warn)", p)
    gens = ensure_generations(store, [ObjectId(c) for c, _, _ in at])
    breaches = []
    for c, history, p in at:
        said = (f"{p} (policy version {policy.seq})",)
        b = trustbreaches.Breach(ObjectId(c), gens[c])
        breaches.append(replace(b, history=said) if history else replace(b, version=said))
    return FetchVerdict(signed, tuple(breaches))


def record(store: Store, repo: str, verdict: FetchVerdict) -> None:
    """Keep the breaches `verdict` let through for local `repo`, before its refs move (a
    crash between leaves a record no ref reaches yet, never a ref moved unrecorded)."""
    if not verdict.breaches:
        return
    with store.env.write() as txn:
        for b in verdict.breaches:
            trustbreaches.add(txn, repo, b)
