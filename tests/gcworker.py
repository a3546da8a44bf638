"""Subprocess body for tests/test_gc_kill.py (`python -m`): a forking server of gc runs.

Starting Python and importing mlgitfs takes longer than a small gc, so this process does
it once, then forks one child per line read from stdin; the child runs one gc and exits.
It prints each child's pid (the test kills it) and then how the child ended. The parent
never opens the store: each child opens its own LMDB environment after the fork.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(home: Path, threshold: float) -> None:
    from mlgitfs import api

    gc = api.gc  # mlgitfs.api imports a verb's module on first use: before "ready"
    print("ready", flush=True)
    for _ in sys.stdin:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's result is its exit status
            code = 0
            try:
                gc(home, threshold=threshold)
            except BaseException as exc:
                print(f"gc failed: {exc!r}", file=sys.stderr, flush=True)
                code = 1
            os._exit(code)
        print(pid, flush=True)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), float(sys.argv[2]))
