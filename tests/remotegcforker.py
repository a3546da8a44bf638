"""Subprocess body for tests/test_remotegc_kill.py (`python -m`): a forking server of remote
gc runs, so a kill costs a fork, not an interpreter start and the imports.

It prints "ready", then for each stdin line "PHASE DELAY" forks a child that runs one remote
gc of the store's remote `origin` and SIGKILLs itself DELAY seconds after PHASE begins (a
timer thread: the kill lands wherever the gc's main thread is then, in a transport call or
between two). The child prints each phase as it begins with the time; the parent then prints
"exit CODE". The parent never opens the store: each child opens its own after the fork.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path


def say(line: str) -> None:
    """One write of a whole line: a kill never leaves half of one in the pipe."""
    os.write(sys.stdout.fileno(), f"{line}\n".encode())


def child(home: Path, grace: float, pack_target: int, target: str, delay: float) -> int:
    """One gc, killed by a timer thread `delay` seconds after phase `target` begins."""
    from mlgitfs import api
    from mlgitfs.repo.remotegc import gc_remote

    def phase(name: str) -> None:
        say(f"{name} {time.monotonic()}")
        if name == target:
            kill = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL))
            kill.daemon = True
            kill.start()

    try:
        gc_remote(api.open_store(home), "origin", grace=grace, phase=phase,
                  pack_target=pack_target)  # fmt: skip
    except BaseException as exc:
        print(f"gc failed: {exc!r}", file=sys.stderr, flush=True)
        return 1
    say(f"done {time.monotonic()}")
    return 0


def main(home: Path, grace: float, pack_target: int) -> None:
    from mlgitfs import api  # noqa: F401 - imported once here, not in every child
    from mlgitfs.repo import remotegc  # noqa: F401

    print("ready", flush=True)
    for line in sys.stdin:
        target, delay = line.split()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's result is its exit status
            os._exit(child(home, grace, pack_target, target, float(delay)))
        _, status = os.waitpid(pid, 0)
        print(f"exit {os.waitstatus_to_exitcode(status)}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))
