"""Synthetic repos for the checkout cases (bench/cases/checkouts.py), built through the library.

Run as a subprocess (``python -m bench.checkouts_synth HOME REPO FILES``) so the benchmark
process never holds the store's LMDB environment open while the mount daemon uses it. Prints one
JSON line: the repo, the file count, the directory count and the seconds it took.

Layout (the one bench/checkout_scaling.py used): ``max(10, FILES // 1000)`` directories
``dNNNNN/`` of equal size holding ``fNNNNNNN.bin``, so 10 changes can always fall in 10
different directories (1,000 files: 10 dirs of 100; 1,000,000: 1,000 dirs of 1,000). Every file
is the same 16-byte chunk; what grows is the trees. The repo is ``mutable`` (overwriting a
committed file through the mount is allowed) and its branch is ``main``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PER_DIR = 1000
MIN_DIRS = 10
CONTENT = b"same small file\n"


def layout(files: int) -> tuple[int, int]:
    """(directories, files per directory) for a repo of about ``files`` files."""
    ndirs = max(MIN_DIRS, files // PER_DIR)
    return ndirs, max(1, files // ndirs)


def dir_name(d: int) -> str:
    return f"d{d:05d}"


def file_name(d: int, i: int, per_dir: int) -> str:
    return f"f{d * per_dir + i:07d}.bin"


def build(home: Path, repo: str, files: int) -> dict[str, object]:
    from mlgitfs import api
    from mlgitfs.model.ids import ChunkId, hash_bytes
    from mlgitfs.model.objects import EntryKind, TreeEntry
    from mlgitfs.repo.commits import CommitRequest, write_commit
    from mlgitfs.repo.trees import NewObjects, build_dir

    t0 = time.perf_counter()
    api.init(home, repo, "dataset", "mutable")
    store = api.open_store(home)
    writer = store.chunks.writer()
    cid = ChunkId(hash_bytes(CONTENT))
    writer.add(cid, 0, CONTENT, len(CONTENT))  # codec 0: stored as is
    objs: NewObjects = []
    ndirs, per_dir = layout(files)
    top: list[TreeEntry] = []
    for d in range(ndirs):
        entries = [
            TreeEntry(
                file_name(d, i, per_dir).encode(),
                EntryKind.FILE,
                0o644,
                len(CONTENT),
                0,
                bytes(cid),
            )
            for i in range(per_dir)
        ]
        tid = build_dir(entries, objs)
        top.append(TreeEntry(dir_name(d).encode(), EntryKind.DIR, 0o755, per_dir, 0, bytes(tid)))
    root = build_dir(top, objs)
    write_commit(
        store, CommitRequest(repo, "main", "synthetic", {}, []), root, (), None, writer, objs
    )
    writer.reset()
    return {
        "repo": repo,
        "files": ndirs * per_dir,
        "dirs": ndirs,
        "per_dir": per_dir,
        "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.checkouts_synth", description=__doc__)
    p.add_argument("home", type=Path)
    p.add_argument("repo")
    p.add_argument("files", type=int)
    a = p.parse_args(argv)
    print(json.dumps(build(a.home, a.repo, a.files)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
