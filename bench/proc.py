"""The one way the benchmarks run a program: `run`, timed (wall seconds, process start included),
its output captured, logged or discarded; plus CPU counters and ``du -sb``."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent  # the checkout: `python -m bench.X` runs here


class CommandFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Ran:
    """A finished command: wall seconds, exit status and what it printed (when captured)."""

    argv: list[str]
    seconds: float
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The last line of stdout as JSON (the readers and ``--json`` commands print one)."""
        return json.loads(self.stdout.strip().splitlines()[-1])


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log: Path | None = None,
    capture: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    check: bool = True,
) -> Ran:
    """Run ``argv`` (``env`` added to this process's environment, no stdin) and time it.

    Output: with ``capture`` stdout and stderr are kept in the result (and appended to ``log``
    afterwards when given); without it they go straight to ``log`` (nothing in this process
    reads them while the clock runs), or stdout to /dev/null and stderr kept when there is no
    log. ``check``: a non-zero exit raises `CommandFailed` with the tail of what it printed.
    """
    args = [os.fspath(a) for a in argv]
    full_env = {**os.environ, **(env or {})}
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    to_log = log is not None and not capture
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(open(log, "ab")) if to_log and log is not None else None
        if sink is not None:
            sink.write(f"$ {' '.join(args)}\n".encode())
            sink.flush()
        out: int | IO[bytes] = subprocess.PIPE if capture else sink or subprocess.DEVNULL
        err: int | IO[bytes] = subprocess.PIPE if sink is None else sink
        t0 = time.perf_counter()
        proc = subprocess.run(
            args,
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            timeout=timeout,
            check=False,
        )
        secs = time.perf_counter() - t0
    ran = Ran(args, secs, proc.returncode, _text(proc.stdout), _text(proc.stderr))
    if log is not None and capture:
        with log.open("a") as f:
            f.write(f"$ {' '.join(args)}\n{ran.stdout[-2000:]}{ran.stderr}")
    if check and ran.returncode != 0:
        said = tail(log) if to_log and log is not None else ran.stderr.strip()[-3000:]
        raise CommandFailed(f"{' '.join(args)} exited {ran.returncode}:\n{said}")
    return ran


def run_module(module: str, *args: str, timeout: float | None = None) -> Any:
    """Run ``python -m bench.MODULE ARGS`` (a synthesizer or a query, in a fresh process of
    its own: its own store environment and caches) and return the JSON line it prints last.
    A non-zero exit raises `CommandFailed` with what it said on stderr."""
    argv = [sys.executable, "-m", f"bench.{module}", *args]
    return run(argv, capture=True, cwd=ROOT, timeout=timeout).json()


def _text(data: bytes | None) -> str:
    return data.decode(errors="replace") if data else ""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far (``/proc/PID/stat``)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's children that have been waited for."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def du_bytes(path: Path) -> int:
    """Apparent size in bytes of everything under ``path`` (``du -sb``)."""
    return int(run(["du", "-sb", path], capture=True).stdout.split()[0])
