"""Keys and signed history: `mlgitfs key ...` and `mlgitfs verify`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.errors import MlgitError, NotFound, UsageError
from mlgitfs.meta import db
from mlgitfs.model.access import Policy
from mlgitfs.model.actor import default_actor
from mlgitfs.model.ids import to_hex
from mlgitfs.model.signing import short_key_id
from mlgitfs.repo import keyring, refs, refsign
from mlgitfs.repo import verify as verifier
from mlgitfs.repo.access import role_of
from mlgitfs.repo.attestroles import policy_in_force
from mlgitfs.repo.history import walk_commits
from mlgitfs.repo.keyring import Keyring, KnownKey


@dataclass(frozen=True, slots=True)
class KeyResult:
    name: str
    key_id: str  # hex of the BLAKE3 of the public key
    short_id: str
    own: bool  # the store holds its private key
    signing: bool  # the key that signs this store's commits and ref moves
    public: str  # the one-line public key (`mlgitfs key import` takes it)


@dataclass(frozen=True, slots=True)
class StatementResult:
    id: str
    kind: str
    signer: str  # short key id
    signer_name: str | None  # its name in the key ring
    status: str  # "valid", or the error class: SignatureInvalid, UnknownKey, ...
    message: str
    identity: str = ""  # the signer's identity in the trust policy in force ("": none)
    role: str = ""  # the highest role it holds on the repo ("": none, or no policy)


@dataclass(frozen=True, slots=True)
class CommitVerifyResult:
    commit: str
    signed: bool
    statements: tuple[StatementResult, ...]
    error: str | None  # the error class verify exits with for this commit
    message: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    revspec: str
    commits: tuple[CommitVerifyResult, ...]
    error: MlgitError | None  # the first failure (the CLI exits with it), None: all hold


def _signing_name(home: Path | None) -> str | None:
    store = open_store(home)
    with store.env.read() as txn:
        try:
            key = keyring.signer(Keyring(store.home), txn)
        except MlgitError:
            return None
    if key is None:
        return None
    names = [k.name for k in Keyring(store.home).known() if k.key_id == key.key_id]
    return names[0] if names else None


def _result(k: KnownKey, signing: str | None) -> KeyResult:
    return KeyResult(
        k.name, to_hex(k.key_id), k.short_id, k.own, k.name == signing, k.public.encode(k.name)
    )


def key_generate(home: Path | None, name: str | None = None) -> KeyResult:
    """A new ed25519 key pair in the store's key ring (NAME default: the user's name); makes
    the store if there is none yet (keys can be set up before a clone)."""
    store = open_store(home, create=True)
    made = Keyring(store.home).generate(name or default_actor().split("@")[0])
    return _result(made, _signing_name(home))


def key_list(home: Path | None) -> list[KeyResult]:
    store = open_store(home)
    signing = _signing_name(home)
    return [_result(k, signing) for k in Keyring(store.home).known()]


def key_export(home: Path | None, name: str | None = None) -> KeyResult:
    """The public key NAME (default: the key that signs)."""
    store = open_store(home)
    signing = _signing_name(home)
    name = name or signing
    if name is None:
        raise NotFound("no key signs in this store: name the key to export (mlgitfs key list)")
    return _result(Keyring(store.home).get(name), signing)


def key_import(home: Path | None, text: str, name: str, where: str) -> KeyResult:
    """Know the public key in `text` (one line, as `key export` prints it) as NAME; makes the
    store if there is none yet, so a clone can check signatures as it fetches."""
    store = open_store(home, create=True)
    return _result(Keyring(store.home).import_public(text, name, where), _signing_name(home))


def key_remove(home: Path | None, name: str) -> KeyResult:
    store = open_store(home)
    signing = _signing_name(home)
    return _result(Keyring(store.home).remove(name), signing)


def _role(policy: Policy | None, signer: bytes, repo: str) -> tuple[str, str]:
    """The signer's identity in `policy` and the highest role it holds on `repo`."""
    ident = policy.identity_of(signer) if policy is not None else None
    if policy is None or ident is None:
        return "", ""
    role = role_of(policy, ident, repo)
    return ident, role.label if role is not None else ""


def verify(home: Path | None, revspec: str, all_history: bool = False) -> VerifyResult:
    """Check every statement attached to REVSPEC's commit (with --all-history, to every
    commit it reaches) against the key ring: see repo/verify.py for what is checked."""
    store = open_store(home)
    ring = Keyring(store.home)
    trusted = verifier.trusted_keys(ring)
    names = {k.key_id: k.name for k in ring.known()}
    resolved = refs.resolve(store, revspec)
    cid = resolved.commit_id
    policy = policy_in_force(store)
    cids = [oid for oid, _ in walk_commits(store, [cid])] if all_history else [cid]
    out = []
    first: MlgitError | None = None
    for c in cids:
        verdict = verifier.verify_commit(store, c, trusted)
        err = verdict.first_error()
        first = first or err
        sts = tuple(
            StatementResult(
                to_hex(ch.statement.id), ch.statement.kind, short_key_id(ch.statement.signer),
                names.get(ch.statement.signer),
                "valid" if ch.error is None else type(ch.error).__name__,
                "" if ch.error is None else ch.error.message,
                *_role(policy, ch.statement.signer, resolved.repo),
            )
            for ch in verdict.checks
        )  # fmt: skip
        out.append(
            CommitVerifyResult(
                to_hex(c), verdict.signed, sts, None if err is None else type(err).__name__,
                "" if err is None else err.message,
            )
        )  # fmt: skip
    return VerifyResult(revspec, tuple(out), first)


SETTINGS = (keyring.SIGNING_KEY, keyring.SIGN_COMMITS, refsign.VERIFY_REFS)


def set_setting(home: Path | None, key: str, value: str) -> None:
    """Set `signing-key` (a key of the ring with its private key; "" or none: the only
    one), `sign-commits` (auto, true, false) or `verify-refs` (warn, refuse)."""
    store = open_store(home)
    if key == keyring.SIGN_COMMITS:
        db.check_choice(key, value, keyring.SIGN_MODES)
    if key == keyring.SIGNING_KEY:
        value = "" if value.lower() == "none" else value
        if value and not Keyring(store.home).get(value).own:
            raise UsageError(f"the key ring holds no private key for {value!r}: it cannot sign")
    if key == refsign.VERIFY_REFS:
        db.check_choice(key, value, refsign.VERIFY_MODES)
    with store.env.write() as txn:
        db.set_config(txn, key, value)


def settings(home: Path | None) -> list[tuple[str, str]]:
    store = open_store(home)
    with store.env.read() as txn:
        return [
            (keyring.SIGNING_KEY, keyring.configured_key(txn) or ""),
            (keyring.SIGN_COMMITS, keyring.sign_mode(txn)),
            (refsign.VERIFY_REFS, refsign.verify_mode(txn)),
        ]
