"""Commit and status of a writable checkout against repo size (design §6: O(changes)).

Stand-alone: `python -m bench.checkout_scaling [--sizes 1000,100000,1000000]`. Each repo is
synthesized directly (directories of 1,000 files sharing one chunk, so making a 1,000,000-file
commit takes seconds, not an import), then a checkout view (no kernel: the FUSE round trip
per operation does not depend on repo size) changes 10 files in 10 directories and commits.
Prints a markdown table: seconds for status and commit per size, and the ratio to the
smallest size (target: at most 2x).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import trio

from mlgitfs import api
from mlgitfs.model.ids import ChunkId, InodeNo, ObjectId, hash_bytes
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.repo.commits import CommitRequest, write_commit
from mlgitfs.repo.trees import build_dir
from mlgitfs.store import compress
from mlgitfs.vfs import changes, checkout_ops
from mlgitfs.vfs.factory import open_checkout_view

PER_DIR = 1000


def synthesize(home: Path, files: int) -> None:
    api.init(home, "ds", "dataset", "mutable")
    store = api.open_store(home)
    data = b"sample\n"
    cid = ChunkId(hash_bytes(data))
    writer = store.chunks.writer()
    codec, stored = compress.compress(data)
    writer.add(cid, codec, stored, len(data))
    objs: list[tuple[ObjectId, bytes]] = []
    dirs = []
    ndirs = max(10, files // PER_DIR)
    for d in range(ndirs):
        entries = [
            TreeEntry(f"f{i:05d}".encode(), EntryKind.FILE, 0o644, len(data), 0, bytes(cid))
            for i in range(files // ndirs)
        ]
        ref = build_dir(entries, objs)
        dirs.append(TreeEntry(f"d{d:05d}".encode(), EntryKind.DIR, 0o755, len(entries), 0,
                              bytes(ref)))  # fmt: skip
    root = build_dir(dirs, objs)
    req = CommitRequest("ds", "main", "synth", {}, [])
    write_commit(store, req, root, None, writer, objs)
    writer.reset()


async def measure(home: Path) -> tuple[float, float, float]:
    view = open_checkout_view(api.open_store(home), "ds", "main", 64 << 20)
    try:
        t0 = time.perf_counter()
        for k in range(10):
            node = view.resolve([f"d{k:05d}".encode(), b"f00007"])
            assert node is not None
            fh = await view.open(InodeNo(node.ino), os.O_WRONLY)
            await view.write(fh, 0, b"changed %d\n" % k)
            view.release(fh)
        t_edit = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert len(changes.status(view)) == 10
        t_status = time.perf_counter() - t0
        t0 = time.perf_counter()
        reply = await checkout_ops.handle(view, "commit", {"message": "ten"})
        t_commit = time.perf_counter() - t0
        assert reply.value["files_hashed"] == 10
        return t_edit, t_status, t_commit
    finally:
        view.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="1000,100000,1000000")
    a = p.parse_args()
    rows = []
    for n in [int(x) for x in a.sizes.split(",")]:
        with tempfile.TemporaryDirectory(prefix="mlgitfs-bench-") as tmp:
            home = Path(tmp) / "store"
            t0 = time.perf_counter()
            synthesize(home, n)
            t_make = time.perf_counter() - t0
            edit, status, commit = trio.run(measure, home)
            rows.append((n, t_make, edit, status, commit))
    base = rows[0]
    print("| files | make repo s | edit 10 s | status s | commit s | status x | commit x |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, make, edit, status, commit in rows:
        print(f"| {n:,} | {make:.2f} | {edit:.4f} | {status:.5f} | {commit:.4f} | "
              f"{status / base[3]:.2f} | {commit / base[4]:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
