"""Synthetic commits of many files, built through the library (no real directory).

Run as a subprocess (``python -m bench.synth HOME REPO FILES [--flat]``) so the benchmark process
never holds the store's LMDB environment open while ``mlgitfs`` subprocesses use it. Every file
is the same 16-byte chunk (one chunk in the store); what grows is the trees. Prints one JSON
line: the repo, the number of files, a sample path to read and the seconds it took.

- nested (default): ``dNNNNN/fNNNNNNN.jpg``, 1,000 files per directory;
- ``--flat``: all files in one directory ``flat/``, stored as a paged tree (a prolly-tree of
  pages once it passes the page limit).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

PER_DIR = 1000
CONTENT = b"same small file\n"


def build(home: Path, repo: str, files: int, flat: bool) -> dict[str, object]:
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
    writer.add(cid, 0, CONTENT, len(CONTENT))
    objs: NewObjects = []
    size = len(CONTENT)

    def file_entry(i: int) -> TreeEntry:
        return TreeEntry(f"f{i:07d}.jpg".encode(), EntryKind.FILE, 0o644, size, 0, bytes(cid))

    if flat:
        entries = [file_entry(i) for i in range(files)]
        sub = build_dir(entries, objs)
        top = [TreeEntry(b"flat", EntryKind.DIR, 0o755, files, 0, bytes(sub))]
        sample = f"flat/f{files // 2:07d}.jpg"
    else:
        top = []
        ndirs = max(1, files // PER_DIR)
        for d in range(ndirs):
            es = [file_entry(i) for i in range(d * PER_DIR, (d + 1) * PER_DIR)]
            tid = build_dir(es, objs)
            top.append(
                TreeEntry(f"d{d:05d}".encode(), EntryKind.DIR, 0o755, len(es), 0, bytes(tid))
            )
        files = ndirs * PER_DIR
        mid = ndirs // 2
        sample = f"d{mid:05d}/f{mid * PER_DIR + PER_DIR // 2:07d}.jpg"
    root = build_dir(top, objs)
    write_commit(
        store,
        CommitRequest(repo, "main", "synthetic", {}, []),
        root,
        (),
        None,
        writer,
        objs,
    )
    api.tag_create(home, f"{repo}@v1")
    return {
        "repo": repo,
        "files": files,
        "flat": flat,
        "sample": sample,
        "content": CONTENT.decode(),
        "seconds": time.perf_counter() - t0,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.synth", description=__doc__)
    p.add_argument("home", type=Path)
    p.add_argument("repo")
    p.add_argument("files", type=int)
    p.add_argument("--flat", action="store_true")
    a = p.parse_args(argv)
    print(json.dumps(build(a.home, a.repo, a.files, a.flat)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
