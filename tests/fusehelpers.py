"""Helpers for tests that mount for real: start the daemon as a user would, probe it, clean up.

The daemon is started through its entry point (`python -m mlgitfs.daemon`, in the background)
serving `tests/memview.py`'s `make_view`. `Daemon.cleanup` kills the daemon by pid and detaches
its mount, so teardown leaves nothing behind even when a test failed half-way.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlgitfs.daemon import registry
from testsupport.mounts import kill_and_detach

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent


def daemon_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


@dataclass
class Daemon:
    mountpoint: Path
    pid: int
    run_dir: Path
    log_file: Path

    def alive(self) -> bool:
        return registry.pid_alive(self.pid)

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def counts(self, timeout: float = 10.0) -> dict[str, int]:
        """Request counts per handler, asked with SIGUSR1 and read back from the log."""
        before = self.log().count("request counts: ")
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            lines = [ln for ln in self.log().splitlines() if "request counts: " in ln]
            if len(lines) > before:
                counts: dict[str, int] = json.loads(lines[-1].split("request counts: ", 1)[1])
                return counts
            time.sleep(0.02)
        raise TimeoutError("the daemon did not report its request counts")

    def cleanup(self) -> None:
        kill_and_detach(self.pid, self.mountpoint)


def start_daemon(
    mountpoint: Path,
    view_arg: dict[str, Any],
    run_dir: Path,
    *,
    fsname: str = "mlgitfs:test@v1",
    extra: tuple[str, ...] = (),
    timeout: float = 30.0,
) -> Daemon:
    """`python -m mlgitfs.daemon` in the background; returns once the mount answers."""
    log_file = run_dir / "daemon.log"
    proc = daemon_cmd(mountpoint, view_arg, run_dir, fsname=fsname, extra=extra, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"mount failed ({proc.returncode}): {proc.stderr.strip()}")
    return Daemon(mountpoint, int(proc.stdout.strip()), run_dir, log_file)


def daemon_cmd(
    mountpoint: Path,
    view_arg: dict[str, Any],
    run_dir: Path,
    *,
    fsname: str = "mlgitfs:test@v1",
    extra: tuple[str, ...] = (),
    timeout: float = 30.0,
) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "mlgitfs.daemon",
        str(mountpoint),
        "--fsname",
        fsname,
        "--view-factory",
        "tests.memview:make_view",
        "--view-arg",
        json.dumps(view_arg),
        "--run-dir",
        str(run_dir),
        "--revspec",
        fsname.removeprefix("mlgitfs:"),
        "--commit",
        "ab" * 32,
        "--timeout",
        str(timeout),
        *extra,
    ]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=daemon_env(), timeout=timeout + 15, check=False
    )


def run(cmd: list[str], timeout: float = 60.0, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
    """A real program over the mount; a hang becomes a test failure, not a stuck suite."""
    return subprocess.run(cmd, capture_output=True, timeout=timeout, check=True, **kwargs)


def make_source_tree(root: Path) -> None:
    """A small tree with the shapes that matter: sizes around block and request boundaries,
    nested and empty directories, symlinks, odd names, modes with exec and setuid bits, and a
    directory large enough that its listing takes several readdir calls."""
    root.mkdir(parents=True)
    rnd = __import__("random").Random(1234)
    sizes = [0, 1, 4095, 4096, 4097, 131072, 131073, 1 << 20, 3 * (1 << 20) + 17]
    (root / "sizes").mkdir()
    for size in sizes:
        (root / "sizes" / f"f{size}.bin").write_bytes(rnd.randbytes(size))
    (root / "a" / "b" / "c").mkdir(parents=True)
    (root / "a" / "b" / "c" / "deep.txt").write_text("deep\n")
    (root / "a" / "top.txt").write_text("top\n" * 100)
    (root / "empty").mkdir()
    (root / "name with spaces é.txt").write_text("spaces\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "suid").write_bytes(b"x")
    (root / "suid").chmod(stat.S_ISUID | stat.S_ISGID | 0o775)
    os.symlink("a/top.txt", root / "link-to-file")
    os.symlink("a/b", root / "link-to-dir")
    os.symlink("nowhere", root / "dangling")
    many = root / "many"
    many.mkdir()
    for i in range(600):
        (many / f"file-with-a-fairly-long-name-{i:05d}.txt").write_bytes(rnd.randbytes(i % 97))
    small = root / "small"
    small.mkdir()
    for i in range(50):
        (small / f"s{i:03d}").write_bytes(rnd.randbytes(10_000 + i))
    bad = root / "bad"
    bad.mkdir()
    (bad / "eio.bin").write_bytes(b"e" * 5000)
    (bad / "runtime.bin").write_bytes(b"r" * 5000)
    (bad / "good.bin").write_bytes(b"g" * 5000)
