"""Protected branches and promotion (`[[branch]]` protected, merges_only, required_checks):
direct imports, commits, reverts, resets, merges and pushes that would move a protected
branch are refused and change nothing; `promote` moves it only when its required checks pass
on the candidate, and attests them (`checks`); unprotected branches are unaffected."""

from __future__ import annotations

import json
from pathlib import Path

from mlgitfs import api
from mlgitfs.meta import db
from tests.conftest import Cli, write_tree
from tests.test_sync import Remote, remote

__all__ = ["remote"]

# Real hooks: a shell script run on the candidate's read-only view. "lint" refuses a
# version holding bad.txt; "schema" is a built-in table check. Neither runs at pre-commit:
# they are required checks of main (and lint of staging), run by promote and merge.
LINT = "test ! -e bad.txt || { echo 'lint: bad.txt must not be published' >&2; exit 1; }"
HOOKS = f"""
[[hook]]
name = "lint"
events = ["pre-push"]
command = {json.dumps(LINT)}
timeout = 30

[[check]]
name = "schema"
events = ["pre-push"]
type = "table"
path = "labels.csv"
columns = {{ id = "int", label = "str" }}
key = ["id"]

[[branch]]
pattern = "main"
protected = true
required_checks = ["schema", "lint"]

[[branch]]
pattern = "staging"
merges_only = true
required_checks = ["lint"]
"""
LABELS = "id,label\n1,cat\n2,dog\n"


def heads(home: Path) -> dict[str, bytes]:
    store = api.open_store(home)
    with store.env.read() as txn:
        return {r: bytes(c) for r, c in db.list_refs(txn, "ds")}


def reflog(home: Path) -> list[api.ReflogResult]:
    return api.reflog_show(home, "ds")


def setup(cli: Cli, tmp_path: Path) -> Path:
    """ds@main (its first import is not gated: no head yet), ds@dev and ds@staging from it."""
    src = write_tree(tmp_path / "src", {".mlgitfs/hooks.toml": HOOKS, "labels.csv": LABELS})
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("key", "generate", "--name", "me")  # promotions are signed attestations
    cli("import", "ds", str(src), "-m", "v1")
    cli("branch", "ds@dev", "ds@main")
    cli("branch", "ds@staging", "ds@main")
    return src


def test_direct_changes_to_a_protected_branch_are_refused(
    cli: Cli, tmp_path: Path, home: Path
) -> None:
    src = setup(cli, tmp_path)
    (src / "more.txt").write_text("x")
    # dev is unprotected: imports, reverts and resets work there as ever.
    cli("import", "ds@dev", str(src), "-m", "dev work")
    before, log = heads(home), reflog(home)
    for args in (
        ("import", "ds@main", str(src), "-m", "direct"),
        ("merge", "ds@dev", "--into", "ds@main"),  # protected without merges_only
        ("cherry-pick", "ds@dev", "--into", "ds@main"),
        ("reset", "ds@main", "ds@dev", "--force"),
        ("import", "ds@staging", str(src), "-m", "direct"),  # merges_only: no imports
        ("branch", "-d", "ds@main", "--force"),
    ):
        res = cli(*args, code=36)
        assert "is protected (branch rule" in res.stderr, args
        assert "nothing was changed" in res.stderr
    res = cli("import", "ds@main", str(src), "-m", "direct", code=36)
    assert "branch rule 'main' in .mlgitfs/hooks.toml: protected = true" in res.stderr
    assert "mlgitfs promote" in res.stderr
    assert heads(home) == before and reflog(home) == log
    cli("revert", "ds@dev", "--into", "ds@dev")  # unprotected: unaffected
    cli("reset", "ds@dev", "ds@main", "--force")


def test_promote_with_a_failing_check_moves_nothing(cli: Cli, tmp_path: Path, home: Path) -> None:
    src = setup(cli, tmp_path)
    (src / "bad.txt").write_text("oops")
    cli("import", "ds@dev", str(src), "-m", "bad file")
    before, log = heads(home), reflog(home)
    res = cli("promote", "ds@dev", "--to", "main", code=34)
    assert "hook 'lint' failed (exit 1)" in res.stderr
    assert "lint: bad.txt must not be published" in res.stderr
    assert heads(home) == before and reflog(home) == log
    dev = api.checks(home, "ds@dev")
    assert dev.promotions == ()
    # A table whose key repeats: the built-in check refuses it, by row.
    (src / "bad.txt").unlink()
    (src / "labels.csv").write_text(LABELS + "2,bird\n")
    cli("import", "ds@dev", str(src), "-m", "duplicate key")
    res = cli("promote", "ds@dev", "--to", "ds@main", code=34)
    assert "check 'schema' failed" in res.stderr and "labels.csv" in res.stderr
    assert heads(home)["heads/main"] == before["heads/main"]


def test_promote_with_passing_checks_moves_the_target(cli: Cli, tmp_path: Path, home: Path) -> None:
    src = setup(cli, tmp_path)
    hotfix = tmp_path / "hotfix"
    cli("export", "ds@main", str(hotfix))
    cli("branch", "ds@hotfix", "ds@main")
    (src / "labels.csv").write_text(LABELS + "3,bird\n")
    cli("import", "ds@dev", str(src), "-m", "a bird")
    dev = heads(home)["heads/dev"]
    res = cli("promote", "ds@dev", "--to", "main", "--dry-run", "--json")
    doc = json.loads(res.stdout)
    assert doc["status"] == "would fast-forward" and doc["commit"] == ""
    assert heads(home)["heads/main"] != dev
    res = cli("promote", "ds@dev", "--to", "main", "--json")
    doc = json.loads(res.stdout)
    assert doc["status"] == "fast-forward" and doc["required"] == ["schema", "lint"]
    assert {c["name"]: c["status"] for c in doc["checks"]} == {"schema": "passed", "lint": "passed"}
    assert heads(home)["heads/main"] == dev
    (rec,) = json.loads(cli("checks", "ds@main", "--json").stdout)["promotions"]
    assert rec["branch"] == "main" and rec["via"] == "promote"
    assert sorted(c["name"] for c in rec["checks"]) == ["lint", "schema"]
    # Not a fast-forward: the merge of hotfix into main is the candidate, checked, then made.
    (hotfix / "notes.txt").write_text("fixed")
    cli("import", "ds@hotfix", str(hotfix), "-m", "hotfix")
    res = cli("promote", "ds@hotfix", "--to", "main", "--json")
    doc = json.loads(res.stdout)
    assert doc["status"] == "merged"
    main = api.show(home, "ds@main")
    assert len(main.parents) == 2
    listed = cli("checks", "ds@main").stdout
    assert "main\tpromote" in listed and "check schema: passed" in listed


def test_merges_only_branch_takes_checked_merges(cli: Cli, tmp_path: Path, home: Path) -> None:
    src = setup(cli, tmp_path)
    (src / "bad.txt").write_text("oops")
    cli("import", "ds@dev", str(src), "-m", "bad")
    before = heads(home)["heads/staging"]
    res = cli("merge", "ds@dev", "--into", "ds@staging", "--no-verify", code=34)
    assert "'lint' failed" in res.stderr  # --no-verify never skips a required check
    assert heads(home)["heads/staging"] == before
    (src / "bad.txt").unlink()
    cli("import", "ds@dev", str(src), "-m", "fixed")
    cli("merge", "ds@dev", "--into", "ds@staging")
    assert heads(home)["heads/staging"] == heads(home)["heads/dev"]
    (rec,) = api.checks(home, "ds@staging").promotions
    assert rec.via == "merge" and [c.name for c in rec.checks] == ["lint"]


def test_required_check_missing_from_the_hooks_file(cli: Cli, tmp_path: Path, home: Path) -> None:
    toml = '[[branch]]\npattern = "main"\nprotected = true\nrequired_checks = ["nope"]\n'
    src = write_tree(tmp_path / "src", {".mlgitfs/hooks.toml": toml, "a.txt": "a"})
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    res = cli("import", "ds", str(src), "-m", "v1", code=2)
    assert "required check 'nope' is not a [[hook]] or [[check]]" in res.stderr
    assert heads(home) == {}


def test_push_of_a_protected_branch_needs_a_promotion(
    cli: Cli, tmp_path: Path, home: Path, remote: Remote
) -> None:
    src = setup(cli, tmp_path)
    cli("remote", "add", "origin", remote.url, *remote.add_args())
    cli("push", "ds@dev")  # unprotected
    keys = remote.remote_keys()
    res = cli("push", "ds", code=36)  # main's first version was imported, never promoted
    assert "has no valid promotion attestation" in res.stderr and "nothing was sent" in res.stderr
    assert remote.remote_keys() == keys
    (src / "c.txt").write_text("c")
    cli("import", "ds@dev", str(src), "-m", "c")
    cli("promote", "ds@dev", "--to", "main")
    cli("push", "ds")
    assert api.checks(home, "ds@main").promotions[0].branch == "main"


def test_pull_fast_forwards_a_protected_branch_but_never_merges_it(
    cli: Cli, tmp_path: Path, home: Path, remote: Remote
) -> None:
    src = setup(cli, tmp_path)
    cli("remote", "add", "origin", remote.url, *remote.add_args())
    cli("promote", "ds@main", "--to", "main")  # records main's first version: pushable
    cli("push", "ds")
    other = Cli(tmp_path / "other-store")
    other("clone", remote.url, "ds", *remote.add_args())
    other("key", "generate", "--name", "other")
    (src / "a.txt").write_text("a")
    cli("import", "ds@dev", str(src), "-m", "a")
    cli("promote", "ds@dev", "--to", "main")
    cli("push", "ds")
    other("pull", "ds")  # a fast-forward to the team's version moves the protected branch
    work = tmp_path / "other-work"
    other("export", "ds@main", str(work))
    (work / "b.txt").write_text("b")
    other("branch", "ds@mine", "ds@main")
    other("import", "ds@mine", str(work), "-m", "b")
    other("promote", "ds@mine", "--to", "main")
    (src / "c.txt").write_text("c")
    cli("import", "ds@dev", str(src), "-m", "c")
    cli("promote", "ds@dev", "--to", "main")
    cli("push", "ds")
    store = api.open_store(other.home)
    with store.env.read() as txn:
        mine = db.get_ref(txn, "ds", "heads/main")
    res = other("pull", "ds", code=36)  # diverged: the merge commit was never checked
    assert "a merge is refused" in res.stderr
    with store.env.read() as txn:
        assert db.get_ref(txn, "ds", "heads/main") == mine
