"""Roles and access: the store's trust policy edited by `mlgitfs access`, its encoding, and
its export as S3 policy documents (docs/governance.md, "Roles and access")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlgitfs import api
from mlgitfs.errors import CorruptObject
from mlgitfs.model import codec
from mlgitfs.model.access import Grant, Policy, Role, SignedPolicy
from mlgitfs.model.signing import SigningKey
from tests.conftest import Cli, write_tree

HOOKS = """
[[branch]]
pattern = "main"
protected = true

[[branch]]
pattern = "release/*"
merges_only = true
"""


def setup(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {".mlgitfs/hooks.toml": HOOKS, "a.txt": "a"})
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "v1")


def show(cli: Cli) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(cli("access", "show", "--json").stdout)
    return doc


def statements(doc: dict[str, Any], identity: str) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in doc["policies"][identity]["Statement"]}


def test_grant_revoke_and_show(cli: Cli, tmp_path: Path) -> None:
    setup(cli, tmp_path)
    assert show(cli)["seq"] == 0 and show(cli)["grants"] == []
    cli("access", "grant", "alice", "writer", "--repo", "ds", "--branch", "dev/*")
    first = show(cli)
    assert first["seq"] == 1 and first["prev"] == ""
    assert first["grants"] == [
        {"identity": "alice", "role": "writer", "repo": "ds", "branch": "dev/*", "key": ""}
    ]
    assert first["protected"] == {"ds": ["main", "release/*"]}
    # the same scope with another role replaces the grant; each version names the last
    res = cli("access", "grant", "alice", "maintainer", "--repo", "ds", "--branch", "dev/*")
    assert "revoked alice writer" in res.stderr and "granted alice maintainer" in res.stderr
    second = show(cli)
    assert second["seq"] == 2 and second["prev"] == first["digest"]
    assert [g["role"] for g in second["grants"]] == ["maintainer"]
    res = cli("access", "grant", "alice", "maintainer", "--repo", "ds", "--branch", "dev/*")
    assert "unchanged" in res.stderr and show(cli)["seq"] == 2
    cli("access", "grant", "bob", "reader")
    text = cli("access", "show").stdout
    assert "bob\treader\trepo *\tbranch **" in text and "protected\tds\tmain, release/*" in text
    cli("access", "revoke", "alice")
    assert [g["identity"] for g in show(cli)["grants"]] == ["bob"]


def test_bad_edits_are_refused_and_change_nothing(cli: Cli, tmp_path: Path) -> None:
    setup(cli, tmp_path)
    cli("access", "grant", "bob", "reader")
    before = show(cli)
    assert "'owner' is not one of" in cli("access", "grant", "bob", "owner", code=2).stderr
    assert "identity '-x'" not in cli("access", "grant", "--", "-x", "reader", code=6).stdout
    res = cli("access", "grant", "bob", "writer", "--branch", "/main", code=6)
    assert "branch pattern '/main' is not allowed" in res.stderr
    res = cli("access", "revoke", "bob", "admin", code=3)
    assert "bob holds no grant of admin; nothing was changed" in res.stderr
    cli("access", "revoke", "carol", code=3)
    assert show(cli) == before


def test_policy_encoding_is_canonical_and_checked() -> None:
    p = Policy().successor((Grant("bob", Role.READER), Grant("al", Role.ADMIN, "ds", "main")))
    assert Policy.decode(p.encode()) == p
    assert [g.identity for g in p.grants] == ["al", "bob"]  # sorted: one encoding
    nxt = p.successor(p.grants[:1])
    assert nxt.seq == 2 and nxt.prev == p.digest
    rows = [["bob", "reader", "*", "**"], ["al", "admin", "ds", "main"]]  # unsorted
    with pytest.raises(CorruptObject, match="not sorted"):
        Policy.decode(codec.pack(["access-policy", 1, 1, b"", rows, []]))
    with pytest.raises(CorruptObject, match="unknown role"):
        Policy.decode(codec.pack(["access-policy", 1, 1, b"", [["bob", "owner", "*", "**"]], []]))
    with pytest.raises(CorruptObject, match="not an access policy"):
        Policy.decode(codec.pack(["access-policy", 2, 1, b"", [], []]))
    with pytest.raises(CorruptObject, match="malformed"):  # a key that is not 32 bytes
        Policy.decode(codec.pack(["access-policy", 1, 1, b"", [], [["al", b"x"]]]))
    # a signed version: what the signature covers
    key = SigningKey.generate()
    signed = SignedPolicy.sign(key, p)
    assert SignedPolicy.decode(signed.encode()) == signed and signed.signed_by(key.public)
    other = SignedPolicy(nxt.encode(), signed.signer, signed.signature)  # another policy
    assert not other.signed_by(key.public)
    assert not signed.signed_by(SigningKey.generate().public)


def test_export_aws_iam(cli: Cli, tmp_path: Path) -> None:
    setup(cli, tmp_path)
    cli("access", "grant", "rita", "reader", "--repo", "ds")
    cli("access", "grant", "walt", "writer")
    cli("access", "grant", "mona", "writer", "--repo", "ds")
    cli("access", "grant", "mona", "maintainer", "--repo", "ds", "--branch", "main")
    cli("access", "grant", "ada", "admin")
    out = tmp_path / "iam.json"
    args = ("--format", "aws-iam", "--bucket", "team", "--prefix", "ml/", "-o", str(out))
    cli("access", "export", *args)
    assert out.stat().st_mode & 0o777 == 0o600
    doc = json.loads(out.read_text())
    assert sorted(doc["policies"]) == ["ada", "mona", "rita", "walt"]
    obj = "arn:aws:s3:::team/ml/"

    rita = statements(doc, "rita")
    assert set(rita) == {"Read", "List"}  # no write of any kind
    assert f"{obj}refs/ds/*" in rita["Read"]["Resource"]
    assert f"{obj}packs/*" in rita["Read"]["Resource"]
    assert rita["List"]["Resource"] == ["arn:aws:s3:::team"]

    walt = statements(doc, "walt")
    assert f"{obj}refs/*/heads/*" in walt["Write"]["Resource"]
    assert f"{obj}packs/*" in walt["Write"]["Resource"]
    assert f"{obj}access/*" not in walt["Write"]["Resource"]  # the policy: admins only
    assert f"{obj}retention/*" not in walt["Write"]["Resource"]
    deny = walt["ProtectedBranches"]
    assert deny["Effect"] == "Deny"
    assert deny["Resource"] == [f"{obj}refs/ds/heads/main", f"{obj}refs/ds/heads/release/*"]
    cas = walt["CompareAndSwapOnly"]
    assert cas["Effect"] == "Deny" and f"{obj}refs/*" in cas["Resource"]
    assert cas["Condition"] == {"Null": {"s3:if-none-match": "true", "s3:if-match": "true"}}

    mona = statements(doc, "mona")  # a maintainer of main: only release/* is denied
    assert mona["ProtectedBranches"]["Resource"] == [f"{obj}refs/ds/heads/release/*"]
    assert f"{obj}refs/ds/heads/main" in mona["Write"]["Resource"]
    assert f"{obj}retention/ds" in mona["Write"]["Resource"]

    ada = statements(doc, "ada")
    assert "ProtectedBranches" not in ada
    assert f"{obj}access/*" in ada["Write"]["Resource"]
    assert f"{obj}packs/*" in ada["Delete"]["Resource"]  # remote gc
    assert walt["Delete"]["Resource"] == [f"{obj}refs/*/heads/*"]  # refs only


def test_export_seaweedfs_and_its_refusals(cli: Cli, tmp_path: Path) -> None:
    setup(cli, tmp_path)
    cli("access", "export", "--format", "seaweedfs", "--bucket", "b", code=2)  # grants nothing
    cli("access", "grant", "walt", "writer", "--repo", "ds")
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps({"walt": {"accessKey": "AK", "secretKey": "SK"}}))
    res = cli("access", "export", "--format", "seaweedfs", "--bucket", "b", "--credentials",
              str(creds))  # fmt: skip
    doc = json.loads(res.stdout)
    [ident] = doc["identities"]
    assert ident == {
        "name": "walt",
        "credentials": [{"accessKey": "AK", "secretKey": "SK"}],
        "policyNames": ["mlgitfs-walt"],
    }
    [pol] = doc["policies"]
    content = json.loads(pol["content"])
    sids = {s["Sid"] for s in content["Statement"]}
    # SeaweedFS sets no s3:if-none-match key: a Null condition on it would deny every put
    assert "CompareAndSwapOnly" not in sids and "ProtectedBranches" in sids
    assert all("Condition" not in s for s in content["Statement"])
    creds.write_text(json.dumps({"nobody": {"accessKey": "AK", "secretKey": "SK"}}))
    res = cli("access", "export", "--format", "seaweedfs", "--bucket", "b", "--credentials",
              str(creds), code=2)  # fmt: skip
    assert "credentials for identities the policy does not name: ['nobody']" in res.stderr
    cli("remote", "add", "origin", (tmp_path / "remote").as_uri())
    res = cli("access", "export", "--format", "aws-iam", code=2)
    assert "is not on S3: give --bucket" in res.stderr
    assert api.access_show(cli.home).seq == 1
