"""Helpers for tests of writable mounts: mount with the real CLI, run it, compare trees."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlgitfs.daemon import registry
from testsupport.mounts import detach, stop_pid

MLGITFS = str(Path(sys.executable).parent / "mlgitfs")
OLD = 1_650_000_000_000_000_000

Mounter = Callable[..., Path]


def mlgitfs(
    home: Path, *args: str, check: bool = True, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [MLGITFS, "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    if check:
        assert proc.returncode == 0, f"mlgitfs {args}: {proc.stdout}{proc.stderr}"
    return proc


def daemon_pid(home: Path, mp: Path) -> int:
    for rec in registry.list_mounts(home / "mounts"):
        if rec.mountpoint == str(mp):
            return rec.pid
    raise AssertionError(f"no daemon for {mp}")


@pytest.fixture
def mounter(home: Path, tmp_path: Path) -> Iterator[Mounter]:
    """Mounts with the real CLI; teardown kills the daemons and detaches, even on failure."""
    made: list[Path] = []

    def do(revspec: str | tuple[str, ...], name: str = "mnt", *extra: str) -> Path:
        mp = tmp_path / name
        mp.mkdir(exist_ok=True)
        specs = (revspec,) if isinstance(revspec, str) else revspec
        mlgitfs(home, "mount", *specs, str(mp), *extra)
        made.append(mp)
        return mp

    yield do
    for mp in made:
        for rec in registry.list_mounts(home / "mounts"):
            if rec.mountpoint == str(mp):
                stop_pid(rec.pid)
        detach(mp)
    assert not [m for m in registry.kernel_mounts() if m.mountpoint.startswith(str(tmp_path))]


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """path → (kind, permission bits, bytes or link target), for comparing two trees."""
    out: dict[str, tuple[str, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", 0, os.fsencode(os.readlink(full)))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), b"")
            else:
                with open(full, "rb") as f:
                    out[rel] = ("file", stat.S_IMODE(st.st_mode), f.read())
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
    return out
