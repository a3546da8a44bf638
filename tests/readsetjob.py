"""A DataLoader-like job for read-set tests: the main process lists a mount's files, and two
short-lived worker processes (forked, as torch's DataLoader makes them) read their share.

Usage: python readsetjob.py ROOT READY GO PATH...: writes READY, waits for GO to exist, then
the workers read PATH... (relative to ROOT) whole, each worker every second one.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time


def _worker(root: str, paths: list[str]) -> None:
    for p in paths:
        with open(os.path.join(root, p), "rb") as f:
            while f.read(65536):
                pass


def main(argv: list[str]) -> int:
    root, ready, go, *paths = argv
    os.listdir(root)  # the main process lists, as a Dataset's __init__ does
    with open(ready, "w") as f:
        f.write("ready")
    deadline = time.monotonic() + 60
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.01)
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_worker, args=(root, paths[i::2])) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return 0 if all(w.exitcode == 0 for w in workers) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
