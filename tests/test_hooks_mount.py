"""Hooks on commits from a writable mount: the mount's daemon runs them; results and refusals
cross the control protocol typed; a refusal keeps the overlay and moves no ref."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.errors import BranchProtected, HookRefused
from tests.conftest import write_tree
from tests.test_hooks import EDITS, MODES, head, hooks_toml, runs
from tests.wmount import OLD, Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason())),
]
__all__ = ["mounter"]

TABLE = """
[[check]]
name = "labels-schema"
type = "table"
path = "labels.csv"
columns = { id = "int", label = "str" }
key = ["id"]
"""


def make(home: Path, tmp_path: Path, toml: str) -> None:
    mlgitfs(home, "init", "ds", "--kind", "dataset", "--mutability", "mutable")
    src = write_tree(
        tmp_path / "src",
        {
            ".mlgitfs/hooks.toml": toml,
            "a.txt": "one",
            "b.txt": "two",
            "labels.csv": "id,label\n1,cat\n2,dog\n",
        },
        mtime_ns=OLD,
    )
    mlgitfs(home, "import", "ds@main", str(src), "-m", "first")


def status_paths(home: Path, mp: Path) -> list[str]:
    out = mlgitfs(home, "status", str(mp), "--json")
    return sorted(c["path"] for c in json.loads(out.stdout)["changes"])


@pytest.mark.parametrize("mode", MODES)
def test_mount_commit_runs_pre_commit_hooks(
    home: Path, tmp_path: Path, mounter: Mounter, mode: str
) -> None:
    make(home, tmp_path, hooks_toml(tmp_path, mode, '["pre-commit"]', timeout=2))
    mp = mounter("ds@main")
    before = head(home)
    (mp / "a.txt").write_text("changed in the mount")
    (mp / "c.txt").write_text("new in the mount")
    os.unlink(mp / "b.txt")
    out = mlgitfs(home, "commit", str(mp), "-m", "v2", check=False)
    if mode == "pass":
        assert out.returncode == 0, out.stderr
        assert "pre-commit hook probe: passed" in out.stderr
        assert head(home) != before
        assert status_paths(home, mp) == []
    else:
        assert out.returncode == 34, out.stderr
        assert "nothing was changed" in out.stderr
        assert head(home) == before
        # The overlay is kept: the mount still shows and reports the changes.
        assert (mp / "a.txt").read_text() == "changed in the mount"
        assert status_paths(home, mp) == ["a.txt", "b.txt", "c.txt"]
    (run,) = runs(tmp_path)
    stdin = run["stdin"]
    assert isinstance(stdin, dict)
    assert sorted((c["change"], c["path"]) for c in stdin["changes"]) == EDITS
    assert run["seen"] == {"a.txt": "changed in the mount", "c.txt": "new in the mount"}
    assert run["wrote"] is False
    if mode == "fail":  # and after fixing nothing, --no-verify where allowed commits
        mlgitfs(home, "commit", str(mp), "-m", "v2", "--no-verify")
        assert head(home) != before


def test_mount_commit_refusal_is_typed_over_the_protocol(
    home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    make(home, tmp_path, TABLE)
    mp = mounter("ds@main")
    with open(mp / "labels.csv", "a") as f:
        f.write("x,bird\n2,again\n")
    with pytest.raises(HookRefused) as info:
        api.commit(home, mp, "bad labels")
    err = info.value
    assert err.exit_code == 34 and err.hook == "labels-schema" and err.event == "pre-commit"
    assert "id = 'x' is not int" in err.output and "key (id) = (2) is not unique" in err.output
    assert status_paths(home, mp) == ["labels.csv"]
    with open(mp / "labels.csv", "w") as f:
        f.write("id,label\n1,cat\n2,dog\n3,bird\n")
    r = api.commit(home, mp, "good labels")
    assert r.commit is not None
    assert [(h.name, h.kind, h.status, h.cached) for h in r.hooks] == [
        ("labels-schema", "check", "passed", False)
    ]


def test_mount_commit_post_commit_hook(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    make(home, tmp_path, hooks_toml(tmp_path, "fail", '["post-commit"]'))
    mp = mounter("ds@main")
    (mp / "a.txt").write_text("after")
    r = api.commit(home, mp, "v2")
    assert r.commit is not None and head(home) == bytes.fromhex(r.commit.id)
    assert [(h.event, h.status, h.code) for h in r.hooks] == [("post-commit", "failed", 3)]
    (run,) = runs(tmp_path)
    env = run["env"]
    assert isinstance(env, dict) and env["MLGITFS_CANDIDATE"] == r.commit.id


def test_mount_commit_on_a_protected_branch_is_refused(
    home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    make(home, tmp_path, TABLE + '[[branch]]\npattern = "main"\nprotected = true\n')
    mp = mounter("ds@main")
    before, log = head(home), api.reflog_show(home, "ds@main")
    (mp / "a.txt").write_text("changed in the mount")
    with pytest.raises(BranchProtected) as info:
        api.commit(home, mp, "direct")  # the refusal crosses the protocol as its own class
    assert info.value.exit_code == 36 and info.value.rule == "main"
    out = mlgitfs(home, "commit", str(mp), "-m", "direct", check=False)
    assert out.returncode == 36, out.stderr
    assert "a commit in a writable mount is refused" in out.stderr
    assert head(home) == before and api.reflog_show(home, "ds@main") == log
    assert (mp / "a.txt").read_text() == "changed in the mount"  # the overlay is kept
    assert status_paths(home, mp) == ["a.txt"]


def test_mount_commit_on_a_branch_with_required_checks_is_attested(
    home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    # The daemon's gate attests its passes with the store's key (docs/governance.md).
    rule = '[[branch]]\npattern = "main"\nrequired_checks = ["labels-schema"]\n'
    make(home, tmp_path, TABLE + rule)
    mlgitfs(home, "key", "generate", "--name", "me")
    mp = mounter("ds@main")
    with open(mp / "labels.csv", "a") as f:
        f.write("3,bird\n")
    r = api.commit(home, mp, "a bird")
    assert r.commit is not None
    found = api.checks(home, "ds@main", verify=True)
    assert found.commit == r.commit.id
    assert [(a.kind, a.name, a.event, a.valid) for a in found.attestations] == [
        ("check", "labels-schema", "pre-commit", True)
    ]
