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

A policy is a numbered version: `seq` counts its versions and `prev` is the digest of the
version it replaced (b"" for the first), so a replayed older version is recognisable.
Its canonical encoding (codec) is what a signature covers and what `digest` hashes.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from mlgitfs.errors import CorruptObject, InvalidName, UsageError
from mlgitfs.model import codec
from mlgitfs.model.ids import hash_bytes

TAG = "access-policy"
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

    def encode(self) -> bytes:
        rows = [[g.identity, g.role.label, g.repo, g.branch] for g in self.grants]
        return codec.pack([TAG, VERSION, self.seq, self.prev, rows])

    @property
    def digest(self) -> bytes:
        return hash_bytes(self.encode())

    @property
    def identities(self) -> tuple[str, ...]:
        return tuple(sorted({g.identity for g in self.grants}))

    def of(self, identity: str) -> tuple[Grant, ...]:
        return tuple(g for g in self.grants if g.identity == identity)

    def successor(self, grants: tuple[Grant, ...]) -> Policy:
        """The next version, holding `grants` (sorted, duplicates dropped)."""
        return Policy(tuple(sorted(set(grants))), self.seq + 1, self.digest if self.seq else b"")

    @classmethod
    def decode(cls, data: bytes, what: str = "access policy") -> Policy:
        v = codec.unpack_canonical(data, what)
        try:
            tag, version, seq, prev, rows = v
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
        except (ValueError, TypeError, UsageError) as exc:
            raise CorruptObject(what, f"malformed: {exc}") from exc
        if grants != sorted(set(grants)):
            raise CorruptObject(what, "grants not sorted or repeated")
        return cls(tuple(grants), seq, prev)
