"""FUSE mounts for the mount cases: an ``mlgitfs mount`` of a tag and the bare pyfuse3
passthrough (bench/passthrough.py), both as context managers that always unmount and stop their
daemon, even when the body fails (``mlgitfs unmount``, then ``fusermount3 -u -z`` as fallback,
then SIGTERM/SIGKILL of the daemon we started, by pid).

Also: the mount's bdi read-ahead (read from mountinfo without touching the mount) and the
reader subprocesses of bench/readers.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from bench.ours import QUIET_ENV, Mlgitfs
from bench.proc import CommandFailed, tail
from testsupport.mounts import detach, mount_dev, pid_alive, stop_pid, wait_until

T = TypeVar("T")

READ_AHEAD_KB = 4096  # what mlgitfs.daemon.serve raises a mount's read-ahead to


# -- mountinfo ---------------------------------------------------------------------------------


def read_ahead_path(dev: str) -> Path:
    return Path(f"/sys/class/bdi/{dev}/read_ahead_kb")


def read_ahead_kb(mountpoint: Path) -> int | None:
    dev = mount_dev(mountpoint)
    if dev is None:
        return None
    try:
        return int(read_ahead_path(dev).read_text().strip())
    except (OSError, ValueError):
        return None


def raise_read_ahead(mountpoint: Path, kb: int = READ_AHEAD_KB) -> bool:
    """As the mlgitfs daemon does (root only): larger read-ahead, larger FUSE reads."""
    dev = mount_dev(mountpoint)
    if dev is None:
        return False
    try:
        read_ahead_path(dev).write_text(f"{kb}\n")
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
    pid: int | None = None
    read_ahead_kb: int | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def unmount(self) -> None:
        if mount_dev(self.path) is not None:
            proc = subprocess.run(
                [str(self.store.script), "--home", str(self.store.home), "unmount", str(self.path)],
                env={**os.environ, **QUIET_ENV},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            with self.store.log.open("a") as log:
                log.write(f"$ mlgitfs unmount {self.path}\n{proc.stdout}{proc.stderr}")
            if mount_dev(self.path) is not None:
                detach(self.path)
        pid = self.pid
        if pid is not None and not wait_until(lambda: not pid_alive(pid), 10.0):
            stop_pid(pid)


def mount_once(store: Mlgitfs, revspec: str, path: Path) -> MlgitfsMount:
    """``mlgitfs mount REVSPEC PATH``, timed; the caller must call ``unmount``."""
    mountpoint(path)
    argv = [str(store.script), "--home", str(store.home), "mount", revspec, str(path)]
    t0 = time.perf_counter()
    proc = subprocess.run(
        argv,
        env={**os.environ, **QUIET_ENV},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    secs = time.perf_counter() - t0
    with store.log.open("a") as log:
        log.write(f"$ {' '.join(argv)}\n{proc.stdout}{proc.stderr}")
    m = re.search(r"pid (\d+)", proc.stdout + proc.stderr)  # the CLI says it on stderr
    mounted = MlgitfsMount(store, revspec, path, secs, int(m.group(1)) if m else None)
    if proc.returncode != 0:
        mounted.unmount()
        raise CommandFailed(
            f"mlgitfs mount {revspec} exited {proc.returncode}; log tail:\n{tail(store.log)}"
        )
    mounted.read_ahead_kb = read_ahead_kb(path)
    return mounted


@contextlib.contextmanager
def mlgitfs_mount(store: Mlgitfs, revspec: str, path: Path) -> Iterator[MlgitfsMount]:
    mounted = mount_once(store, revspec, path)
    try:
        yield mounted
    finally:
        mounted.unmount()


# -- the bare pyfuse3 passthrough --------------------------------------------------------------


@dataclass
class PassthroughMount:
    path: Path
    proc: subprocess.Popen[bytes]
    read_ahead_raised: bool = False
    read_ahead_kb: int | None = None


@contextlib.contextmanager
def passthrough_mount(
    backing: Path, path: Path, log: Path, no_open: bool = False
) -> Iterator[PassthroughMount]:
    """``python -m bench.passthrough BACKING PATH`` as a subprocess, read-ahead raised."""
    mountpoint(path)
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "bench.passthrough", str(backing), str(path)]
    if no_open:
        argv.append("--no-open")
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=Path(__file__).resolve().parent.parent,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    mounted = PassthroughMount(path, proc)
    try:
        deadline = time.monotonic() + 30
        while mount_dev(path) is None:
            if proc.poll() is not None:
                raise CommandFailed(f"the passthrough exited {proc.returncode}:\n{tail(log)}")
            if time.monotonic() > deadline:
                raise CommandFailed(f"the passthrough did not mount in 30s:\n{tail(log)}")
            time.sleep(0.02)
        os.stat(path)  # answered only once INIT is: the INIT reply resets the read-ahead
        mounted.read_ahead_raised = raise_read_ahead(path)
        mounted.read_ahead_kb = read_ahead_kb(path)
        yield mounted
    finally:
        if mount_dev(path) is not None:
            subprocess.run(["fusermount3", "-u", str(path)], capture_output=True, check=False)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if mount_dev(path) is not None:
            detach(path)


# -- readers (bench/readers.py in a subprocess: a stuck mount cannot hang the runner) -----------


def run_reader(args: Sequence[str], timeout: float = 1800) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.readers", *args],
        cwd=Path(__file__).resolve().parent.parent,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise CommandFailed(f"reader {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def timed_command(argv: Sequence[str], timeout: float = 1800) -> float:
    """Wall seconds of a command whose stdout goes to /dev/null (e.g. ``find``)."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout,
        check=False,
    )
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr!r}")
    return secs


# -- warm runs on a machine where others drop caches ---------------------------------------------


def drop_count() -> int | None:
    """How many times anyone wrote to /proc/sys/vm/drop_caches since boot (``drop_pagecache``
    in /proc/vmstat); None where the kernel does not count."""
    try:
        with open("/proc/vmstat", encoding="ascii") as f:
            for line in f:
                if line.startswith("drop_pagecache "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class WarmRuns:
    """Valid warm measurements only: a warm run counts when no cache drop (ours or another
    process's: the machine is shared) happened since the last full read of the same thing
    ended, nor during the run itself. Invalid runs still refill the cache for the next try."""

    def __init__(self) -> None:
        self.filled: dict[str, int | None] = {}
        self.disturbed = 0  # runs during which a cache drop happened
        self.invalid = 0  # warm runs thrown away

    def run(self, key: str, fn: Callable[[], T]) -> tuple[T, bool]:
        before = drop_count()
        result = fn()
        after = drop_count()
        valid = before is not None and before == after and self.filled.get(key) == before
        if before != after:
            self.disturbed += 1
        self.filled[key] = after if before == after else None
        return result, valid

    def cold(self, key: str, fn: Callable[[], T]) -> T:
        """A cold run (after the caller's own drop): it fills the cache for later warm runs."""
        return self.run(key, fn)[0]

    def warm(
        self, jobs: dict[str, Callable[[], T]], want: int, max_tries: int
    ) -> dict[str, list[T]]:
        """``want`` valid warm results of each job, interleaved (load hits all alike); after
        ``max_tries`` rounds, whatever was measured (valid first) so a run still reports."""
        valid: dict[str, list[T]] = {k: [] for k in jobs}
        spoiled: dict[str, list[T]] = {k: [] for k in jobs}
        for _ in range(max_tries):
            if all(len(v) >= want for v in valid.values()):
                break
            for key, fn in jobs.items():
                if len(valid[key]) >= want:
                    continue
                result, ok = self.run(key, fn)
                (valid if ok else spoiled)[key].append(result)
                self.invalid += 0 if ok else 1
        return {k: valid[k] or spoiled[k] for k in jobs}

    def info(self) -> dict[str, int | None]:
        return {
            "drop_pagecache_count": drop_count(),
            "runs_disturbed_by_a_cache_drop": self.disturbed,
            "warm_runs_discarded": self.invalid,
        }
