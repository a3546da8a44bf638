"""FUSE mounts for the benchmarks, each a context manager that always unmounts and stops its
daemon, even when the body fails: an ``mlgitfs mount`` (``mlgitfs unmount``, then a lazy
detach, then SIGTERM/SIGKILL of the daemon by its pid from ``mounts --json``) and any FUSE
program run in the foreground as our child (`fuse_process`: the bare pyfuse3 passthrough of
bench/passthrough.py here, rclone and s3fs in bench/s3mounts.py).

Also: a mount's bdi read-ahead (found from mountinfo without touching the mount), the timed
"mount, read one file" of the scale cases, and the reader subprocesses (bench/readers.py,
bench/s3readers.py), which time themselves so interpreter start-up is not in the numbers.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.ours import Mlgitfs
from bench.proc import CommandFailed, run, tail
from testsupport.mounts import detach, mount_dev, pid_alive, stop_pid, wait_until

READ_AHEAD_KB = 4096  # what mlgitfs.daemon.serve raises a mount's read-ahead to
ROOT = Path(__file__).resolve().parent.parent
MOUNT_TIMEOUT = 60.0


def read_ahead_kb(mountpoint: Path) -> int | None:
    dev = mount_dev(mountpoint)
    if dev is None:
        return None
    try:
        return int(Path(f"/sys/class/bdi/{dev}/read_ahead_kb").read_text().strip())
    except (OSError, ValueError):
        return None


def raise_read_ahead(mountpoint: Path, kb: int = READ_AHEAD_KB) -> bool:
    """As the mlgitfs daemon does (root only): larger read-ahead, larger FUSE reads."""
    dev = mount_dev(mountpoint)
    if dev is None:
        return False
    try:
        Path(f"/sys/class/bdi/{dev}/read_ahead_kb").write_text(f"{kb}\n")
    except OSError:
        return False
    return True


def mountpoint(path: Path) -> Path:
    """An empty directory to mount on (whatever was mounted there is detached first)."""
    if mount_dev(path) is not None:
        detach(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- mlgitfs mounts ----------------------------------------------------------------------------


@dataclass
class MlgitfsMount:
    store: Mlgitfs
    revspec: str
    path: Path
    seconds: float = 0.0  # wall time of `mlgitfs mount` (process start included)
    read_ahead_kb: int | None = None
    _pid: int | None = None

    @property
    def pid(self) -> int | None:
        """The daemon's pid (asked with ``mounts --json`` on first use, never while timed)."""
        if self._pid is None and mount_dev(self.path) is not None:
            self._pid = self.store.mount_pid(self.path)
        return self._pid

    def unmount(self, check: bool = False) -> float:
        """``mlgitfs unmount``: its wall seconds; the fallbacks when it fails (``check``: raise
        then, after cleaning up)."""
        pid = self.pid
        secs = 0.0
        failed: CommandFailed | None = None
        if mount_dev(self.path) is not None:
            try:
                secs = self.store.call("unmount", self.path, timeout=120).seconds
            except CommandFailed as e:
                failed = e
            detach(self.path)
        if pid is not None and not wait_until(lambda: not pid_alive(pid), 10.0):
            stop_pid(pid)
        if check and failed is not None:
            raise failed
        return secs


def mount_once(store: Mlgitfs, revspec: str, path: Path, *options: str) -> MlgitfsMount:
    """``mlgitfs mount REVSPEC PATH [OPTIONS]``, timed; the caller must call ``unmount``."""
    mountpoint(path)
    ran = store.call("mount", revspec, path, *options, timeout=120, check=False)
    mounted = MlgitfsMount(store, revspec, path, ran.seconds)
    if ran.returncode != 0:
        mounted.unmount()
        raise CommandFailed(f"mlgitfs mount {revspec} exited {ran.returncode}: {ran.stderr}")
    mounted.read_ahead_kb = read_ahead_kb(path)
    return mounted


@contextlib.contextmanager
def mlgitfs_mount(
    store: Mlgitfs, revspec: str, path: Path, *options: str
) -> Iterator[MlgitfsMount]:
    """A mount for a body that does not time the mount itself (its pid is known on entry)."""
    mounted = mount_once(store, revspec, path, *options)
    try:
        _ = mounted.pid
        yield mounted
    finally:
        mounted.unmount()


@dataclass(frozen=True)
class FirstRead:
    total: float  # from `since` (default: the start of `mount`) to the bytes
    mount: float  # `mlgitfs mount` alone
    read: float  # after `mount` returned: lookups and one read


def mount_and_read_one(
    store: Mlgitfs, revspec: str, path: Path, sample: str, expect: bytes, since: float = 0.0
) -> FirstRead:
    """Mount REVSPEC, read ``sample`` whole, unmount; raises if it does not hold ``expect``."""
    t0 = since or time.perf_counter()
    mounted = mount_once(store, revspec, path)
    try:
        t1 = time.perf_counter()
        with open(path / sample, "rb") as f:
            data = f.read()
        t2 = time.perf_counter()
    finally:
        mounted.unmount()
    if data != expect:
        raise AssertionError(f"{revspec}: {sample} read {data!r}, expected {expect!r}")
    return FirstRead(t2 - t0, mounted.seconds, t2 - t1)


# -- FUSE programs run as our children ---------------------------------------------------------


@dataclass
class ProcMount:
    name: str
    path: Path
    proc: subprocess.Popen[bytes]
    seconds: float  # from start to the mount answering a stat
    read_ahead_kb: int | None = None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Wait for a FUSE program to exit after its unmount; TERM, then KILL, when it does not."""
    for signal_it in (None, proc.terminate, proc.kill):
        if signal_it is not None:
            with contextlib.suppress(ProcessLookupError):
                signal_it()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
            return


@contextlib.contextmanager
def fuse_process(
    name: str,
    argv: Sequence[str],
    path: Path,
    log: Path,
    env: Mapping[str, str] | None = None,
    raise_ahead: bool = False,
) -> Iterator[ProcMount]:
    """Run a FUSE program in the foreground, wait until its mount answers, yield; then
    ``fusermount3 -u``, a lazy detach if needed, and the process stopped by its pid."""
    mountpoint(path)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            cwd=ROOT,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while mount_dev(path) is None:
            if proc.poll() is not None:
                raise CommandFailed(f"{name} exited {proc.returncode}:\n{tail(log)}")
            if time.monotonic() > deadline:
                raise CommandFailed(f"{name} did not mount in {MOUNT_TIMEOUT:.0f}s:\n{tail(log)}")
            time.sleep(0.02)
        os.stat(path)  # answered only once INIT is: the INIT reply resets the read-ahead
        if raise_ahead:
            raise_read_ahead(path)
        yield ProcMount(name, path, proc, time.perf_counter() - t0, read_ahead_kb(path))
    finally:
        if mount_dev(path) is not None:
            run(["fusermount3", "-u", path], capture=True, check=False)
        _stop(proc)
        detach(path)


def passthrough_mount(
    backing: Path, path: Path, log: Path, no_open: bool = False
) -> contextlib.AbstractContextManager[ProcMount]:
    """``python -m bench.passthrough BACKING PATH``, read-ahead raised like the daemon's."""
    argv = [sys.executable, "-m", "bench.passthrough", str(backing), str(path)]
    argv += ["--no-open"] if no_open else []
    return fuse_process("the passthrough", argv, path, log, raise_ahead=True)


# -- readers (in a subprocess: a stuck mount cannot hang the runner) ---------------------------


def reader(module: str, args: Sequence[str], timeout: float = 3600) -> dict[str, Any]:
    """``python -m MODULE ARGS`` (bench.readers, bench.s3readers): its one JSON line."""
    ran = run([sys.executable, "-m", module, *args], capture=True, cwd=ROOT, timeout=timeout)
    out: dict[str, Any] = ran.json()
    return out


def run_reader(args: Sequence[str], timeout: float = 1800) -> dict[str, Any]:
    return reader("bench.readers", args, timeout)
