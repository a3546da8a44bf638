"""Attestations judged by role (docs/governance.md, "Attestations and roles"): where a trust
policy is in force, a promotion counts toward pushing a protected branch only when signed by
a maintainer of it, and a check attestation is reused by a promotion only when signed by a
writer; `checks` shows each signer's identity and role and `--verify` names a valid
signature whose signer lacks the role (SignerLacksRole, exit 47). Without a policy (or with
`trust = off`) the key ring alone decides, as before. A refusal sends nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.meta import db
from tests.conftest import Cli, write_tree
from tests.test_attest import hooks, runs
from tests.test_promote import LABELS
from tests.test_sync import Remote, remote
from tests.test_trust import HOOKS, change

__all__ = ["remote"]


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "mlgitfs.repo.refsign")  # keys a ring lacks: warned


def member(ada: Cli, url: str, tmp_path: Path, name: str, remote: Remote | None) -> Cli:
    """A clone of `url` with its own key `name`, which ada's key ring then knows."""
    extra = remote.add_args() if remote is not None else []
    c = Cli(tmp_path / name)
    c("clone", url, "ds", *extra)
    c("key", "generate", "--name", name)
    ada("key", "import", "-", "--name", name, input=c("key", "export").stdout.encode())
    return c


def admin(tmp_path: Path, url: str, text: str, extra: list[str]) -> Cli:
    """ada: ds with `text` as its hooks file, main promoted and pushed, a published policy
    making her its admin."""
    ada = Cli(tmp_path / "ada")
    src = write_tree(tmp_path / "src", {".mlgitfs/hooks.toml": text, "labels.csv": LABELS})
    ada("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    ada("key", "generate", "--name", "ada")
    ada("import", "ds", str(src), "-m", "v1")
    ada("remote", "add", "origin", url, *extra)
    ada("access", "grant", "ada", "admin")
    ada("access", "publish")
    ada("promote", "ds@main", "--to", "main")
    ada("push", "ds")
    return ada


def test_a_promotion_by_a_writer_does_not_push_a_protected_branch(
    tmp_path: Path, remote: Remote
) -> None:
    ada = admin(tmp_path, remote.url, HOOKS, remote.add_args())
    walt = member(ada, remote.url, tmp_path, "walt", remote)
    ada("access", "grant", "walt", "writer", "--repo", "ds")
    ada("access", "publish")
    walt("fetch", "ds")  # adopts version 2: walt is a writer
    change(walt, tmp_path, "dev", "w.txt")
    walt("promote", "ds@dev", "--to", "main")  # a local act: his store lets him
    keys = remote.remote_keys()
    res = walt("push", "ds", code=47)  # SignerLacksRole
    assert "signed by walt who holds writer on ds@main" in res.stderr
    assert "only when signed by a maintainer" in res.stderr and "nothing was sent" in res.stderr
    assert remote.remote_keys() == keys
    res = walt("checks", "ds@main", "--verify", code=47)
    assert "signed by walt who holds writer on ds@main" in res.stderr
    doc = json.loads(walt("checks", "ds@main", "--json").stdout)
    (promo,) = [a for a in doc["attestations"] if a["kind"] == "promotion"]
    assert (promo["identity"], promo["role"], promo["valid"]) == ("walt", "writer", False)
    assert promo["error"] == "SignerLacksRole"
    assert "by walt (writer)" in walt("checks", "ds@main").stdout
    (cv,) = json.loads(walt("verify", "ds@main", "--json").stdout)["commits"]
    who = {(s["kind"], s["identity"], s["role"]) for s in cv["statements"]}
    assert ("commit", "walt", "writer") in who
    assert "[walt: writer]" in walt("verify", "ds@main").stdout

    # Made a maintainer of main, his same promotion counts: the push goes through.
    ada("access", "grant", "walt", "maintainer", "--repo", "ds", "--branch", "main")
    ada("access", "publish")
    walt("fetch", "ds")
    walt("checks", "ds@main", "--verify")
    walt("push", "ds")
    assert remote.remote_keys() != keys


def test_without_a_policy_the_key_ring_decides(tmp_path: Path) -> None:
    url = (tmp_path / "remote").as_uri()
    ada = admin(tmp_path, url, HOOKS, [])
    walt = member(ada, url, tmp_path, "walt", None)  # in no grant of the policy
    change(walt, tmp_path, "dev", "w.txt")
    walt("promote", "ds@dev", "--to", "main")
    walt("push", "ds", code=47)
    walt("config", "trust", "off")  # no policy in force: his own key is in his key ring
    doc = json.loads(walt("checks", "ds@main", "--json").stdout)
    assert all(a["valid"] and a["identity"] == "" for a in doc["attestations"])
    walt("checks", "ds@main", "--verify")
    walt("push", "ds")


def test_a_check_attested_by_someone_without_a_role_runs_again(tmp_path: Path) -> None:
    url = (tmp_path / "remote").as_uri()
    counter = tmp_path / "lint-runs"
    ada = admin(tmp_path, url, hooks(counter), [])
    eve = member(ada, url, tmp_path, "eve", None)  # known to ada's key ring, no role
    walt = member(ada, url, tmp_path, "walt", None)
    ada("access", "grant", "walt", "writer", "--repo", "ds")
    ada("access", "publish")
    ada("config", "trust", "warn")  # eve moves branches she may not: fetched, warned
    for c, name in ((walt, "w.txt"), (eve, "e.txt")):  # walt fetches before eve moves
        c("fetch", "ds")
        change(c, tmp_path, c.home.name, name)
        c("checks", f"ds@{c.home.name}", "--run", "main")  # runs lint, attests its passes
        c("push", f"ds@{c.home.name}")
    ada("fetch", "ds")
    eve_id = json.loads(eve("key", "list", "--json").stdout)[0]["key_id"]
    walt_id = [k for k in json.loads(walt("key", "list", "--json").stdout) if k["own"]][0]
    res = ada("checks", "ds@origin/eve", "--verify", code=47)
    assert "the key of no identity of the policy (no role on ds)" in res.stderr
    before = runs(counter)
    doc = json.loads(ada("promote", "ds@origin/eve", "--to", "main", "--dry-run", "--json").stdout)
    attested = {c["name"]: c["attested"] for c in doc["checks"]}
    assert eve_id not in attested.values() and runs(counter) == before + 1  # ran again
    doc = json.loads(ada("promote", "ds@origin/walt", "--to", "main", "--json").stdout)
    assert doc["status"] == "fast-forward"
    assert {c["name"]: c["attested"] for c in doc["checks"]} == {
        "schema": walt_id["key_id"],
        "lint": walt_id["key_id"],
    }
    assert runs(counter) == before + 1  # walt's verdicts reused: nothing ran


SIGNED = HOOKS + '[[branch]]\npattern = "release"\nsigned_by = "maintainer"\n'


def test_a_branch_signed_by_a_maintainer(tmp_path: Path, remote: Remote) -> None:
    ada = admin(tmp_path, remote.url, SIGNED, remote.add_args())
    ada("branch", "ds@release", "ds@main")
    ada("push", "ds@release")  # an admin holds maintainer and more
    walt = member(ada, remote.url, tmp_path, "walt", remote)
    ada("access", "grant", "walt", "writer", "--repo", "ds")
    ada("access", "publish")
    walt("fetch", "ds")
    before = refs(walt)
    res = walt("import", "ds@release", str(tmp_path / "src"), "-m", "x", code=36)
    assert (
        "signed_by = 'maintainer'" in res.stderr and "signs as walt, who holds writer" in res.stderr
    )
    change(walt, tmp_path, "dev", "w.txt")
    res = walt("promote", "ds@dev", "--to", "release", code=36)
    assert "a promotion is refused" in res.stderr
    res = walt("merge", "ds@dev", "--into", "ds@release", code=36)
    assert "a merge is refused" in res.stderr
    assert refs(walt)["heads/release"] == before["heads/release"]
    nokey = Cli(tmp_path / "nokey")  # signs nothing: refused without a policy to read
    nokey("clone", remote.url, "ds", *remote.add_args())
    res = nokey("import", "ds@release", str(tmp_path / "src"), "-m", "x", code=36)
    assert "this store signs nothing" in res.stderr

    # Past his client's checks (trust off: no policy, any signature will do) walt moves it
    walt("config", "trust", "off")
    walt("import", "ds@release", str(tmp_path / "src" / ".mlgitfs"), "-m", "drops the rule")
    walt("config", "trust", "refuse")
    keys = remote.remote_keys()
    res = walt("push", "ds@release", code=36)  # his client refuses to sign the ref move
    assert "a push is refused" in res.stderr and remote.remote_keys() == keys
    walt("config", "trust", "off")
    walt("push", "ds@release")  # the store lets a writer move an unprotected branch
    bob = Cli(tmp_path / "bob")
    bob("clone", remote.url, "ds", *remote.add_args(), code=44)
    assert not (tmp_path / "bob").exists()
    ada_before = refs(ada)
    res = ada("fetch", "ds", code=44)
    assert "requires a signature by a maintainer (signed_by)" in res.stderr
    assert refs(ada) == ada_before


def refs(c: Cli) -> dict[str, bytes]:
    store = api.open_store(c.home)
    with store.env.read() as txn:
        return {r: bytes(o) for r, o in db.list_refs(txn, "ds")}
