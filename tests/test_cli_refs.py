"""Revspecs that mean what they say, and safe deletion of branches and tags, through the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlgitfs import api
from tests.conftest import Cli, set_mtimes, write_tree
from tests.wmount import Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason

__all__ = ["mounter"]
OLD = 1_600_000_000_000_000_000
needs_fuse = pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason()))


@pytest.fixture
def ds(tmp_path: Path, cli: Cli) -> Path:
    """ds with two commits on main (v1 then v2)."""
    src = write_tree(tmp_path / "src", {"labels.csv": "x,y\n", "README": "hello\n"})
    set_mtimes(src, OLD)
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "v1")
    (src / "labels.csv").write_text("x,y\n1,2\n")
    cli("import", "ds", str(src), "-m", "v2")
    return src


def _id(cli: Cli, revspec: str) -> str:
    return str(json.loads(cli("show", revspec, "--json").stdout)["id"])


def test_tilde_zero_names_a_commit(cli: Cli, ds: Path) -> None:
    assert _id(cli, "ds~0") == _id(cli, "ds@main")
    assert _id(cli, "ds~1") != _id(cli, "ds~0")
    assert json.loads(cli("log", "ds~0", "--json").stdout)[0]["message"] == "v2"


@needs_fuse
def test_tilde_zero_mounts_read_only(home: Path, cli: Cli, ds: Path, mounter: Mounter) -> None:
    api.close_store(home)
    a = mounter("ds@main~0", "a")
    b = mounter("ds@main~0", "b")  # a commit: any number of read-only mounts
    with pytest.raises(OSError):
        (a / "new.txt").write_text("x")
    assert (b / "labels.csv").read_text() == "x,y\n1,2\n"
    listed = json.loads(mlgitfs(home, "mounts", "--json").stdout)
    assert [m["read_only"] for m in listed] == [True, True]
    assert {m["revspec"] for m in listed} == {"ds@main~0"}


def test_tilde_overflow_names_the_right_n(cli: Cli, ds: Path) -> None:
    err = cli("log", "ds~5", code=4).stderr
    assert "ds@main~5" in err and "has 2 commits" in err and "~1 is the oldest" in err
    assert "~2:" not in err


def test_branch_and_tag_of_one_name_refused(cli: Cli, ds: Path) -> None:
    cli("tag", "ds@v1", "ds~1")
    err = cli("branch", "ds@v1", code=8).stderr
    assert "has a tag named 'v1'" in err and "ambiguous" in err
    err = cli("tag", "ds@main", code=8).stderr
    assert "has a branch named 'main'" in err
    # import into REPO@NAME where NAME is a tag: refused before anything is read
    before = cli("branch", "ds", "--json").stdout
    err = cli("import", "ds@v1", str(ds), "-m", "x", code=8).stderr
    assert "tag named 'v1'" in err
    assert cli("branch", "ds", "--json").stdout == before
    cli("import", "ds@tags/v1", str(ds), "-m", "x", code=17)
    # the qualifiers are reserved as the first part of new names
    cli("branch", "ds@heads/x", code=6)
    cli("tag", "ds@tags/x", code=6)
    cli("branch", "ds@remotes/x", code=6)


def test_qualifiers_resolve_an_old_ambiguity(home: Path, cli: Cli, ds: Path) -> None:
    from mlgitfs.meta import db

    # A store from before the guard may hold a branch and a tag of one name.
    store = api.open_store(home)
    v1 = bytes.fromhex(_id(cli, "ds~1"))
    with store.env.write() as txn:
        db.set_ref(txn, "ds", "tags/main", v1, None, "old version")  # type: ignore[arg-type]
    err = cli("log", "ds@main", code=5).stderr
    assert "ds@heads/main" in err and "ds@tags/main" in err
    assert cli("cat", "ds@heads/main:labels.csv").stdout == "x,y\n1,2\n"
    assert cli("cat", "ds@tags/main:labels.csv").stdout == "x,y\n"
    cli("tag", "-d", "ds@main")
    assert cli("cat", "ds@main:labels.csv").stdout == "x,y\n1,2\n"


def test_at_ref_means_the_implied_repo(tmp_path: Path, cli: Cli, ds: Path) -> None:
    cli("tag", "ds@v1", "@main~1")
    assert _id(cli, "ds@v1") == _id(cli, "ds~1")
    cli("branch", "ds@old", "@v1")
    assert _id(cli, "ds@old") == _id(cli, "ds~1")
    cli("init", "lbl", "--kind", "labels", "--mutability", "mutable")
    out = tmp_path / "l"
    write_tree(out, {"l.csv": "a"})
    cli("import", "lbl", str(out), "-m", "l1")
    (out / "l.csv").write_text("b")
    cli("import", "lbl", str(out), "-m", "l2", "--input", "@main", "--input", "ds@v1")
    inputs = json.loads(cli("show", "lbl", "--json").stdout)["inputs"]
    assert inputs == [["ds", _id(cli, "ds@v1")], ["lbl", _id(cli, "lbl~1")]]
    # where no repo is implied, @REF is refused
    assert "name the repo" in cli("log", "@main", code=17).stderr
    cli("tag", "ds@v2", "lbl@main", code=2)  # a tag of ds names a commit of ds


def test_tag_delete(cli: Cli, ds: Path) -> None:
    cli("tag", "ds@v1", "ds~1")
    assert "deleted tag v1" in cli("tag", "-d", "ds@v1").stderr
    cli("tag", "-d", "ds@v1", code=4)
    assert json.loads(cli("tag", "ds", "--json").stdout) == []
    cli("tag", "ds@v1")  # the name is free again


def test_branch_delete_guards(tmp_path: Path, cli: Cli, ds: Path) -> None:
    err = cli("branch", "-d", "ds@main", code=22).stderr
    assert "default branch" in err and "--force" in err
    cli("branch", "ds@same")
    assert "deleted branch same" in cli("branch", "-d", "ds@same").stderr  # main holds it
    cli("branch", "ds@dev")
    (ds / "new.txt").write_text("on dev\n")
    cli("import", "ds@dev", str(ds), "-m", "dev work")
    err = cli("branch", "-d", "ds@dev", code=22).stderr
    assert "holds commits that no other branch, tag or remote holds" in err
    cli("tag", "ds@keep", "ds@dev")  # a tag holds the head now
    cli("branch", "-d", "ds@dev")
    cli("branch", "ds@dev2", "ds@keep")
    (ds / "new.txt").write_text("more\n")
    cli("import", "ds@dev2", str(ds), "-m", "pushed")
    remote = tmp_path / "remote"
    cli("remote", "add", "origin", remote.as_uri())
    cli("push", "ds@dev2")  # the remote-tracking ref holds it now
    cli("branch", "-d", "ds@dev2")
    cli("branch", "-d", "ds@main", "--force")
    cli("log", "ds@main", code=4)
    cli("branch", "ds@x", "--force", code=2)


@needs_fuse
def test_branch_delete_under_a_mount_and_with_changes(
    home: Path, cli: Cli, ds: Path, mounter: Mounter
) -> None:
    cli("branch", "ds@dev")
    api.close_store(home)
    mp = mounter("ds@dev", "dev")
    (mp / "labels.csv").write_text("edited\n")
    err = mlgitfs(home, "branch", "-d", "ds@dev", "--force", check=False)
    assert err.returncode == 11 and "mounted writable" in err.stderr
    mlgitfs(home, "unmount", str(mp))
    # unmounted, the checkout still holds uncommitted changes
    err = mlgitfs(home, "branch", "-d", "ds@dev", check=False)
    assert err.returncode == 22 and "uncommitted changes" in err.stderr
    out = mlgitfs(home, "branch", "-d", "ds@dev", "--force")
    assert "its checkout with it" in out.stderr
    overlays = home / "overlays"
    assert not overlays.exists() or os.listdir(overlays) == []
    # a new branch of the same name starts clean: no old overlay comes back
    mlgitfs(home, "branch", "ds@dev")
    mp = mounter("ds@dev", "dev2")
    assert (mp / "labels.csv").read_text() == "x,y\n1,2\n"
    st = json.loads(mlgitfs(home, "status", str(mp), "--json").stdout)
    assert st["changes"] == []


@needs_fuse
def test_restore_source_forms_and_missing_paths(
    home: Path, cli: Cli, ds: Path, mounter: Mounter
) -> None:
    cli("tag", "ds@v1", "ds~1")
    api.close_store(home)
    mp = mounter("ds@main", "m")
    # a bare word is a repo, as everywhere; the mount's repo is implied only by @REF
    err = mlgitfs(home, "restore", str(mp / "labels.csv"), "--source", "v1", check=False)
    assert err.returncode == 2 and "write @v1 or ds@v1" in err.stderr
    mlgitfs(home, "restore", str(mp / "labels.csv"), "--source", "@v1")
    assert (mp / "labels.csv").read_text() == "x,y\n"
    mlgitfs(home, "restore", str(mp / "labels.csv"), "--source", "ds@main~0")
    assert (mp / "labels.csv").read_text() == "x,y\n1,2\n"
    # a path in neither the source nor the mount: an error, and nothing changes
    err = mlgitfs(home, "restore", str(mp / "nonexistent.txt"), str(mp / "labels.csv"),
                  "--source", "@v1", check=False)  # fmt: skip
    assert err.returncode == 4 and "nonexistent.txt" in err.stderr
    assert (mp / "labels.csv").read_text() == "x,y\n1,2\n"
    st = json.loads(mlgitfs(home, "status", str(mp), "--json").stdout)
    assert st["changes"] == []
