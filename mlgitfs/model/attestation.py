"""Attestations: what a signed statement of kind "attestation" says about a commit.

Two bodies, each a canonical msgpack array `[tag, FORMAT, ...fields]` (model/codec.py):

- a check attestation: a named built-in check or command hook passed on a commit and its
  tree, with the validator's version (a built-in's type and VALIDATOR_VERSION; a command's
  hash) and the hashes of the definition and of the hooks file it was read from, so that a
  reader can tell whether the same validator would be run today;
- a promotion attestation: a commit moved a protected branch (by `promote`, or by `merge`
  into a merges_only branch), with the head it replaced and, per required check, the
  signer of the check attestation that satisfied it.

The signature, the signer and the commit the statement is attached to are the statement's
(the signing seam's); the body repeats the commit and tree so that a statement moved onto
another commit, or made about a tree the commit does not hold, is found by reading it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from mlgitfs.errors import CorruptObject
from mlgitfs.model import codec
from mlgitfs.model.ids import ID_LEN, ObjectId

STATEMENT_KIND = "attestation"  # the statements' kind these bodies travel as
FORMAT = 1
MAX_FIELD = 4096  # bytes of a name, event, branch or hash field
MAX_CHECKS = 1000  # required checks listed by one promotion


def text_digest(data: bytes) -> str:
    """The hex SHA-256 the bodies carry for commands and hooks files (a hash anyone can
    recompute with sha256sum, unlike our BLAKE3 object ids, which hash encodings)."""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class CheckAttestation:
    """A named check or hook passed on `commit`, whose tree is `tree`."""

    check: str  # the [[check]] or [[hook]] name in .mlgitfs/hooks.toml
    kind: str  # "check" (built-in) or "hook" (a command)
    commit: ObjectId
    tree: ObjectId
    base: ObjectId | None  # what "changed" was measured against (None: every path was new)
    event: str  # the gate that ran it: pre-commit, pre-merge, promote, checks
    validator: str  # a built-in's "TYPE vN"; a command's "command sha256:HEX"
    definition: str  # hex digest of its table in the hooks file and the validators' version
    hooks_file: str  # hex SHA-256 of the hooks file the definition was read from
    result: str  # "passed" (only passes are attested)
    time_ns: int

    TAG = "check"

    def encode(self) -> bytes:
        return codec.pack(
            [
                self.TAG, FORMAT, self.check, self.kind, bytes(self.commit), bytes(self.tree),
                bytes(self.base) if self.base is not None else None, self.event,
                self.validator, self.definition, self.hooks_file, self.result, self.time_ns,
            ]
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class PromotionAttestation:
    """`commit` (tree `tree`) moved `branch` from `base` by `via` (promote, merge), its
    required checks each satisfied by the check attestation of the key named with it."""

    branch: str
    via: str
    commit: ObjectId
    tree: ObjectId
    base: ObjectId | None
    checks: tuple[tuple[str, str], ...]  # (required check, signer of its attestation), sorted
    time_ns: int

    TAG = "promotion"

    def encode(self) -> bytes:
        return codec.pack(
            [
                self.TAG, FORMAT, self.branch, self.via, bytes(self.commit), bytes(self.tree),
                bytes(self.base) if self.base is not None else None,
                [[n, s] for n, s in self.checks], self.time_ns,
            ]
        )  # fmt: skip


Attestation = CheckAttestation | PromotionAttestation


class _Fields:
    def __init__(self, what: str) -> None:
        self.what = what

    def fail(self, reason: str) -> CorruptObject:
        return CorruptObject(self.what, reason)

    def text(self, v: Any) -> str:
        if not isinstance(v, str) or len(v.encode("utf-8", "surrogatepass")) > MAX_FIELD:
            raise self.fail(f"expected a string of at most {MAX_FIELD} bytes")
        return v

    def oid(self, v: Any) -> ObjectId:
        if not isinstance(v, bytes) or len(v) != ID_LEN:
            raise self.fail("expected a 32-byte id")
        return ObjectId(v)

    def time(self, v: Any) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 63:
            raise self.fail("expected a time in nanoseconds since the epoch")
        return v


def decode(data: bytes, what: str = "attestation") -> Attestation:
    """The body in `data`; CorruptObject naming what is wrong (any encoding but the
    canonical one, an unknown tag or format, a field of the wrong type or size)."""
    raw = codec.unpack_canonical(data, what)
    f = _Fields(what)
    if not isinstance(raw, list) or len(raw) < 2:
        raise f.fail("expected an array with a tag and a format")
    tag, fmt = raw[0], raw[1]
    if fmt != FORMAT:
        raise f.fail(f"unknown attestation format {fmt!r}")
    base = None
    if tag == CheckAttestation.TAG and len(raw) == 13:
        _, _, check, kind, commit, tree, base, event, validator, digest, hooks, result, t = raw
        if kind not in ("check", "hook"):
            raise f.fail(f"unknown check kind {kind!r}")
        return CheckAttestation(
            f.text(check), kind, f.oid(commit), f.oid(tree),
            f.oid(base) if base is not None else None, f.text(event), f.text(validator),
            f.text(digest), f.text(hooks), f.text(result), f.time(t),
        )  # fmt: skip
    if tag == PromotionAttestation.TAG and len(raw) == 9:
        _, _, branch, via, commit, tree, base, checks, t = raw
        if not isinstance(checks, list) or len(checks) > MAX_CHECKS:
            raise f.fail("expected a list of required checks")
        pairs = []
        for item in checks:
            if not isinstance(item, list) or len(item) != 2:
                raise f.fail("expected [check, signer] pairs")
            pairs.append((f.text(item[0]), f.text(item[1])))
        if pairs != sorted(set(pairs)):
            raise f.fail("required checks not sorted or not unique")
        return PromotionAttestation(
            f.text(branch), f.text(via), f.oid(commit), f.oid(tree),
            f.oid(base) if base is not None else None, tuple(pairs), f.time(t),
        )  # fmt: skip
    raise f.fail(f"not an attestation body (tag {str(tag)[:40]!r}, {len(raw)} fields)")
