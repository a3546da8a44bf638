"""A writable branch beside read-only versions in one mount (`mount ds MNT --write dev`), for
real: written by sh, cp, mv and mkdir, walked by find, read by sha256sum and python, committed
and checked with the CLI from a path inside the mount; everything else refused with EROFS."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.daemon import registry
from mlgitfs.errors import MountError, UsageError
from mlgitfs.vfs.inodes import RANGE_BITS
from tests.conftest import write_tree
from tests.test_inode_space import FILES
from tests.test_mount import sha_tree
from tests.wmount import Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason

__all__ = ["mounter"]  # a fixture

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason())),
]


@pytest.fixture
def repo(home: Path, tmp_path: Path) -> None:
    """ds (flexible): tag v1, branch dev at v1, main one version later."""
    api.init(home, "ds", "dataset", "flexible")
    api.import_dir(home, "ds", write_tree(tmp_path / "s1", FILES), "v1")
    api.tag_create(home, "ds@v1")
    api.import_dir(home, "ds", write_tree(tmp_path / "s2", FILES | {"g.txt": "g\n"}), "v2")
    api.branch_create(home, "ds@dev", "@v1")


def _find(root: Path) -> dict[str, int]:
    """path → st_ino of everything under root, as find(1) walks it."""
    out = subprocess.run(["find", str(root), "-mindepth", "1", "-printf", "%i %P\n"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    pairs = (line.split(" ", 1) for line in out.stdout.splitlines())
    return {path: int(ino) for ino, path in pairs}


def _unique(found: dict[str, int]) -> None:
    """No two paths share an inode (there are no hard links in a mount), and each range of
    numbers belongs to one top directory (@dev, @main, @v1): parts never mix."""
    assert len(set(found.values())) == len(found), found
    owners: dict[int, set[str]] = defaultdict(set)
    for path, ino in found.items():
        owners[ino >> RANGE_BITS].add(path.split("/", 1)[0])
    assert all(len(tops) == 1 for tops in owners.values()), owners
    assert 0 not in owners  # range 0: the mount's own directories (the root: inode 1)


def _status(home: Path, where: Path, kinds: tuple[str, ...] = ()) -> set[tuple[str, str]]:
    """(change, path) of what `mlgitfs status WHERE` lists (of these kinds only, if named)."""
    st = json.loads(mlgitfs(home, "status", str(where), "--json").stdout)
    return {(c["change"], c["path"]) for c in st["changes"] if not kinds or c["kind"] in kinds}


def _refused(cmd: list[str]) -> str:
    """Run a command the mount must refuse; its stderr."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode != 0, cmd
    return proc.stderr


def test_a_writable_branch_beside_read_only_versions(
    home: Path, repo: None, mounter: Mounter, tmp_path: Path
) -> None:
    mp = mounter("ds", "mnt", "--write", "dev")
    dev = mp / "@dev"
    assert sorted(os.listdir(mp)) == ["@dev", "@main", "@v1"]
    listed = json.loads(mlgitfs(home, "mounts", "--json").stdout)
    assert [(m["checkouts"], m["read_only"]) for m in listed] == [({"@dev": "ds@dev"}, False)]
    assert "writable: @dev (ds@dev)" in mlgitfs(home, "mounts").stdout
    # Writes in @dev, by real programs; the repo's policies hold there as in a branch mount.
    subprocess.run(["cp", str(mp / "@main" / "g.txt"), str(dev / "copy.txt")], check=True)
    subprocess.run(["mv", str(dev / "copy.txt"), str(dev / "d" / "moved.txt")], check=True)
    proc = subprocess.run(["sh", "-c", f"echo changed > {dev / 'a' / 'x.txt'}"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode != 0 and (dev / "a" / "x.txt").read_text() == "x"  # flexible
    mlgitfs(home, "unlock", str(dev / "a" / "x.txt"))
    subprocess.run(["sh", "-c", f"echo changed > {dev / 'a' / 'x.txt'}"], check=True)
    subprocess.run(["mkdir", "-p", str(dev / "n1" / "n2")], check=True)
    subprocess.run(["sh", "-c", f"echo new > {dev / 'n1' / 'n2' / 'new.txt'}"], check=True)
    os.unlink(dev / "c.txt")
    before = _find(mp)
    _unique(before)
    assert {"@dev/d/moved.txt", "@dev/n1/n2/new.txt", "@main/c.txt", "@v1/c.txt"} <= set(before)

    # Everything outside @dev is refused with EROFS (as root; another user meets the
    # versions' read-only modes first, EACCES), and the refusals change nothing.
    main_before, v1_before = sha_tree(mp / "@main"), sha_tree(mp / "@v1")
    status_before = _status(home, dev)
    for cmd in (
        ["sh", "-c", f"echo x > {mp / '@v1' / 'new.txt'}"],
        ["sh", "-c", f"echo x >> {mp / '@main' / 'c.txt'}"],
        ["mkdir", str(mp / "@main" / "dir")],
        ["rm", str(mp / "@v1" / "c.txt")],
        ["touch", str(mp / "top.txt")],
        ["mv", str(dev / "d" / "moved.txt"), str(mp / "@v1" / "moved.txt")],
        ["mv", str(mp / "@main" / "g.txt"), str(dev / "g.txt")],
        ["chmod", "0600", str(mp / "@v1" / "c.txt")],
        ["rmdir", str(mp / "@dev")],
    ):
        said = _refused(cmd)
        if os.geteuid() == 0:
            assert "Read-only file system" in said, (cmd, said)
    with pytest.raises(OSError) as info:
        open(mp / "@main" / "c.txt", "r+b")  # noqa: SIM115 (refused: nothing to close)
    assert info.value.errno in (errno.EROFS, errno.EACCES)
    assert (sha_tree(mp / "@main"), sha_tree(mp / "@v1")) == (main_before, v1_before)
    assert _status(home, dev) == status_before
    assert _find(mp) == before

    # status and commit find the branch from any path inside @dev; elsewhere they say why.
    st = _status(home, dev / "n1")
    assert st == {("added", "d/moved.txt"), ("modified", "a/x.txt"), ("deleted", "c.txt"),
                  ("added", "n1"), ("added", "n1/n2"), ("added", "n1/n2/new.txt")}  # fmt: skip
    for where in (mp / "@v1", mp):
        proc = mlgitfs(home, "status", str(where), check=False)
        assert proc.returncode == MountError.exit_code and "read-only part" in proc.stderr
    files = _status(home, dev, ("file", "symlink"))
    old = api.show(home, "ds@dev").id
    mlgitfs(home, "commit", str(dev / "a"), "-m", "from @dev")
    new = api.show(home, "ds@dev").id
    assert new != old and api.show(home, "ds@v1").id == old  # the tag stays
    diff = api.diff(home, f"ds@{old}", f"ds@{new}")
    assert {(d.change, d.path) for d in diff.items} == files  # a diff lists no directory
    assert _status(home, dev) == set()
    # What was committed is what the mount shows: sha256sum over @dev against an export,
    # and python reading a file back; the versions beside it did not move.
    api.export(home, "ds@dev", tmp_path / "out")
    assert sha_tree(dev) == sha_tree(tmp_path / "out")
    assert (dev / "n1" / "n2" / "new.txt").read_bytes() == b"new\n"
    assert (sha_tree(mp / "@main"), sha_tree(mp / "@v1")) == (main_before, v1_before)
    # A commit keeps every number, and new files after it still take fresh ones.
    after = _find(mp)
    assert after == before
    subprocess.run(["cp", str(mp / "@v1" / "c.txt"), str(dev / "back.txt")], check=True)
    _unique(_find(mp))


def test_unmount_keeps_the_work_for_either_mount(
    home: Path, repo: None, mounter: Mounter, tmp_path: Path
) -> None:
    mp = mounter("ds", "multi", "--write", "dev")
    (mp / "@dev" / "draft.txt").write_text("draft\n")
    # One checkout per branch: a second mount of dev is refused while this one holds it.
    (tmp_path / "alone").mkdir()
    proc = mlgitfs(home, "mount", "ds@dev", str(tmp_path / "alone"), check=False)
    assert proc.returncode == MountError.exit_code and "already mounted writable" in proc.stderr
    mlgitfs(home, "unmount", str(mp))
    # The same checkout record: the branch mounted alone shows the uncommitted work...
    alone = mounter("ds@dev", "alone")
    assert (alone / "draft.txt").read_text() == "draft\n"
    assert _status(home, alone) == {("added", "draft.txt")}
    (alone / "more.txt").write_text("more\n")
    mlgitfs(home, "unmount", str(alone))
    # ... and so does a mount of several versions again, where it is committed.
    mp = mounter("ds", "multi", "--write", "dev")
    assert _status(home, mp / "@dev") == {("added", "draft.txt"), ("added", "more.txt")}
    mlgitfs(home, "commit", str(mp / "@dev"), "-m", "drafts")
    assert b"".join(api.cat(home, "ds@dev:draft.txt")) == b"draft\n"
    assert _status(home, mp / "@dev") == set()


def test_repos_side_by_side_with_a_writable_branch(
    home: Path, repo: None, mounter: Mounter, tmp_path: Path
) -> None:
    api.init(home, "labels", "labels", "mutable")
    api.import_dir(home, "labels", write_tree(tmp_path / "l1", {"l.csv": "1,a\n"}), "l1")
    api.branch_create(home, "labels@fix")
    mp = mounter(("ds@v1", "labels"), "side", "--write", "labels@fix")
    assert sorted(os.listdir(mp)) == ["ds", "labels"]
    subprocess.run(["sh", "-c", f"echo 1,b > {mp / 'labels' / '@fix' / 'l.csv'}"], check=True)
    assert (mp / "labels" / "@main" / "l.csv").read_text() == "1,a\n"
    assert _status(home, mp / "labels" / "@fix") == {("modified", "l.csv")}
    mlgitfs(home, "commit", str(mp / "labels" / "@fix"), "-m", "fix a label")
    assert b"".join(api.cat(home, "labels@fix:l.csv")) == b"1,b\n"
    _refused(["sh", "-c", f"echo x > {mp / 'ds' / 'c.txt'}"])
    found = _find(mp)
    assert len(set(found.values())) == len(found) and "labels/@fix/l.csv" in found


@pytest.mark.parametrize(
    ("specs", "write", "why"),
    [
        (("ds@dev",), "dev", "--write is for a mount of several versions"),
        (("ds",), "v1", "v1 is not a branch of ds"),
        (("ds",), "nope", "nope"),
        (("ds@v1", "ds2"), "dev", "name its repo too"),
        (("ds@v1", "ds2"), "ds@dev", "shows no @BRANCH/ directories of ds"),
    ],
)
def test_bad_write_flags_change_nothing(
    home: Path, repo: None, tmp_path: Path, specs: tuple[str, ...], write: str, why: str
) -> None:
    api.init(home, "ds2", "dataset", "mutable")
    (tmp_path / "mnt").mkdir()
    proc = mlgitfs(home, "mount", *specs, str(tmp_path / "mnt"), "--write", write, check=False)
    assert proc.returncode in (UsageError.exit_code, 4) and why in proc.stderr, proc.stderr
    assert registry.mount_at(tmp_path / "mnt") is None and api.mounts(home) == []
