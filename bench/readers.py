"""Readers timed from inside (interpreter start excluded), run as subprocesses by the mount cases.

- ``python -m bench.readers seq FILE``: read FILE front to back with 1 MiB ``readinto`` calls;
- ``python -m bench.readers epoch ROOT [--procs N] [--seed S]``: one epoch of a small-file
  loader, as a PyTorch DataLoader over a torchvision ImageFolder does it: ``os.walk`` the tree
  (in the parent, like building the dataset), shuffle the file list with a fixed seed, fork N
  reader processes that each open and read whole every N-th file of the shuffled list.
  ``--unbuffered`` opens with ``buffering=0``: Python then skips the ``isatty()`` that a
  buffered ``open()`` makes, an ``ioctl`` that FUSE sends to the daemon for every file.

Each prints one JSON line: seconds, bytes, files (and walk_seconds for epochs).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import sys
import time
from multiprocessing.connection import Connection

BLOCK = 1 << 20


def read_sequential(path: str) -> dict[str, float | int]:
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    total = 0
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(view)
            if not n:
                break
            total += n
    return {"seconds": time.perf_counter() - t0, "bytes": total}


def _read_files(paths: list[str], buffering: int, out: Connection) -> None:
    total = 0
    for p in paths:
        with open(p, "rb", buffering=buffering) as f:
            total += len(f.read())
    out.send(total)
    out.close()


def epoch(root: str, procs: int, seed: int, unbuffered: bool = False) -> dict[str, float | int]:
    t0 = time.perf_counter()
    files: list[str] = []
    for dirpath, dirnames, names in os.walk(root):
        dirnames.sort()
        files.extend(os.path.join(dirpath, n) for n in sorted(names))
    t_walk = time.perf_counter() - t0
    random.Random(seed).shuffle(files)
    ctx = mp.get_context("fork")
    workers = []
    for i in range(procs):
        recv, send = ctx.Pipe(duplex=False)
        w = ctx.Process(target=_read_files, args=(files[i::procs], 0 if unbuffered else -1, send))
        w.start()
        send.close()
        workers.append((w, recv))
    total = 0
    for w, recv in workers:
        total += int(recv.recv())
        w.join()
        if w.exitcode != 0:
            raise SystemExit(f"reader process exited {w.exitcode}")
    return {
        "seconds": time.perf_counter() - t0,
        "walk_seconds": t_walk,
        "files": len(files),
        "bytes": total,
        "procs": procs,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.readers", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("seq")
    s.add_argument("file")
    e = sub.add_parser("epoch")
    e.add_argument("root")
    e.add_argument("--procs", type=int, default=1)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--unbuffered", action="store_true")
    a = p.parse_args(argv)
    if a.cmd == "seq":
        result = read_sequential(a.file)
    else:
        result = epoch(a.root, a.procs, a.seed, a.unbuffered)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
