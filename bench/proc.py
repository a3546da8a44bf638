"""Subprocess helpers: timed runs with output kept in a log file, and ``du -sb``."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path


class CommandFailed(RuntimeError):
    pass


def run_timed(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> float:
    """Run a command, stdout+stderr appended to ``log``; returns wall seconds; raises on failure."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"$ {' '.join(map(str, argv))}\n".encode())
        out.flush()
        t0 = time.perf_counter()
        proc = subprocess.run(
            [str(a) for a in argv],
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            timeout=timeout,
            check=False,
        )
        secs = time.perf_counter() - t0
    if proc.returncode != 0:
        raise CommandFailed(
            f"{' '.join(map(str, argv))} exited {proc.returncode}; log tail:\n{tail(log)}"
        )
    return secs


def run_output(
    argv: Sequence[str | os.PathLike[str]], *, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [str(a) for a in argv],
        env=full_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )


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
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])
