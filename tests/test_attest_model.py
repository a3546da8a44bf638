"""Attestation bodies (model/attestation.py) and their verification (repo/attest.py) without
a store: the canonical encoding round trips and refuses anything else; each way an
attestation can be wrong is named by its own error; the reuse rule matches only the same
check definition, validator, hooks file, commit and tree."""

from __future__ import annotations

import pytest

from mlgitfs.errors import (
    AttestationMoved,
    AttestationTreeMismatch,
    CorruptObject,
    SignatureInvalid,
    UnknownKey,
)
from mlgitfs.model import codec
from mlgitfs.model.attestation import CheckAttestation, PromotionAttestation, decode
from mlgitfs.model.ids import ObjectId
from mlgitfs.repo.attest import Signed, check_body, first_problem, satisfies, verify
from mlgitfs.repo.hooks import parse_hooks

C1, C2 = ObjectId(b"\x01" * 32), ObjectId(b"\x02" * 32)
T1, T2 = ObjectId(b"\x11" * 32), ObjectId(b"\x12" * 32)
HOOKS = """
[[check]]
name = "schema"
type = "table"
path = "*.csv"
columns = { id = "int" }

[[hook]]
name = "lint"
command = ["true"]
"""


def body() -> CheckAttestation:
    return CheckAttestation(
        "schema", "check", C1, T1, None, "promote", "table v1", "ab" * 32, "cd" * 32,
        "passed", 1_700_000_000_000_000_000,
    )  # fmt: skip


def test_bodies_round_trip_canonically() -> None:
    b = body()
    assert decode(b.encode()) == b
    p = PromotionAttestation("main", "promote", C1, T1, C2, (("lint", "k1"), ("schema", "k2")), 5)
    assert decode(p.encode()) == p
    assert b.encode() == body().encode()  # one encoding per value


def raw_check(kind: str = "check", commit: bytes = b"\x01" * 32) -> list[object]:
    return ["check", 1, "schema", kind, commit, b"\x11" * 32, None, "e", "v", "d", "h", "passed", 1]


@pytest.mark.parametrize(
    "raw",
    [
        ["check", 2, *([""] * 11)],  # unknown format
        ["nope", 1],
        raw_check(kind="robot"),
        raw_check(commit=b"\x01" * 31),
        [
            "promotion",
            1,
            "main",
            "promote",
            b"\x01" * 32,
            b"\x11" * 32,
            None,
            [["b", "k"], ["a", "k"]],
            1,
        ],  # fmt: skip
    ],
)
def test_malformed_bodies_are_named(raw: list[object]) -> None:
    with pytest.raises(CorruptObject):
        decode(codec.pack(raw))


def test_a_non_canonical_body_is_refused() -> None:
    p = PromotionAttestation("main", "promote", C1, T1, None, (), 5).encode()
    assert p.endswith(b"\x05")
    wide = p[:-1] + b"\xcf" + (5).to_bytes(8, "big")  # the same value as a uint64
    assert codec.unpack(wide, "x") == codec.unpack(p, "x")
    with pytest.raises(CorruptObject, match="not in canonical encoding"):
        decode(wide)


def signed(b: bytes, attached: ObjectId = C1, subject: ObjectId = C1, **kw: bool) -> Signed:
    return Signed("5" * 64, attached, subject, "6" * 64, b, kw.get("known", True),
                  kw.get("ok", True))  # fmt: skip


def test_each_problem_has_its_named_error() -> None:
    good = body().encode()
    assert verify(signed(good), C1, T1).ok
    cases = [
        (signed(good, known=False, ok=False), UnknownKey, "not in this store's key ring"),
        (signed(good, ok=False), SignatureInvalid, "does not match its bytes"),
        (signed(b"\x93\xa5check\x01\x00"), CorruptObject, "corrupt object"),
        (signed(good, attached=C2), AttestationMoved, "not this one (moved)"),
        (signed(good, attached=C2, subject=C2), AttestationMoved, "about commit 010101"),
    ]
    for s, err, words in cases:
        v = verify(s, C2 if s.attached_to == C2 else C1, T1)
        assert isinstance(v.problem, err) and words in v.problem.message, (err, v.problem)
    v = verify(signed(good), C1, T2)
    assert isinstance(v.problem, AttestationTreeMismatch)
    assert "names tree 111111111111, the commit's tree is 121212121212" in v.problem.message
    both = first_problem([verify(signed(good), C1, T2), verify(signed(good, ok=False), C1, T1)])
    assert isinstance(both, AttestationTreeMismatch) and "and 1 more" in both.message


def test_reuse_needs_the_same_definition_validator_file_commit_and_tree() -> None:
    hooks = parse_hooks(HOOKS)
    schema, lint = hooks.hooks[1], hooks.hooks[0]
    assert (schema.name, lint.name) == ("schema", "lint")
    for h in (schema, lint):
        b = check_body(h, C1, T1, None, "promote", hooks.source, 1)
        v = verify(signed(b.encode()), C1, T1)
        assert satisfies(v, h, hooks.source, C1, T1)
        assert not satisfies(v, h, hooks.source, C2, T1)  # another commit
        assert not satisfies(v, h, hooks.source, C1, T2)  # another tree
        assert not satisfies(v, h, "0" * 64, C1, T1)  # another hooks file
    changed = parse_hooks(HOOKS.replace('"true"', '"false"'))
    b = check_body(lint, C1, T1, None, "promote", hooks.source, 1)
    v = verify(signed(b.encode()), C1, T1)
    assert not satisfies(v, changed.hooks[0], changed.source, C1, T1)  # another command
    bad = verify(signed(b.encode(), ok=False), C1, T1)
    assert not satisfies(bad, lint, hooks.source, C1, T1)  # only a valid one counts
