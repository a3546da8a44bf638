"""`import` applies the repo's mutability as a mount's commit does, and refuses a branch whose
writable mount holds uncommitted work; a refusal changes nothing (ref, reflog, log)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlgitfs import api
from tests.conftest import Cli, write_tree
from tests.wmount import Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason

__all__ = ["mounter"]
needs_fuse = pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason()))

FILES = {"labels.csv": "id,label\n1,cat\n", "img/a.png": "a", "img/b.png": "b", "keep.txt": "k"}


def setup(tmp_path: Path, cli: Cli, mutability: str) -> Path:
    src = write_tree(tmp_path / "src", FILES)
    cli("init", "ds", "--kind", "dataset", "--mutability", mutability)
    cli("import", "ds", str(src), "-m", "v1")
    return src


def state(cli: Cli) -> tuple[str, str, str]:
    """What a refused import must leave as it was: the branch, its reflog and the log."""
    return (
        cli("branch", "ds", "--json").stdout,
        cli("reflog", "ds@main", "--json").stdout,
        cli("log", "ds@main", "--json").stdout,
    )


def test_strict_refuses_every_changed_committed_file_and_changes_nothing(
    tmp_path: Path, cli: Cli
) -> None:
    src = setup(tmp_path, cli, "strict")
    before = state(cli)
    (src / "labels.csv").write_text("id,label\n1,dog\n")
    (src / "img/a.png").write_text("A")
    (src / "new.txt").write_text("new")
    err = cli("import", "ds", str(src), "-m", "v2", code=15).stderr
    assert "import refused for 2 paths" in err
    assert "ds is strict: labels.csv is committed" in err and "img/a.png" in err
    assert "add a file under a new name" in err and "nothing was imported" in err
    assert state(cli) == before
    # --unlock is no way out under strict
    err = cli("import", "ds", str(src), "-m", "v2", "--unlock", "*", code=15).stderr
    assert "ds is strict" in err and "--unlock" in err
    assert state(cli) == before


def test_strict_accepts_additions_deletions_and_chmod(tmp_path: Path, cli: Cli) -> None:
    src = setup(tmp_path, cli, "strict")
    (src / "img/b.png").unlink()
    (src / "keep.txt").chmod(0o600)
    (src / "img/c.png").write_text("c")
    cli("import", "ds", str(src), "-m", "v2")
    diff = json.loads(cli("diff", "ds@main~1", "ds@main", "--json").stdout)
    changes = {d["path"]: d["change"] for d in diff["items"]}
    assert changes == {"img/b.png": "deleted", "img/c.png": "added", "keep.txt": "modified"}


def test_flexible_refuses_until_unlock_names_the_path(tmp_path: Path, cli: Cli) -> None:
    src = setup(tmp_path, cli, "flexible")
    before = state(cli)
    (src / "labels.csv").write_text("id,label\n1,dog\n")
    (src / "img/a.png").write_text("A")
    err = cli("import", "ds", str(src), "-m", "v2", code=15).stderr
    assert "ds is flexible: labels.csv is committed" in err
    assert "`--unlock labels.csv`" in err and "`--unlock img/a.png`" in err
    assert state(cli) == before
    # one unlocked of two: still refused, for the other only
    err = cli("import", "ds", str(src), "-m", "v2", "--unlock", "labels.csv", code=15).stderr
    assert "img/a.png" in err and "labels.csv" not in err
    assert state(cli) == before
    cli("import", "ds", str(src), "-m", "v2", "--unlock", "labels.csv", "--unlock", "img/*.png")
    assert [c["message"] for c in json.loads(cli("log", "ds@main", "--json").stdout)] == [
        "v2",
        "v1",
    ]
    assert cli("cat", "ds@main:labels.csv").stdout == "id,label\n1,dog\n"


def test_mutable_imports_changed_content(tmp_path: Path, cli: Cli) -> None:
    src = setup(tmp_path, cli, "mutable")
    (src / "labels.csv").write_text("id,label\n1,dog\n")
    cli("import", "ds", str(src), "-m", "v2")
    assert cli("cat", "ds@main:labels.csv").stdout == "id,label\n1,dog\n"


def test_a_long_refusal_lists_twenty_paths_and_counts_the_rest(tmp_path: Path, cli: Cli) -> None:
    src = write_tree(tmp_path / "src", {f"f{i:02d}": "old" for i in range(25)})
    cli("init", "ds", "--kind", "dataset", "--mutability", "strict")
    cli("import", "ds", str(src), "-m", "v1")
    for i in range(25):
        (src / f"f{i:02d}").write_text("new")
    err = cli("import", "ds", str(src), "-m", "v2", code=15).stderr
    assert "import refused for 25 paths" in err and "... and 5 more" in err
    assert err.count("is committed") == 20


@needs_fuse
def test_a_branch_with_uncommitted_mount_work_is_refused(
    tmp_path: Path, home: Path, mounter: Mounter
) -> None:
    src = write_tree(tmp_path / "src", FILES)
    mlgitfs(home, "init", "ds", "--kind", "dataset", "--mutability", "mutable")
    mlgitfs(home, "import", "ds", str(src), "-m", "v1")
    api.close_store(home)
    mp = mounter("ds@main", "main")
    (mp / "keep.txt").write_text("edited in the mount\n")
    (src / "new.txt").write_text("new")
    refused = mlgitfs(home, "import", "ds", str(src), "-m", "v2", check=False)
    assert refused.returncode == 22, refused.stderr
    assert "uncommitted changes" in refused.stderr and "nothing was committed" in refused.stderr
    log = json.loads(mlgitfs(home, "log", "ds@main", "--json").stdout)
    assert [c["message"] for c in log] == ["v1"]
    mlgitfs(home, "commit", str(mp), "-m", "mount work")
    mlgitfs(home, "import", "ds", str(src), "-m", "v2")  # committed: imports go on
    log = json.loads(mlgitfs(home, "log", "ds@main", "--json").stdout)
    assert [c["message"] for c in log] == ["v2", "mount work", "v1"]
    mlgitfs(home, "unmount", str(mp))
