"""Check results as attestations (docs/governance.md, "Attestations"): a promotion and the
checks it passed become signed statements attached to the commit; push, clone and fetch
carry them (file:// and SeaweedFS); `checks --verify` re-verifies them offline and names a
flipped byte, an attestation moved onto another commit, one signed by an unknown key and
one naming another tree, each with its own exit code; a teammate's valid attestations
satisfy a promotion's required checks without running them; a refused promotion attests
nothing and moves nothing."""

from __future__ import annotations

import json
from pathlib import Path

from mlgitfs import api
from mlgitfs.meta import db, statements
from mlgitfs.model.attestation import STATEMENT_KIND, CheckAttestation
from mlgitfs.model.ids import ObjectId
from mlgitfs.repo.attestations import StoreAttester, attester_of
from mlgitfs.repo.keyring import Keyring
from tests.conftest import Cli, write_tree
from tests.test_promote import HOOKS, LABELS, LINT
from tests.test_sync import Remote, remote

__all__ = ["remote"]


def hooks(counter: Path) -> str:
    """test_promote's hooks (lint, a real command, and schema, both required on main),
    lint counting its runs in a file outside the repo."""
    return HOOKS.replace(json.dumps(LINT), json.dumps(f"echo run >> {counter}; {LINT}"))


def setup(cli: Cli, tmp_path: Path) -> tuple[Path, Path]:
    counter = tmp_path / "lint-runs"
    src = write_tree(
        tmp_path / "src", {".mlgitfs/hooks.toml": hooks(counter), "labels.csv": LABELS}
    )
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "v1")
    cli("branch", "ds@dev", "ds@main")
    return src, counter


def runs(counter: Path) -> int:
    return len(counter.read_text().splitlines()) if counter.exists() else 0


def listed(c: Cli, rev: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(c("checks", rev, "--json").stdout)
    return doc


def key_id(c: Cli) -> str:
    (k,) = [k for k in json.loads(c("key", "list", "--json").stdout) if k["own"]]
    return str(k["key_id"])


def refs(home: Path) -> dict[str, bytes]:
    store = api.open_store(home)
    with store.env.read() as txn:
        return {r: bytes(c) for r, c in db.list_refs(txn, "ds")}


def head(home: Path, branch: str) -> ObjectId:
    return ObjectId(refs(home)[f"heads/{branch}"])


def test_attestations_travel_and_satisfy_a_teammates_promotion(
    cli: Cli, tmp_path: Path, home: Path, remote: Remote
) -> None:
    src, counter = setup(cli, tmp_path)
    cli("key", "generate", "--name", "alice")
    alice = key_id(cli)
    cli("promote", "ds@main", "--to", "main")  # main's first version, attested: pushable
    assert runs(counter) == 1
    (src / "labels.csv").write_text(LABELS + "3,bird\n")
    cli("import", "ds@dev", str(src), "-m", "a bird")
    # Alice runs what a promotion to main would, and attests it; nothing moves.
    before = refs(home)
    out = json.loads(cli("checks", "ds@dev", "--run", "main", "--json").stdout)
    assert {r["name"]: r["status"] for r in out["ran"]} == {"schema": "passed", "lint": "passed"}
    assert refs(home) == before and runs(counter) == 2
    got = {(a["kind"], a["name"]): a for a in out["attestations"]}
    assert set(got) == {("check", "schema"), ("hook", "lint")}
    assert all(a["valid"] and a["signer"] == alice for a in got.values())
    assert got[("check", "schema")]["validator"] == "table v1"
    assert got[("hook", "lint")]["validator"].startswith("command sha256:")
    cli("checks", "ds@dev", "--run", "main")  # again: cached, and not attested twice
    assert runs(counter) == 2 and len(listed(cli, "ds@dev")["attestations"]) == 2  # type: ignore[arg-type]
    cli("remote", "add", "origin", remote.url, *remote.add_args())
    cli("push", "ds")
    cli("push", "ds@dev")

    # Bob clones: the attestations came with the commit, but Alice's key is not his yet.
    bob = Cli(tmp_path / "bob")
    bob("clone", remote.url, "ds", *remote.add_args())
    res = bob("checks", "ds@dev", "--verify", code=40)
    assert "signed by a key not in this store's key ring" in res.stderr
    bob("key", "import", "-", "--name", "alice", input=cli("key", "export").stdout.encode())
    bob("checks", "ds@dev", "--verify")
    bob("key", "generate", "--name", "bob")
    bob_id = key_id(bob)
    # His promotion reuses Alice's attestations: neither check runs again.
    doc = json.loads(bob("promote", "ds@dev", "--to", "main", "--json").stdout)
    assert doc["status"] == "fast-forward"
    assert {c["name"]: c["attested"] for c in doc["checks"]} == {"schema": alice, "lint": alice}
    assert runs(counter) == 2
    (promo,) = listed(bob, "ds@main")["promotions"]  # type: ignore[misc]
    assert promo["branch"] == "main" and promo["signer"] == bob_id
    assert {c["name"]: c["signer"] for c in promo["checks"]} == {"schema": alice, "lint": alice}
    bob("push", "ds")  # main carries a valid promotion attestation: pushable

    # Alice fetches Bob's promotion; once she trusts his key it verifies.
    cli("pull", "ds")
    assert head(home, "main") == head(home, "dev")
    assert cli("checks", "ds@main", "--verify", code=40).stderr
    cli("key", "import", "-", "--name", "bob", input=bob("key", "export").stdout.encode())
    doc = json.loads(cli("checks", "ds@main", "--verify", "--json").stdout)
    assert len(doc["attestations"]) == 3 and all(a["valid"] for a in doc["attestations"])
    # Her own promotion of it runs nothing (every check attested, by her) and adds only
    # her promotion attestation; promoting again adds nothing at all.
    cli("promote", "ds@dev", "--to", "main")
    assert len(listed(cli, "ds@main")["attestations"]) == 4  # type: ignore[arg-type]
    cli("promote", "ds@dev", "--to", "main")
    assert len(listed(cli, "ds@main")["attestations"]) == 4  # type: ignore[arg-type]
    # Bob's push ran lint at pre-push on nothing either: Alice's attestation answered it.
    assert runs(counter) == 2


def test_a_refused_promotion_attests_nothing_and_moves_nothing(
    cli: Cli, tmp_path: Path, home: Path
) -> None:
    src, counter = setup(cli, tmp_path)
    (src / "bad.txt").write_text("oops")
    cli("import", "ds@dev", str(src), "-m", "bad")
    before = refs(home)
    res = cli("promote", "ds@dev", "--to", "main", code=2)  # no key: refused before running
    assert "no signing key" in res.stderr and runs(counter) == 0
    cli("key", "generate", "--name", "alice")
    res = cli("promote", "ds@dev", "--to", "main", code=34)
    assert "lint: bad.txt must not be published" in res.stderr
    cli("checks", "ds@dev", "--run", "main", code=34)
    assert refs(home) == before
    # schema passed before lint failed: still nothing attested.
    assert listed(cli, "ds@dev")["attestations"] == []
    store = api.open_store(home)
    with store.env.read() as txn:
        found = statements.of_subject(txn, head(home, "dev"))
    assert [s for s in found if s.kind == STATEMENT_KIND] == []


def test_tampered_attestations_are_named(cli: Cli, tmp_path: Path, home: Path) -> None:
    src, _ = setup(cli, tmp_path)
    cli("key", "generate", "--name", "alice")
    commits = []
    for n in range(4):
        (src / "labels.csv").write_text(LABELS + f"{n + 3},bird\n")
        cli("import", "ds@dev", str(src), "-m", f"v{n}")
        cli("checks", "ds@dev", "--run", "main")
        commits.append(head(home, "dev"))
        cli("checks", "ds@dev", "--verify")
    a, b, c, d = commits
    store = api.open_store(home)
    with store.env.read() as txn:
        sa = next(s for s in statements.of_subject(txn, a) if s.kind == STATEMENT_KIND)
    data = sa.encode()
    at = data.index(bytes(store.commit(a).tree)) + 5  # a byte of the tree id in the body
    flipped = data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]
    with store.env.write() as txn:
        statements.attach(txn, a, flipped)  # (a) a flipped byte
        statements.attach(txn, b, data)  # (b) a's attestation copied onto b
    other = Cli(tmp_path / "mallory")
    other("init", "scratch", "--kind", "dataset", "--mutability", "mutable")
    other("key", "generate", "--name", "mallory")
    body = CheckAttestation(
        "schema", "check", c, store.commit(c).tree, None, "pre-merge", "table v1", "0" * 64,
        "0" * 64, "passed", 1,
    )  # fmt: skip
    StoreAttester(store, Keyring(other.home)).attach("ds", c, [body])  # (c) an unknown key
    wrong = CheckAttestation(
        "schema", "check", d, store.commit(a).tree, None, "pre-merge", "table v1", "0" * 64,
        "0" * 64, "passed", 1,
    )  # fmt: skip
    attester_of(store).attach("ds", d, [wrong])  # (d) a known key, about another tree
    before = refs(home)
    for commit, code, words in (
        (a, 39, "its signature does not match its bytes"),
        (b, 45, "not this one (moved)"),
        (c, 40, "signed by a key not in this store's key ring"),
        (d, 46, "the commit's tree is"),
    ):
        rev = f"ds@{commit.hex()}"
        res = cli("checks", rev, "--verify", code=code)
        assert words in res.stderr, res.stderr
        doc = listed(cli, rev)  # without --verify: listed, marked, exit 0
        bad = [x for x in doc["attestations"] if not x["valid"]]  # type: ignore[union-attr]
        assert len(bad) == 1 and words in bad[0]["problem"]
    # `mlgitfs verify` judges an attestation's body by the same rules.
    res = cli("verify", f"ds@{d.hex()}", code=46)
    assert "the commit's tree is" in res.stderr
    assert refs(home) == before


def test_a_gate_of_a_branch_with_required_checks_attests_its_passes(
    cli: Cli, tmp_path: Path, home: Path
) -> None:
    toml = """
[[check]]
name = "schema"
type = "table"
path = "labels.csv"
columns = { id = "int", label = "str" }

[[check]]
name = "size"
type = "max-size"
size = "1M"

[[branch]]
pattern = "team/**"
required_checks = ["schema"]
"""
    src = write_tree(tmp_path / "src", {".mlgitfs/hooks.toml": toml, "labels.csv": LABELS})
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds@team/a", str(src), "-m", "v1")  # the first version: not gated
    cli("import", "ds@other", str(src), "-m", "v1")
    (src / "labels.csv").write_text(LABELS + "3,bird\n")
    cli("import", "ds@team/a", str(src), "-m", "v2")  # no key yet: gated, nothing attested
    assert listed(cli, "ds@team/a")["attestations"] == []
    cli("key", "generate", "--name", "alice")
    (src / "labels.csv").write_text(LABELS + "4,fish\n")
    cli("import", "ds@team/a", str(src), "-m", "v3")
    doc = json.loads(cli("checks", "ds@team/a", "--verify", "--json").stdout)
    # Every pre-commit pass of the gate (not only the required one); no promotion.
    names = sorted((a["kind"], a["name"], a["event"]) for a in doc["attestations"])
    assert names == [("check", "schema", "pre-commit"), ("check", "size", "pre-commit")]
    assert doc["promotions"] == []
    cli("import", "ds@other", str(src), "-m", "v2")  # a branch without required checks
    assert listed(cli, "ds@other")["attestations"] == []
