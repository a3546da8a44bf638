"""The trust policy on a remote: published signed by an admin, chained version to version,
and fetched history checked against it (docs/governance.md, "The policy object",
"Trusted history"). Each breach is refused with its named error and moves nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.meta import db
from mlgitfs.model.access import Grant, Role, SignedPolicy
from mlgitfs.repo.keyring import Keyring
from mlgitfs.repo.trust import POLICY_KEY, version_key
from mlgitfs.store import packs
from mlgitfs.store.transports import open_transport
from tests.conftest import Cli, write_tree

HOOKS = '[[branch]]\npattern = "main"\nprotected = true\n'


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "mlgitfs.repo.refsign")  # keys bob's ring lacks: warned


def refs(cli: Cli) -> dict[str, bytes]:
    store = api.open_store(cli.home)
    with store.env.read() as txn:
        return {r: bytes(o) for r, o in db.list_refs(txn, "ds")}


def change(cli: Cli, tmp_path: Path, branch: str, name: str) -> None:
    """A commit of `cli` on `branch` (made from main) adding file `name`."""
    work = tmp_path / f"{cli.home.name}-{name}"
    cli("export", "ds@main", str(work))
    (work / name).write_text(name)
    if branch not in refs_branches(cli):
        cli("branch", f"ds@{branch}", "ds@main")
    cli("import", f"ds@{branch}", str(work), "-m", name)


def refs_branches(cli: Cli) -> set[str]:
    return {r.removeprefix("heads/") for r in refs(cli) if r.startswith("heads/")}


def team(tmp_path: Path) -> tuple[str, Cli, Cli, Cli]:
    """ada (admin) publishes a policy making walt a writer of ds, whose main is protected;
    bob cloned the remote (trusting version 2 on first use). Every commit is signed."""
    url = (tmp_path / "remote").as_uri()
    ada = Cli(tmp_path / "ada")
    src = write_tree(tmp_path / "src", {".mlgitfs/hooks.toml": HOOKS, "a.txt": "a"})
    ada("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    ada("key", "generate", "--name", "ada")
    ada("import", "ds", str(src), "-m", "v1")
    ada("remote", "add", "origin", url)
    ada("access", "grant", "ada", "admin")
    ada("access", "publish")
    ada("promote", "ds@main", "--to", "main")
    ada("push", "ds")
    walt = Cli(tmp_path / "walt")
    walt("clone", url, "ds")
    walt("key", "generate", "--name", "walt")
    ada("key", "import", "-", "--name", "walt", input=walt("key", "export").stdout.encode())
    ada("access", "grant", "walt", "writer", "--repo", "ds")
    res = ada("access", "publish")
    assert "published access policy version 2" in res.stderr
    bob = Cli(tmp_path / "bob")
    bob("clone", url, "ds")
    assert json.loads(bob("access", "show", "--remote", "origin", "--json").stdout)["seq"] == 2
    return url, ada, walt, bob


def test_history_within_the_policy_is_fetched(tmp_path: Path) -> None:
    url, ada, walt, bob = team(tmp_path)
    shown = json.loads(bob("access", "show", "--json").stdout)  # adopted as the local policy
    assert [(g["identity"], g["role"], bool(g["key"])) for g in shown["grants"]] == [
        ("ada", "admin", True),
        ("walt", "writer", True),
    ]
    walt("fetch", "ds")  # walt trusted version 1: version 2 is chained to it by ada
    change(walt, tmp_path, "walt", "w.txt")
    walt("push", "ds@walt")  # a writer moves an unprotected branch
    change(ada, tmp_path, "dev", "d.txt")
    ada("promote", "ds@dev", "--to", "main")
    ada("push", "ds")  # an admin moves the protected one
    bob("fetch", "ds")
    assert refs(bob)["remotes/origin/heads/main"] == refs(ada)["heads/main"]
    assert refs(bob)["remotes/origin/heads/walt"] == refs(walt)["heads/walt"]
    assert bob("config", "trust").stdout == "trust\trefuse\n"  # the default


def test_ref_moved_by_a_key_without_the_role(tmp_path: Path) -> None:
    url, ada, walt, bob = team(tmp_path)
    change(walt, tmp_path, "walt", "w.txt")
    walt("promote", "ds@walt", "--to", "main")  # a local act: the client lets him
    walt("push", "ds", code=47)  # his client refuses: a writer's promotion (SignerLacksRole)
    walt("config", "trust", "off")  # a client past its own checks; the file remote
    walt("push", "ds")  # enforces nothing: the ref moves
    before = refs(bob)
    res = bob("fetch", "ds", code=44)  # TrustViolation
    assert "by walt, who holds writer there; moving it needs maintainer" in res.stderr
    assert "nothing was fetched" in res.stderr
    assert refs(bob) == before
    bob("pull", "ds", code=44)
    assert refs(bob) == before
    fresh = Cli(tmp_path / "fresh")
    fresh("clone", url, "ds", code=44)
    assert not (tmp_path / "fresh").exists()  # a refused clone leaves nothing behind
    bob("config", "trust", "warn")
    bob("fetch", "ds")
    assert refs(bob)["remotes/origin/heads/main"] == refs(walt)["heads/main"]


def test_a_commit_dropping_the_rule_is_judged_by_it(tmp_path: Path) -> None:
    url, ada, walt, bob = team(tmp_path)
    work = tmp_path / "walt-unprotect"
    walt("export", "ds@main", str(work))
    (work / ".mlgitfs" / "hooks.toml").write_text("# main is mine now\n")
    walt("branch", "ds@walt", "ds@main")
    walt("import", "ds@walt", str(work), "-m", "drop the rule")
    walt("promote", "ds@walt", "--to", "main")
    walt("push", "ds")
    # the new head protects nothing; the head it replaced does
    fresh = Cli(tmp_path / "fresh")
    res = fresh("clone", url, "ds", code=44)
    assert "by walt, who holds writer there; moving it needs maintainer" in res.stderr
    before = refs(bob)
    bob("fetch", "ds", code=44)
    assert refs(bob) == before


def test_unsigned_and_unknown_key_commits_on_a_protected_branch(tmp_path: Path) -> None:
    url, ada, walt, bob = team(tmp_path)
    mallory = Cli(tmp_path / "mallory")  # may write the bucket, holds no key of the policy
    mallory("clone", url, "ds")
    change(mallory, tmp_path, "m", "m.txt")  # unsigned: she has no key
    mallory("push", "ds@m")
    # then she writes main's ref herself, past any client: her commit, no ref statement
    t = open_transport(url)
    t.put(packs.ref_key("ds", "heads/main"), packs.encode_ref(refs(mallory)["heads/m"]))
    before = refs(bob)
    res = bob("fetch", "ds", code=44)
    assert "carries no author's signature (on protected ds@main)" in res.stderr
    assert "without a signature (no ref statement)" in res.stderr
    assert refs(bob) == before
    mallory("key", "generate", "--name", "mallory")
    change(mallory, tmp_path, "m", "m2.txt")
    mallory("promote", "ds@m", "--to", "main")
    mallory("config", "trust", "off")  # her client would refuse the push: not a maintainer
    mallory("push", "ds")
    res = bob("fetch", "ds", code=44)
    assert "the key of no identity" in res.stderr
    assert refs(bob) == before
    bob("config", "trust", "off")
    bob("fetch", "ds")
    assert refs(bob)["remotes/origin/heads/main"] == refs(mallory)["heads/main"]


def test_policy_replayed_removed_or_signed_by_a_non_admin(tmp_path: Path) -> None:
    url, ada, walt, bob = team(tmp_path)
    t = open_transport(url)
    current = t.get(POLICY_KEY)
    first = t.get(version_key(1))  # kept by the publication of version 2
    assert SignedPolicy.decode(first).policy.seq == 1
    before = refs(bob)
    t.put(POLICY_KEY, first)  # replayed
    res = bob("fetch", "ds", code=42)  # PolicyRollback
    assert "version 1, older than version 2 trusted here" in res.stderr
    t.delete(POLICY_KEY)  # removed
    res = bob("fetch", "ds", code=42)
    assert "no longer holds an access policy" in res.stderr
    # walt makes himself admin and signs the next version with his own key
    v2 = SignedPolicy.decode(current).policy
    forged = v2.successor(v2.grants + (Grant("walt", Role.ADMIN),))
    walt_key = Keyring(walt.home).signing_key("walt")
    t.put(POLICY_KEY, SignedPolicy.sign(walt_key, forged).encode())
    res = bob("fetch", "ds", code=43)  # PolicyUnauthorized
    assert "signed by walt, who is not an admin of version 2" in res.stderr
    # ada's genuine signature over a policy altered after signing
    real = SignedPolicy.decode(current)
    altered = SignedPolicy(forged.encode(), real.signer, real.signature)
    t.put(POLICY_KEY, altered.encode())
    res = bob("fetch", "ds", code=43)
    assert "the signature by ada does not verify" in res.stderr
    at = current.index(b"access-policy")  # a flipped byte in the policy's own tag
    t.put(POLICY_KEY, current[:at] + bytes([current[at] ^ 1]) + current[at + 1 :])
    res = bob("fetch", "ds", code=7)  # CorruptObject: not even decoded as a policy
    assert "not an access policy" in res.stderr
    assert refs(bob) == before
    assert json.loads(bob("access", "show", "--remote", "origin", "--json").stdout)["seq"] == 2
    # publishing is refused to a non-admin before anything is written
    t.put(POLICY_KEY, current)
    walt("fetch", "ds")
    walt("access", "grant", "walt", "admin")
    res = walt("access", "publish", code=43)
    assert "walt is not an admin of access policy version 2" in res.stderr
    assert t.get(POLICY_KEY) == current
    ada("access", "revoke", "ada")  # the last admin: a policy nobody could change again
    res = ada("access", "publish", code=2)
    assert "names no admin with a key" in res.stderr
    assert t.get(POLICY_KEY) == current


def test_a_store_behind_walks_the_chain_of_versions(tmp_path: Path) -> None:
    url, ada, walt, bob = team(tmp_path)
    ada("access", "grant", "bob", "reader")
    ada("access", "publish")  # version 3
    ada("access", "revoke", "bob")
    ada("access", "publish")  # version 4
    walt("fetch", "ds")  # walt trusted version 1: checks 2, 3 and 4 in turn
    assert json.loads(walt("access", "show", "--remote", "origin", "--json").stdout)["seq"] == 4
    t = open_transport(url)
    t.delete(version_key(3))
    res = bob("fetch", "ds", code=43)  # bob trusted version 2: the chain has a hole
    assert "lacks access policy version 3" in res.stderr
    res = ada("access", "publish")
    assert "version 4 is up to date" in res.stderr


def test_clone_pinned_to_an_admin_key(tmp_path: Path) -> None:
    url, ada, walt, bob = team(tmp_path)
    ada_id = json.loads(ada("key", "list", "--json").stdout)[0]["key_id"]
    wrong = Cli(tmp_path / "pinned-wrong")
    res = wrong("clone", url, "ds", "--trust", "0" * 64, code=43)
    assert "signed by the pinned key 0000000000000000" in res.stderr
    pinned = Cli(tmp_path / "pinned")
    pinned("clone", url, "ds", "--trust", ada_id)
    assert refs(pinned)["heads/main"] == refs(ada)["heads/main"]
    pinned("clone", url, "ds2", "--trust", "nobody", code=2)
