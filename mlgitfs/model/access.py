"""The trust policy's data: identities holding roles for repo globs and branch patterns.

An *identity* is a key id (the name a signature is checked against); a *grant* gives it one
*role* for the repos matching a glob and the branches matching a pattern. Roles are ordered
reader < writer < maintainer < admin, and each includes the ones below it:

| role | may |
|---|---|
| reader | read the remote (refs of the granted repos, every pack: packs are shared by repos) |
| writer | push packs and move the refs of the granted branches that are not protected |
| maintainer | move protected branches too (and publish retention rules) |
| admin | change the policy itself |

Which branches are protected is not part of the policy: the repo's branch rules
(`.mlgitfs/hooks.toml`, `[[branch]] protected` or `merges_only`) are the one source of
truth, read by whoever evaluates or exports the policy (repo/access.py).

Identities that sign hold a public key in the policy (`keys`): a signature proves an
identity only through the key the policy names for it, so the policy on a remote is
self-contained. An identity without a key is one the object store knows (S3 credentials)
and no signature can prove.

A policy is a numbered version: `seq` counts its versions and `prev` is the digest of the
version it replaced (b"" for the first), so a replayed older version is recognisable.
Its canonical encoding (codec) is what a signature covers and what `digest` hashes. On a
remote a version travels as a `SignedPolicy`: its encoding, the signer's key id and the
signature of ``["mlgitfs-access-policy", 1, encoding, signer]`` (repo/trust.py checks who
may sign which version).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from mlgitfs.errors import CorruptObject, InvalidName, UsageError
from mlgitfs.model import codec
from mlgitfs.model.ids import hash_bytes
from mlgitfs.model.signing import KEY_ID_LEN, SIGNATURE_LEN, KeyId, PublicKey, SigningKey

TAG = "access-policy"
SIGNED_TAG = "access-signed"
MESSAGE_TAG = "mlgitfs-access-policy"
VERSION = 1
MAX_GRANTS = 10_000

# A key id, a user name or an email address: what a signature or an S3 identity is named by.
_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:+=-]{0,127}")
# Globs over repo and branch names: the name characters plus * and ?.
_GLOB = re.compile(r"[A-Za-z0-9._/*?+=@-]{1,255}")


class Role(enum.IntEnum):
    READER = 1
    WRITER = 2
    MAINTAINER = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[text.upper()]
        except KeyError:
            names = ", ".join(r.label for r in cls)
            raise UsageError(f"unknown role {text!r} (roles: {names})") from None


def check_identity(name: str) -> str:
    if not _IDENTITY.fullmatch(name):
        raise InvalidName(
            f"identity {name!r} is not allowed: a key id or name of letters, digits and "
            "._@:+=- (up to 128 characters, starting with a letter or digit)"
        )
    return name


def check_glob(glob: str, what: str) -> str:
    if not _GLOB.fullmatch(glob) or "//" in glob or glob.startswith("/") or glob.endswith("/"):
        raise InvalidName(
            f"{what} pattern {glob!r} is not allowed: name characters, / between segments, * and ?"
        )
    return glob


@dataclass(frozen=True, slots=True, order=True)
class Grant:
    identity: str
    role: Role
    repo: str = "*"  # a glob over repo names
    branch: str = "**"  # a glob over branch names (** crosses /)

    def describe(self) -> str:
        return f"{self.identity} {self.role.label} repo {self.repo} branch {self.branch}"


@dataclass(frozen=True, slots=True)
class Policy:
    grants: tuple[Grant, ...] = ()  # sorted, no duplicates
    seq: int = 0  # 0: no version yet; each change adds one
    prev: bytes = b""  # digest of the version this one replaced (b"" for the first)
    keys: tuple[tuple[str, bytes], ...] = ()  # identity -> raw ed25519 public key, sorted

    def encode(self) -> bytes:
        rows = [[g.identity, g.role.label, g.repo, g.branch] for g in self.grants]
        keys = [[name, raw] for name, raw in self.keys]
        return codec.pack([TAG, VERSION, self.seq, self.prev, rows, keys])

    def key_of(self, identity: str) -> PublicKey | None:
        raw = dict(self.keys).get(identity)
        return PublicKey(raw) if raw is not None else None

    def identity_of(self, kid: bytes) -> str | None:
        """The identity whose key has id `kid` (None: no identity of this policy)."""
        for name, raw in self.keys:
            if PublicKey(raw).key_id == kid:
                return name
        return None

    def with_key(self, identity: str, key: PublicKey) -> tuple[tuple[str, bytes], ...]:
        """`keys` with `identity` bound to `key` (another identity holding it is refused)."""
        other = self.identity_of(key.key_id)
        if other is not None and other != identity:
            raise UsageError(f"that key is already the key of identity {other!r}")
        return tuple(sorted({**dict(self.keys), identity: key.raw}.items()))

    @property
    def digest(self) -> bytes:
        return hash_bytes(self.encode())

    @property
    def identities(self) -> tuple[str, ...]:
        return tuple(sorted({g.identity for g in self.grants}))

    def of(self, identity: str) -> tuple[Grant, ...]:
        return tuple(g for g in self.grants if g.identity == identity)

    def successor(
        self, grants: tuple[Grant, ...], keys: tuple[tuple[str, bytes], ...] | None = None
    ) -> Policy:
        """The next version, holding `grants` (sorted, duplicates dropped) and `keys` (the
        same keys when None; keys of identities no grant names are dropped)."""
        names = {g.identity for g in grants}
        kept = tuple((n, k) for n, k in (self.keys if keys is None else keys) if n in names)
        prev = self.digest if self.seq else b""
        return Policy(tuple(sorted(set(grants))), self.seq + 1, prev, kept)

    @classmethod
    def decode(cls, data: bytes, what: str = "access policy") -> Policy:
        v = codec.unpack_canonical(data, what)
        try:
            tag, version, seq, prev, rows, key_rows = v
            if tag != TAG or version != VERSION:
                raise CorruptObject(what, f"not an access policy of version {VERSION}")
            if not isinstance(seq, int) or seq < 0 or not isinstance(prev, bytes):
                raise CorruptObject(what, "bad sequence number or previous digest")
            if not isinstance(rows, list) or len(rows) > MAX_GRANTS:
                raise CorruptObject(what, "bad grant list")
            grants = []
            for row in rows:
                ident, role, repo, branch = row
                grants.append(
                    Grant(
                        check_identity(ident),
                        Role.parse(role),
                        check_glob(repo, "repo"),
                        check_glob(branch, "branch"),
                    )
                )
            keys = []
            for name, raw in key_rows:
                if not isinstance(raw, bytes):
                    raise TypeError("a key is not bytes")
                keys.append((check_identity(name), PublicKey(raw).raw))
        except (ValueError, TypeError, UsageError) as exc:
            raise CorruptObject(what, f"malformed: {exc}") from exc
        if grants != sorted(set(grants)):
            raise CorruptObject(what, "grants not sorted or repeated")
        if keys != sorted(dict(keys).items()):
            raise CorruptObject(what, "keys not sorted or repeated")
        return cls(tuple(grants), seq, prev, tuple(keys))


def policy_message(encoded: bytes, signer: bytes) -> bytes:
    """The bytes a policy version's signature is made over."""
    return codec.pack([MESSAGE_TAG, VERSION, encoded, bytes(signer)])


@dataclass(frozen=True, slots=True)
class SignedPolicy:
    """A policy version as published: its encoding, who signed it, the signature."""

    encoded: bytes
    signer: KeyId
    signature: bytes

    @property
    def policy(self) -> Policy:
        return Policy.decode(self.encoded, "the access policy")

    def signed_by(self, key: PublicKey) -> bool:
        return key.key_id == self.signer and key.verify(
            self.signature, policy_message(self.encoded, self.signer)
        )

    def encode(self) -> bytes:
        return codec.pack([SIGNED_TAG, VERSION, self.encoded, bytes(self.signer), self.signature])

    @classmethod
    def sign(cls, key: SigningKey, policy: Policy) -> SignedPolicy:
        encoded = policy.encode()
        return cls(encoded, key.key_id, key.sign(policy_message(encoded, key.key_id)))

    @classmethod
    def decode(cls, data: bytes, what: str = "signed access policy") -> SignedPolicy:
        v = codec.unpack_canonical(data, what)
        if not isinstance(v, list) or len(v) != 5 or v[0] != SIGNED_TAG or v[1] != VERSION:
            raise CorruptObject(what, "not a signed access policy of version 1")
        _, _, encoded, signer, signature = v
        if not (isinstance(signer, bytes) and len(signer) == KEY_ID_LEN):
            raise CorruptObject(what, "its signer is not a 32-byte key id")
        if not (isinstance(signature, bytes) and len(signature) == SIGNATURE_LEN):
            raise CorruptObject(what, "its signature is not 64 bytes")
        if not isinstance(encoded, bytes):
            raise CorruptObject(what, "its policy is not bytes")
        out = cls(encoded, KeyId(signer), signature)
        out.policy  # noqa: B018 - decodes (and so checks) the policy it carries
        return out
