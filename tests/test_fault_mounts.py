"""Faults through the kernel: a writable mount whose overlay writes or record transactions
fail (doubles passed in by the daemon's view factory, tests/faultdoubles.py). A failing write
puts no byte of the file into any log or file of the store; `rm` on a full disk keeps the
file, also after a remount (issue 12, items 7 and 8)."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlgitfs import api
from mlgitfs.daemon import mount as mount_mod
from tests.test_writable_mount import make
from tests.wmount import Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason, kill_and_detach

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason())),
]
__all__ = ["mounter"]

FailingMounter = Any


@pytest.fixture
def failing(home: Path, tmp_path: Path) -> Iterator[FailingMounter]:
    """Mounts ds@main with the faults named; teardown stops the daemon and detaches."""
    made: list[tuple[int, Path]] = []

    def do(name: str, **faults: object) -> Path:
        mp = tmp_path / name
        mp.mkdir(exist_ok=True)
        store = api.open_store(home)
        arg = {"home": str(store.home.resolve()), "repo": "ds", "branch": "main", **faults}
        result = mount_mod.mount(
            "tests.faultdoubles:failing_checkout_view", mp, "mlgitfs:ds@main",
            view_arg=arg, read_only=False, run_dir=store.run_dir, revspec="ds@main",
        )  # fmt: skip
        assert result is not None
        made.append((result.pid, mp))
        return mp

    yield do
    for pid, mp in made:
        kill_and_detach(pid, mp)


def unmount(home: Path, mp: Path) -> None:
    mlgitfs(home, "unmount", str(mp))


def test_failing_write_puts_no_contents_in_any_log(
    home: Path, tmp_path: Path, failing: FailingMounter
) -> None:
    make(home, tmp_path)
    mp = failing("mnt", fail_files=["write", "truncate"])
    secret = b"aws_secret_access_key=" + os.urandom(12).hex().encode()
    fd = os.open(mp / "credentials", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError) as failed:
            os.write(fd, secret)
            os.fsync(fd)
    finally:
        os.close(fd)
    assert failed.value.errno == errno.ENOSPC
    unmount(home, mp)
    log = home / "mounts" / "daemon.log"
    assert f"<{len(secret)} bytes>" in log.read_text()  # the failed write, by its length
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    found = [p for p in tmp_path.rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert found == []


def test_rm_on_a_full_disk_keeps_the_file(
    home: Path, tmp_path: Path, mounter: Mounter, failing: FailingMounter
) -> None:
    """The model case: `rm` of a changed file with every record transaction failing."""
    make(home, tmp_path)
    mp = mounter("ds@main", "mnt")
    (mp / "labels.csv").write_bytes(b"id,label\n1,dog\n")  # overlay data, not committed
    unmount(home, mp)
    full = failing("full", fail_meta=True)
    proc = subprocess.run(["rm", str(full / "labels.csv")], capture_output=True, timeout=60)
    assert proc.returncode != 0
    assert b"No space left on device" in proc.stderr
    assert (full / "labels.csv").read_bytes() == b"id,label\n1,dog\n"
    unmount(home, full)
    mp = mounter("ds@main", "again")
    assert (mp / "labels.csv").read_bytes() == b"id,label\n1,dog\n"
    status = mlgitfs(home, "status", str(mp)).stdout
    assert "labels.csv" in status
    unmount(home, mp)
