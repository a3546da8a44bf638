"""Running one hook command: in a process group of its own, killed with the whole group at
its timeout or when it exits (its stragglers must not keep the view busy), its output in
files so that a chatty hook never blocks; the tail of the output is kept for the message.
"""

from __future__ import annotations

import os
import signal
import subprocess
from contextlib import suppress
from pathlib import Path
from typing import IO

OUTPUT_TAIL = 4000  # characters of a hook's stderr (and stdout) kept for the message
TIMEOUT_CODE = 124  # a timed-out hook's status, as timeout(1) reports it


def spawn(
    argv: list[str],
    cwd: Path,
    env: dict[str, str],
    stdin: IO[bytes],
    out: IO[bytes],
    err: IO[bytes],
    timeout: float,
) -> tuple[str, int]:
    try:
        proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=stdin, stdout=out, stderr=err, start_new_session=True
        )
    except OSError as exc:
        err.write(f"cannot run {argv[0]}: {exc.strerror}".encode())
        return "crashed", 127
    try:
        code = proc.wait(timeout=timeout)
        status = "passed" if code == 0 else "failed" if code > 0 else "crashed"
    except subprocess.TimeoutExpired:
        err.write(f"\n(killed after {timeout:g} s)".encode())
        status, code = "timed out", TIMEOUT_CODE
    finally:
        # The whole group: a hook's background children must not outlive it (nor keep the
        # view busy so that it cannot be unmounted).
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return status, code


def tail(f: IO[bytes]) -> str:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - OUTPUT_TAIL))
    text = f.read().decode(errors="replace").strip()
    return ("..." + text if size > OUTPUT_TAIL else text).strip()
