"""Mounts and daemons that tests and benchmarks start: find them, stop them, detach them.

Teardown that must work after a failure: `stop_pid` (SIGTERM, then SIGKILL, by the pid we
started or were told), `detach` (``fusermount3 -u -z``, then ``umount -l``) and
`clear_under` (every mount left below a scratch directory by a crashed run). The kernel's
mount table is read through `mlgitfs.daemon.registry` (which never touches the mount itself,
so a hung daemon cannot block teardown; it does not import pyfuse3).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from mlgitfs.daemon import registry


def fuse_skip_reason() -> str | None:
    """Why real mounts cannot run here, or None when they can."""
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing: FUSE is not available on this machine"
    if os.geteuid() != 0:
        return "real FUSE mount tests run as root (CI does); not root here"
    if shutil.which("fusermount3") is None:
        return "fusermount3 is not installed (Debian package fuse3)"
    return None


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    return registry.pid_alive(pid)


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02
) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def stop_pid(pid: int, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    """Send ``sig`` (default SIGTERM) and wait; SIGKILL if the process is still there."""
    if not pid_alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if not wait_until(lambda: not pid_alive(pid), timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not pid_alive(pid), timeout)


def mount_dev(mountpoint: str | os.PathLike[str]) -> str | None:
    """``MAJOR:MINOR`` of the topmost mount at ``mountpoint`` (None if nothing is mounted)."""
    m = registry.mount_at(mountpoint)
    return None if m is None else m.dev


def is_mounted(mountpoint: str | os.PathLike[str]) -> bool:
    return registry.mount_at(mountpoint) is not None


def mounts_under(root: str | os.PathLike[str]) -> list[Path]:
    """Mountpoints strictly below ``root``."""
    prefix = os.path.abspath(root).rstrip("/") + "/"
    return [Path(m.mountpoint) for m in registry.kernel_mounts() if m.mountpoint.startswith(prefix)]


def detach(mountpoint: str | os.PathLike[str], tries: int = 5) -> None:
    """Nothing left mounted at ``mountpoint`` (lazy unmounts: a busy mount goes too)."""
    for _ in range(tries):
        if not is_mounted(mountpoint):
            return
        argv = ["fusermount3", "-u", "-z", os.fspath(mountpoint)]
        if shutil.which("fusermount3") is None or os.geteuid() == 0:
            argv = ["umount", "-l", os.fspath(mountpoint)]
        subprocess.run(argv, capture_output=True, timeout=10, check=False)


def kill_and_detach(pid: int, mountpoint: str | os.PathLike[str]) -> None:
    """Teardown of one mount: its daemon gone (TERM, then KILL) and nothing left mounted."""
    stop_pid(pid)
    detach(mountpoint)


def clear_under(root: str | os.PathLike[str]) -> list[Path]:
    """Detach every mount a previous (crashed) run left below ``root``, deepest first."""
    stale = mounts_under(root)
    for m in sorted(stale, key=lambda p: len(str(p)), reverse=True):
        detach(m)
    return stale
