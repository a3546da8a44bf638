"""POSIX details of a writable mount, through the kernel with real programs (issue 13):
ctime and atime, the sticky bit, setuid/setgid, directory link counts, renameat2 flags, the
owner model with --allow-other, and refusals logged at debug."""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.daemon import registry
from tests.conftest import write_tree
from tests.wmount import OLD, Mounter, daemon_pid, mlgitfs, mounter
from testsupport.mounts import detach, fuse_skip_reason, stop_pid

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason())),
]
__all__ = ["mounter"]

RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
AT_FDCWD = -100
NOBODY = 65534


def make(home: Path, tmp_path: Path) -> None:
    api.init(home, "ds", "dataset", "mutable")
    src = write_tree(
        tmp_path / "src",
        {"f": b"f\n", "g": b"g\n", "d/x/1": b"1", "d/y/2": b"2", "d/z": b"z", "e/": b""},
        mtime_ns=OLD,
    )
    api.import_dir(home, "ds@main", src, "first")


def renameat2(old: Path, new: Path, flags: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    rc = libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags)
    return 0 if rc == 0 else ctypes.get_errno()


def test_times(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    make(home, tmp_path)
    mp = mounter("ds@main")
    f = mp / "f"
    before = os.stat(f)
    assert before.st_ctime_ns == before.st_mtime_ns == OLD
    os.chmod(f, 0o600)  # a metadata change moves ctime, not mtime
    after = os.stat(f)
    assert after.st_mtime_ns == OLD and after.st_ctime_ns > OLD
    time.sleep(0.01)
    os.rename(mp / "g", mp / "g2")  # so does a rename (of the renamed inode)
    assert os.stat(mp / "g2").st_ctime_ns > after.st_ctime_ns
    subprocess.run(["touch", "-a", "-d", "@1000000000", str(f)], check=True)
    st = os.stat(f)
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_000 * 10**9, OLD)
    f.read_bytes()  # reads do not move atime (noatime, docs/overlay.md)
    assert os.stat(f).st_atime_ns == 1_000_000_000 * 10**9
    ctime = os.stat(f).st_ctime_ns
    time.sleep(0.02)  # the overlay file's times come from the disk's clock (jiffies)
    with open(f, "ab") as out:
        out.write(b"more")
    assert os.stat(f).st_ctime_ns > ctime  # writes move mtime and ctime
    kept = os.stat(f)
    mlgitfs(home, "unmount", str(mp))
    mp = mounter("ds@main")
    again = os.stat(mp / "f")
    assert again.st_atime_ns == kept.st_atime_ns
    assert again.st_ctime_ns >= again.st_mtime_ns == kept.st_mtime_ns


def test_modes_and_link_counts(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    make(home, tmp_path)
    mp = mounter("ds@main")
    assert os.stat(mp / "d").st_nlink == 4  # 2 + x and y, as ext4
    assert os.stat(mp / "e").st_nlink == 2
    assert os.stat(mp).st_nlink == 4  # d and e
    os.mkdir(mp / "d" / "w")
    assert os.stat(mp / "d").st_nlink == 5
    os.rename(mp / "d" / "w", mp / "e" / "w")
    assert (os.stat(mp / "d").st_nlink, os.stat(mp / "e").st_nlink) == (4, 3)
    os.rmdir(mp / "e" / "w")
    assert os.stat(mp / "e").st_nlink == 2
    for path, bits in ((mp / "f", stat.S_ISUID), (mp / "e", stat.S_ISGID), (mp / "f", 0o1000)):
        with pytest.raises(PermissionError):
            os.chmod(path, 0o755 | bits)
    subprocess.run(["chmod", "1777", str(mp / "e")], check=True)
    assert stat.S_IMODE(os.stat(mp / "e").st_mode) == 0o1777
    os.mkdir(mp / "t", 0o1755)
    assert stat.S_IMODE(os.stat(mp / "t").st_mode) == 0o1755
    mlgitfs(home, "commit", str(mp), "-m", "sticky")
    ro = mounter("ds@main", "ro", "--read-only")
    assert stat.S_IMODE(os.stat(ro / "e").st_mode) & 0o1000  # the version keeps it
    assert stat.S_IMODE(os.stat(mp / "e").st_mode) == 0o1777


def test_renameat2_flags(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    make(home, tmp_path)
    mp = mounter("ds@main")
    assert renameat2(mp / "f", mp / "g", RENAME_WHITEOUT) == errno.EINVAL
    assert renameat2(mp / "f", mp / "g", RENAME_NOREPLACE) == errno.EEXIST
    assert renameat2(mp / "f", mp / "g", RENAME_EXCHANGE) == 0
    assert ((mp / "f").read_bytes(), (mp / "g").read_bytes()) == (b"g\n", b"f\n")
    assert renameat2(mp / "f", mp / "d", RENAME_EXCHANGE) == 0  # a file and a directory
    assert (mp / "f" / "z").read_bytes() == b"z" and (mp / "d").read_bytes() == b"g\n"
    assert renameat2(mp / "f", mp / "f" / "x", RENAME_EXCHANGE) == errno.EINVAL
    st = api.status(home, mp)
    assert {(c.change, c.path, c.old_path) for c in st.changes} >= {
        ("modified", "g", ""), ("added", "f", ""), ("renamed", "f/x/1", "d/x/1"),
    }  # fmt: skip
    r = api.commit(home, mp, "exchanged")
    assert r.commit is not None
    assert b"".join(api.cat(home, "ds@main:f/x/1")) == b"1"
    assert b"".join(api.cat(home, "ds@main:g")) == b"f\n"
    log = (home / "mounts" / "daemon.log").read_text()
    assert " WARNING " not in log, log  # expected refusals are logged at debug


def test_allow_other_owner_model(home: Path, tmp_path: Path) -> None:
    """With --allow-other, other users read the mount; every change of theirs is refused
    (EACCES), the owner's work as before: never a file another user made and cannot keep."""
    if os.getuid() != 0:
        pytest.skip("needs root to act as another user")
    make(home, tmp_path)
    top = Path(tempfile.mkdtemp())
    os.chmod(top, 0o755)
    mp = top / "mnt"
    mp.mkdir()
    mlgitfs(home, "mount", "ds@main", str(mp), "--allow-other")
    try:
        os.chmod(mp / "e", 0o777)
        os.chmod(mp / "f", 0o666)

        def as_nobody(code: str) -> str:
            proc = subprocess.run(
                ["python3", "-c", code], user=NOBODY, group=NOBODY, cwd=mp,
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            return proc.stdout.strip() + proc.stderr.strip()

        probe = (
            "import os, sys\n"
            "def t(f, *a):\n"
            "    try:\n"
            "        f(*a); return 'ok'\n"
            "    except OSError as e:\n"
            "        return str(e.errno)\n"
            "print(open('f').read().strip(), t(os.mkdir, 'e/mine'),"
            " t(lambda: open('e/new', 'w')), t(lambda: open('f', 'a')),"
            " t(os.unlink, 'e/../g'), t(os.rename, 'f', 'e/f'))\n"
        )
        out = as_nobody(probe)
        eacces = str(errno.EACCES)
        assert out == f"f {eacces} {eacces} {eacces} {eacces} {eacces}", out
        assert not (mp / "e" / "new").exists()
        (mp / "e" / "owner").write_bytes(b"mine")  # the owner goes on as before
    finally:
        pid = daemon_pid(home, mp)
        stop_pid(pid)
        detach(mp)
        assert registry.mount_at(str(mp)) is None
        os.rmdir(mp)
        os.rmdir(top)
