"""Writable branch mounts for real: POSIX through the kernel, commit/status/restore/unlock CLI."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.meta import db
from mlgitfs.model.ids import ObjectId, from_hex
from tests.conftest import write_tree
from tests.wmount import OLD, Mounter, daemon_pid, mlgitfs, mounter, snapshot
from testsupport.mounts import fuse_skip_reason

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason())),
]
__all__ = ["mounter"]


def make(home: Path, tmp_path: Path, mutability: str = "mutable") -> Path:
    mlgitfs(home, "init", "ds", "--kind", "dataset", "--mutability", mutability)
    src = write_tree(
        tmp_path / "src",
        {
            "train/a.txt": b"a\n",
            "train/b.bin": os.urandom(700_000),
            "labels.csv": b"id,label\n1,cat\n",
            "empty/": b"",
            "link": "->labels.csv",
        },
        mtime_ns=OLD,
    )
    mlgitfs(home, "import", "ds@main", str(src), "-m", "first")
    return src


def test_posix_basics(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    make(home, tmp_path)
    mp = mounter("ds@main")
    (mp / "train" / "a.txt").write_bytes(b"changed\n")
    with open(mp / "train" / "b.bin", "r+b") as f:
        f.seek(100_000)
        f.write(b"XYZ")
        f.flush()
        os.fsync(f.fileno())
        os.fdatasync(f.fileno())
    fd = os.open(mp / "new.txt", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o640)
    os.write(fd, b"hello")
    os.close(fd)
    assert (os.stat(mp / "new.txt").st_mode & 0o777) == 0o640
    os.truncate(mp / "labels.csv", 3)
    assert (mp / "labels.csv").read_bytes() == b"id,"
    os.mkdir(mp / "d")
    os.rename(mp / "train", mp / "d" / "train2")
    os.symlink("d/train2/a.txt", mp / "sl")
    os.chmod(mp / "new.txt", 0o600)
    os.utime(mp / "new.txt", ns=(OLD, OLD))
    assert os.stat(mp / "new.txt").st_mtime_ns == OLD
    (mp / "over.txt").write_bytes(b"over")
    os.rename(mp / "over.txt", mp / "new.txt")
    assert (mp / "new.txt").read_bytes() == b"over"
    os.rmdir(mp / "empty")
    with pytest.raises(OSError) as e:
        os.rmdir(mp / "d")
    assert e.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as e:
        os.open(mp / ("x" * 256), os.O_CREAT | os.O_WRONLY)
    assert e.value.errno == errno.ENAMETOOLONG
    with pytest.raises(OSError) as e:
        os.link(mp / "new.txt", mp / "hard")
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        os.setxattr(mp / "new.txt", "user.x", b"1")
    assert e.value.errno in (errno.ENOTSUP, errno.EOPNOTSUPP)
    # unlink of an open file: still readable and writable through its descriptor
    with open(mp / "d" / "train2" / "a.txt", "r+b") as f:
        os.unlink(mp / "d" / "train2" / "a.txt")
        f.write(b"still")
        f.seek(0)
        assert f.read() == b"stilled\n"
    # O_DIRECT with an odd size never reaches the overlay file as O_DIRECT
    subprocess.run(
        ["dd", "if=/dev/urandom", f"of={mp}/direct.bin", "bs=4608", "count=3", "oflag=direct"],
        check=True,
        capture_output=True,
    )
    assert os.path.getsize(mp / "direct.bin") == 3 * 4608
    st = os.statvfs(mp)
    assert st.f_blocks > 0 and st.f_bavail > 0 and st.f_namemax == 255
    expect = snapshot(mp)
    out = mlgitfs(home, "commit", str(mp), "-m", "second", "--meta", "k=v")
    cid = out.stdout.strip()
    assert api.show(home, "ds@main").meta == {"k": "v"}
    listed = json.loads(mlgitfs(home, "mounts", "--json").stdout)
    assert [m["commit"] for m in listed if m["mountpoint"] == str(mp)] == [cid]
    ro = mounter(f"ds@{cid[:12]}", "ro")
    got = snapshot(ro)
    assert got.keys() == expect.keys()
    for k, v in expect.items():
        assert (got[k][0], got[k][1], got[k][2]) == (v[0], v[1] & 0o555, v[2]), k
    assert snapshot(mp) == expect
    assert json.loads(mlgitfs(home, "status", str(mp), "--json").stdout)["changes"] == []


def test_status_restore_and_cwd_default(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    make(home, tmp_path)
    mp = mounter("ds@main")
    (mp / "train" / "a.txt").write_bytes(b"x")
    os.unlink(mp / "labels.csv")
    os.rename(mp / "link", mp / "link2")
    (mp / "added").write_bytes(b"+")
    st = json.loads(mlgitfs(home, "status", "--json", cwd=mp / "train").stdout)
    got = {(c["change"], c["path"]) for c in st["changes"]}
    assert got == {("modified", "train/a.txt"), ("deleted", "labels.csv"),
                   ("renamed", "link2"), ("added", "added")}  # fmt: skip
    mlgitfs(home, "restore", str(mp / "train" / "a.txt"), str(mp / "labels.csv"))
    assert (mp / "train" / "a.txt").read_bytes() == b"a\n"
    assert (mp / "labels.csv").read_bytes() == b"id,label\n1,cat\n"
    mlgitfs(home, "restore", cwd=mp)
    assert not (mp / "added").exists()
    assert os.readlink(mp / "link") == "labels.csv"
    assert json.loads(mlgitfs(home, "status", "--json", cwd=mp).stdout)["changes"] == []
    dry = mlgitfs(home, "commit", str(mp), "-m", "nothing", "--dry-run")
    assert "0 changes" in dry.stderr


def test_policies_through_the_kernel(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    make(home, tmp_path, "flexible")
    mp = mounter("ds@main")
    with pytest.raises(PermissionError):
        (mp / "labels.csv").write_bytes(b"no")
    st = mlgitfs(home, "status", str(mp))
    assert "write labels.csv" in st.stdout and "mlgitfs unlock labels.csv" in st.stdout
    assert "refused" not in mlgitfs(home, "status", str(mp)).stdout  # once per status
    (mp / "new.csv").write_bytes(b"yes")
    mlgitfs(home, "unlock", str(mp / "labels.csv"))
    # "Fix one label in a flexible repo" (issue 13): sed -i replaces the file by a rename,
    # which an unlock of the path allows, as it allows plain writes.
    subprocess.run(["sed", "-i", "s/cat/dog/", "labels.csv"], cwd=mp, check=True)
    assert json.loads(mlgitfs(home, "status", str(mp), "--json").stdout)["changes"] == [
        {"change": "added", "path": "new.csv", "kind": "file", "old_path": ""},
        {"change": "modified", "path": "labels.csv", "kind": "file", "old_path": ""},
    ]
    (mp / "labels.csv").write_bytes(b"now yes")
    mlgitfs(home, "commit", str(mp), "-m", "labels")
    assert b"".join(api.cat(home, "ds@main:labels.csv")) == b"now yes"
    # The unlock ends with the commit.
    proc = subprocess.run(["sed", "-i", "s/yes/no/", "labels.csv"], cwd=mp, capture_output=True)
    assert proc.returncode != 0 and (mp / "labels.csv").read_bytes() == b"now yes"


CONTENT_CHANGES = {
    # Each replaces a committed file's bytes by another system call than write (issue 13).
    "sed -i": ["sed", "-i", "s/cat/dog/", "labels.csv"],
    "mv over": ["sh", "-c", "printf 'id,label\\n1,dog\\n' > tmp.csv && mv tmp.csv labels.csv"],
    "os.replace": [
        sys.executable, "-c",
        "import os; open('t.csv','w').write('x'); os.replace('t.csv', 'labels.csv')",
    ],
    "append": ["sh", "-c", "echo 2,dog >> labels.csv"],
    "rm and create": ["sh", "-c", "rm labels.csv && echo new > labels.csv"],
}  # fmt: skip


@pytest.mark.parametrize("policy", ["strict", "flexible"])
def test_mutability_whatever_the_call(
    home: Path, tmp_path: Path, mounter: Mounter, policy: str
) -> None:
    make(home, tmp_path, policy)
    mp = mounter("ds@main")
    for what, argv in CONTENT_CHANGES.items():
        proc = subprocess.run(argv, cwd=mp, capture_output=True, text=True, timeout=30)
        assert proc.returncode != 0, what
        assert "not permitted" in proc.stderr, (what, proc.stderr)
        mlgitfs(home, "restore", str(mp / "labels.csv"))  # what rm took away comes back
        assert (mp / "labels.csv").read_bytes() == b"id,label\n1,cat\n", what
    st = mlgitfs(home, "status", str(mp)).stdout
    assert f"{policy}: labels.csv is committed" in st
    for op in ("rename labels.csv", "write labels.csv", "create labels.csv"):
        assert op in st, (op, st)
    # What no system call can see, the commit refuses: a directory renamed over a committed one.
    os.mkdir(mp / "t2")
    (mp / "t2" / "a.txt").write_bytes(b"other\n")
    subprocess.run(["rm", "-r", str(mp / "train")], check=True)
    os.rename(mp / "t2", mp / "train")
    proc = mlgitfs(home, "commit", str(mp), "-m", "sneaky", check=False)
    assert proc.returncode == 15, proc.stderr
    assert "train/a.txt" in proc.stderr and f"is {policy}" in proc.stderr
    # A restore from another version that changes committed bytes is refused too.
    mlgitfs(home, "restore", cwd=mp)
    (mp / "labels2.csv").write_bytes(b"x")
    mlgitfs(home, "commit", str(mp), "-m", "add")
    # ds@v2 made by its first import (a root commit): nothing committed there to protect
    src = tmp_path / "v2"
    shutil.copytree(tmp_path / "src", src, symlinks=True)
    (src / "labels.csv").write_bytes(b"id,label\n1,dog\n")
    mlgitfs(home, "import", "ds@v2", str(src), "-m", "v2")
    proc = mlgitfs(home, "restore", "--source", "ds@v2", cwd=mp, check=False)
    assert proc.returncode == 15 and "labels.csv" in proc.stderr, proc.stderr
    assert (mp / "labels.csv").read_bytes() == b"id,label\n1,cat\n"
    assert "refused" not in mlgitfs(home, "commit", str(mp), "-m", "x", "--dry-run").stderr


def test_second_writable_mount_refused(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    make(home, tmp_path)
    mp = mounter("ds@main")
    (tmp_path / "two").mkdir()
    proc = mlgitfs(home, "mount", "ds@main", str(tmp_path / "two"), check=False)
    assert proc.returncode != 0 and "already mounted writable" in proc.stderr
    ro = mounter("ds@main", "ro", "--read-only")
    assert (ro / "labels.csv").read_bytes() == b"id,label\n1,cat\n"
    assert daemon_pid(home, mp) != daemon_pid(home, ro)


def test_conflict_when_branch_moved(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    src = make(home, tmp_path)
    mp = mounter("ds@main")
    (mp / "mine").write_bytes(b"mine")
    (src / "other").write_bytes(b"other")
    refused = mlgitfs(home, "import", "ds@main", str(src), "-m", "elsewhere", check=False)
    assert refused.returncode == 22  # an import waits for the mount's work (UnsafeOperation)
    # a peer moves the branch anyway (as a ref update from elsewhere would)
    side = api.import_dir(home, "ds@side", src, "elsewhere").commit.id
    store = api.open_store(home)
    with store.env.write() as txn:
        head = db.get_ref(txn, "ds", "heads/main")
        db.set_ref(txn, "ds", "heads/main", ObjectId(from_hex(side)), head, "moved elsewhere")
    api.close_store(home)
    proc = mlgitfs(home, "commit", str(mp), "-m", "late", check=False)
    assert proc.returncode == 14 and "moved" in proc.stderr
    assert (mp / "mine").read_bytes() == b"mine"


def test_overlay_survives_remount(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    make(home, tmp_path)
    mp = mounter("ds@main")
    (mp / "kept.txt").write_bytes(b"kept")
    ino = os.stat(mp / "kept.txt").st_ino
    ino_b = os.stat(mp / "train" / "b.bin").st_ino
    mlgitfs(home, "unmount", str(mp))
    mp = mounter("ds@main")
    assert (mp / "kept.txt").read_bytes() == b"kept"
    assert os.stat(mp / "kept.txt").st_ino == ino
    assert os.stat(mp / "train" / "b.bin").st_ino == ino_b
