"""Third-party stress against a writable mount: stress-ng's filesystem class and fio verify.

Both must finish without errors and the daemon must still be alive (one bad request must
never end it). The suite runs a curated list of stressors at once, then the whole class one
after another (minus what needs features mlgitfs refuses on purpose: hard links, xattrs,
ioctl flags, bind mounts, fs-verity; about 85 s). Skipped when the tools are absent
(Debian packages stress-ng and fio; packaging/install.sh --test installs them).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.daemon import registry
from tests.conftest import write_tree
from tests.wmount import OLD, Mounter, daemon_pid, mounter
from testsupport.mounts import fuse_skip_reason

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason())),
]
__all__ = ["mounter"]

CURATED = ("access,chdir,chmod,copy-file,dentry,dir,dirdeep,dirmany,fstat,getdent,hdd,open,"
           "rename,symlink,touch,utime,sync-file,flock,lockf")  # fmt: skip
UNSUPPORTED = "bind-mount,binderfs,verity,procfs,ioprio,link,xattr,chattr,inode-flags,fanotify"


def _mount(home: Path, tmp_path: Path, mounter: Mounter) -> Path:
    api.init(home, "ds", "dataset", "mutable")
    api.import_dir(home, "ds@main", write_tree(tmp_path / "src", {"a": b"a"}, mtime_ns=OLD), "m")
    return mounter("ds@main")


def _stress_ng(mp: Path, *args: str) -> None:
    work = mp / "stress"
    work.mkdir()
    proc = subprocess.run(
        ["stress-ng", "-t", "2", "--temp-path", str(work), *args],
        capture_output=True, text=True, timeout=600, check=False, cwd=mp.parent,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "successful run completed" in proc.stderr + proc.stdout


@pytest.mark.skipif(shutil.which("stress-ng") is None, reason="stress-ng is not installed")
def test_stress_ng_filesystem(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    mp = _mount(home, tmp_path, mounter)
    pid = daemon_pid(home, mp)
    # All the curated stressors at once, one instance each, for two seconds.
    _stress_ng(mp, *[arg for name in CURATED.split(",") for arg in (f"--{name}", "1")])
    assert registry.pid_alive(pid)
    api.commit(home, mp, "after stress")  # what is left commits cleanly


@pytest.mark.timeout(900)
@pytest.mark.skipif(shutil.which("stress-ng") is None, reason="stress-ng is not installed")
def test_stress_ng_whole_class(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    mp = _mount(home, tmp_path, mounter)
    pid = daemon_pid(home, mp)
    _stress_ng(mp, "--seq", "1", "--class", "filesystem", "--exclude", UNSUPPORTED)
    assert registry.pid_alive(pid)
    api.commit(home, mp, "after the whole class")


@pytest.mark.skipif(shutil.which("fio") is None, reason="fio is not installed")
def test_fio_verify(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    mp = _mount(home, tmp_path, mounter)
    pid = daemon_pid(home, mp)
    (mp / "fio").mkdir()
    jobs = [
        ["--name=rand", "--rw=randwrite", "--bs=4k", "--size=8m", "--numjobs=2",
         "--verify=crc32c"],
        ["--name=direct", "--rw=write", "--bs=4608", "--size=4608k", "--direct=1",
         "--verify=md5"],
        ["--name=seq", "--rw=write", "--bs=1m", "--size=32m", "--verify=xxhash",
         "--fsync=8"],
    ]  # fmt: skip
    for job in jobs:
        proc = subprocess.run(
            ["fio", f"--directory={mp / 'fio'}", "--ioengine=psync", "--do_verify=1",
             "--verify_fatal=1", "--verify_state_save=0", *job],
            capture_output=True, text=True, timeout=300, check=False, cwd=mp.parent,
        )  # fmt: skip
        assert proc.returncode == 0 and "err= 0" in proc.stdout, proc.stdout + proc.stderr
    assert registry.pid_alive(pid)
    r = api.commit(home, mp, "fio files")
    assert r.commit is not None and r.files_hashed >= 4
