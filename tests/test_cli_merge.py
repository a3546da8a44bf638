"""merge, merge-base, reset, revert and cherry-pick through the CLI, ending fsck-clean."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlgitfs import api
from tests.conftest import Cli, write_tree

BASE = {
    "train/a.jpg": b"A" * 3000,
    "train/b.jpg": b"B" * 3000,
    "labels.csv": "id,label\n1,cat\n",
    "README": "hello\n",
    "latest": "->labels.csv",
}


@pytest.fixture
def repo(cli: Cli, tmp_path: Path) -> Path:
    """ds@main with BASE, and ds@feature branched from it."""
    src = write_tree(tmp_path / "base", BASE)  # type: ignore[arg-type]
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "base")
    cli("branch", "ds@feature")
    return src


def commit_on(cli: Cli, tmp: Path, branch: str, edit: dict[str, bytes | str | None]) -> str:
    """Export the branch, apply `edit` (None deletes; a str starting '->' is a symlink), and
    import it back as a new commit; returns the new head."""
    work = tmp / f"work-{branch}-{len(list(tmp.iterdir()))}"
    cli("export", f"ds@{branch}", str(work))
    for path, value in edit.items():
        p = work / path
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p)
        if value is not None:
            write_tree(work, {path: value})
    cli("import", f"ds@{branch}", str(work), "-m", f"edit {branch}")
    return api.show(cli.home, f"ds@{branch}").id


def cat(cli: Cli, spec: str) -> bytes:
    return cli("cat", spec).stdout_bytes


def test_fast_forward_merge_base_and_up_to_date(cli: Cli, repo: Path, tmp_path: Path) -> None:
    base = api.show(cli.home, "ds@main").id
    head = commit_on(cli, tmp_path, "feature", {"new.txt": b"new"})
    assert cli("merge-base", "ds@main", "ds@feature").stdout.strip() == base
    out = cli("merge", "ds@feature", "--into", "ds@main")
    assert "fast-forward" in out.stderr
    assert api.show(cli.home, "ds@main").id == head
    r = json.loads(cli("merge", "ds@feature", "--json").stdout)
    assert r["status"] == "up to date" and r["commit"] == ""


def test_diverged_merge_follows_a_rename(cli: Cli, repo: Path, tmp_path: Path) -> None:
    ours = commit_on(cli, tmp_path, "main", {"train/a.jpg": None, "images/a.jpg": b"A" * 3000})
    theirs = commit_on(cli, tmp_path, "feature", {"train/a.jpg": b"edited", "c.txt": b"c"})
    dry = json.loads(cli("merge", "ds@feature", "--dry-run", "--json").stdout)
    assert dry["status"] == "merged" and dry["commit"] == "" and dry["dry_run"]
    assert api.show(cli.home, "ds@main").id == ours
    r = json.loads(cli("merge", "ds@feature", "-m", "combine", "--json").stdout)
    assert r["renames"] == [["train/a.jpg", "images/a.jpg"]]
    merged = api.show(cli.home, "ds@main")
    assert merged.id == r["commit"] and merged.parents == (ours, theirs)
    assert merged.message == "combine"
    assert cat(cli, "ds:images/a.jpg") == b"edited" and cat(cli, "ds:c.txt") == b"c"
    cli("cat", "ds:train/a.jpg", code=4)
    # the log walks both parents; merge-base of the merge and its second parent is that parent
    assert {c["id"] for c in json.loads(cli("log", "ds", "--json").stdout)} >= {ours, theirs}
    assert cli("merge-base", "ds@main", "ds@feature").stdout.strip() == theirs


def test_conflicts_change_nothing_and_are_listed(cli: Cli, repo: Path, tmp_path: Path) -> None:
    ours = commit_on(cli, tmp_path, "main", {"README": "ours\n", "latest": "->README"})
    commit_on(cli, tmp_path, "feature", {"README": "theirs!\n", "latest": "->train"})
    res = cli("merge", "ds@feature", code=23)
    assert "2 conflict(s)" in res.stderr and "nothing was changed" in res.stderr
    assert "C  README  (modify/modify)" in res.stdout and "C  latest  (symlink)" in res.stdout
    data = json.loads(cli("merge", "ds@feature", "--json", code=23).stdout)
    readme = next(c for c in data["conflicts"] if c["path"] == "README")
    assert (readme["base"]["size"], readme["ours"]["size"], readme["theirs"]["size"]) == (6, 5, 8)
    assert api.show(cli.home, "ds@main").id == ours
    cli("merge", "ds@feature", "--ff-only", code=12)
    r = json.loads(cli("merge", "ds@feature", "--strategy", "theirs", "--json").stdout)
    assert {(i["path"], i["strategy"]) for i in r["resolved"]} == {
        ("README", "theirs"), ("latest", "theirs")
    }  # fmt: skip
    assert cat(cli, "ds:README") == b"theirs!\n"


def test_rules_file(cli: Cli, repo: Path, tmp_path: Path) -> None:
    rules = (
        '[[rule]]\npath = "*.csv"\nstrategy = "ours"\n\n'
        '[[rule]]\npath = "train/**"\nstrategy = "union"\n'
    )
    commit_on(cli, tmp_path, "main", {".mlgitfs/merge.toml": rules})
    cli("branch", "ds@other", "ds@main")
    commit_on(cli, tmp_path, "main", {"labels.csv": "id,label\n1,dog\n", "train/b.jpg": None})
    commit_on(cli, tmp_path, "other", {"labels.csv": "id,label\n1,cow\n", "train/b.jpg": b"b2"})
    r = json.loads(cli("merge", "ds@other", "--json").stdout)
    assert {(i["path"], i["kind"], i["strategy"]) for i in r["resolved"]} == {
        ("labels.csv", "modify/modify", "ours"), ("train/b.jpg", "modify/delete", "union")
    }  # fmt: skip
    assert cat(cli, "ds:labels.csv") == b"id,label\n1,dog\n"
    assert cat(cli, "ds:train/b.jpg") == b"b2"


def test_bad_rules_refused(cli: Cli, repo: Path, tmp_path: Path) -> None:
    commit_on(
        cli, tmp_path, "main", {".mlgitfs/merge.toml": '[[rule]]\npath="x"\nstrategy="best"\n'}
    )
    commit_on(cli, tmp_path, "main", {"README": "ours\n"})
    head = api.show(cli.home, "ds@main").id
    commit_on(cli, tmp_path, "feature", {"README": "theirs\n"})
    res = cli("merge", "ds@feature", code=2)
    assert "rule 1: unknown strategy 'best'" in res.stderr
    assert api.show(cli.home, "ds@main").id == head


def test_no_ff_and_unrelated(cli: Cli, repo: Path, tmp_path: Path) -> None:
    head = commit_on(cli, tmp_path, "feature", {"x": b"x"})
    r = json.loads(cli("merge", "ds@feature", "--no-ff", "--json").stdout)
    assert r["status"] == "merged" and api.show(cli.home, "ds").parents[1] == head
    cli("merge", "ds@feature", "--ff-only", "--no-ff", code=2)
    src = write_tree(tmp_path / "other", {"o": b"o"})
    cli("import", "ds@orphan", str(src), "-m", "unrelated")
    assert "no common history" in cli("merge", "ds@orphan", code=2).stderr
    cli("merge-base", "ds@main", "ds@orphan", code=1)


def test_reset_revert_cherry_pick(cli: Cli, repo: Path, tmp_path: Path) -> None:
    base = api.show(cli.home, "ds@main").id
    one = commit_on(cli, tmp_path, "feature", {"one.txt": b"1"})
    commit_on(cli, tmp_path, "feature", {"two.txt": b"2", "README": "changed\n"})
    # reset would drop feature's commits: refused without --force
    res = cli("reset", "ds@feature", "ds@main", code=22)
    assert "no other branch, tag or remote holds" in res.stderr
    cli("tag", "ds@keep", "ds@feature")
    r = json.loads(cli("reset", "ds@feature", f"ds@{one[:12]}", "--json").stdout)
    assert r["new"] == one and not r["dropped"]
    cli("reset", "ds@feature", "ds@keep")
    # cherry-pick the tip onto main: one.txt is not brought along
    cli("cherry-pick", "ds@feature", "--into", "ds@main")
    assert cat(cli, "ds@main:two.txt") == b"2" and cat(cli, "ds@main:README") == b"changed\n"
    cli("cat", "ds@main:one.txt", code=4)
    assert api.show(cli.home, "ds@main").parents == (base,)
    # revert it again
    cli("revert", "ds@main")
    cli("cat", "ds@main:two.txt", code=4)
    assert cat(cli, "ds@main:README") == b"hello\n"
    cli("revert", f"ds@{base[:12]}", code=2)  # a root commit
    cli("reset", "ds@main", "ds@keep", "--force")
    assert api.show(cli.home, "ds@main").id == api.show(cli.home, "ds@keep").id


def test_rows_rule(cli: Cli, repo: Path, tmp_path: Path) -> None:
    """A `rows` rule merges a labels table by key; a cell changed two ways is a conflict."""
    rules = '[[rule]]\npath = "*.csv"\nstrategy = "rows"\nkey = ["id"]\n'
    commit_on(
        cli,
        tmp_path,
        "main",
        {".mlgitfs/merge.toml": rules, "labels.csv": "id,label\n1,cat\n2,dog\n"},
    )
    cli("branch", "ds@other", "ds@main")
    commit_on(cli, tmp_path, "main", {"labels.csv": "id,label\n1,lion\n2,dog\n"})
    commit_on(cli, tmp_path, "other", {"labels.csv": "id,label\n1,cat\n2,wolf\n3,emu\n"})
    r = json.loads(cli("merge", "ds@other", "--json").stdout)
    assert [(i["path"], i["strategy"]) for i in r["resolved"]] == [("labels.csv", "rows")]
    assert cat(cli, "ds:labels.csv") == b"id,label\n1,lion\n2,wolf\n3,emu\n"
    # the same cell changed two ways: a rows conflict, nothing changes
    cli("branch", "ds@third", "ds@other~1")  # where row 1 was still "cat"
    commit_on(cli, tmp_path, "third", {"labels.csv": "id,label\n1,tiger\n2,dog\n"})
    merged = api.show(cli.home, "ds@main").id
    data = json.loads(cli("merge", "ds@third", "--json", code=23).stdout)
    assert [(c["path"], c["kind"]) for c in data["conflicts"]] == [("labels.csv", "rows")]
    assert api.show(cli.home, "ds@main").id == merged
