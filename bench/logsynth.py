"""A long synthetic history for the log case (bench/cases/history.py), built through the library.

``python -m bench.logsynth build HOME COMMITS FILES`` makes repo ``h``: a first version of
FILES files (testsupport.synth's nested layout, ``dNNNNN/fNNNNNNN.bin``), then COMMITS
commits that each change one to three files in one to three directories chosen at random
(fixed seed), now and then adding a file or deleting one, as a labelling team's history
would. One file, TARGET's pick, is also changed by every HIT_EVERY-th commit, so a query for
it has about COMMITS / HIT_EVERY answers. Commits are written in batches of BATCH per LMDB
transaction (objects, commit, generation and commit-graph record, as `write_commit` writes
them; the record by the same `commitindex.make_record`), the branch moved once a batch.
Prints one JSON line: files, commits, the target path, its directory, seconds.

``python -m bench.logsynth query HOME PATH [--no-index]`` runs `api.log(h, --path PATH)` in
this fresh process and prints its seconds and the number of commits found.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from mlgitfs.model.ids import ChunkId, hash_bytes
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.store.cache import SegmentWriter

SEED = 18
HIT_EVERY = 100
BATCH = 500
REPO = "h"


def build(home: Path, commits: int, files: int) -> dict[str, object]:
    from bench.commitbatch import CommitBatch
    from mlgitfs import api
    from mlgitfs.meta import db
    from mlgitfs.model.ids import ObjectId
    from mlgitfs.repo.treeedit import update_dir
    from mlgitfs.repo.trees import DirView, NewObjects
    from testsupport.synth import build as synth_build
    from testsupport.synth import dir_name, file_name, layout

    t0 = time.perf_counter()
    synth = synth_build(home, REPO, files)
    ndirs, per_dir = layout(files)
    rnd = random.Random(SEED)
    target_dir = ndirs // 2
    target = (dir_name(target_dir), file_name(target_dir, per_dir // 3, per_dir))
    store = api.open_store(home)
    with store.env.read() as txn:
        head = db.get_ref(txn, REPO, "heads/main")
        assert head is not None
        gen = db.get_generation(txn, head) or 1
    tree = store.commit(head).tree
    extra = 0  # files added so far (named past the synthetic ones)
    n = 0
    while n < commits:
        batch = CommitBatch(store, REPO, head, gen)
        writer, reader = batch.writer, batch.reader
        for _ in range(min(BATCH, commits - n)):
            changes: dict[str, dict[bytes, TreeEntry | None]] = {}
            for _ in range(rnd.randint(1, 3)):
                d = rnd.randrange(ndirs)
                for _ in range(rnd.randint(1, 3)):
                    name = file_name(d, rnd.randrange(per_dir), per_dir).encode()
                    changes.setdefault(dir_name(d), {})[name] = _file(writer, name, f"{n} {name!r}")
            roll = rnd.random()
            if roll < 0.05:  # a new file
                d = rnd.randrange(ndirs)
                extra += 1
                name = f"new{extra:07d}.bin".encode()
                changes.setdefault(dir_name(d), {})[name] = _file(writer, name, f"new {extra}")
            elif roll < 0.08:  # a deleted file (the target is never deleted)
                d = rnd.randrange(ndirs)
                name = file_name(d, rnd.randrange(per_dir), per_dir).encode()
                if (dir_name(d), name.decode()) != target:
                    changes.setdefault(dir_name(d), {})[name] = None
            if n % HIT_EVERY == HIT_EVERY - 1:
                tname = target[1].encode()
                changes.setdefault(target[0], {})[tname] = _file(writer, tname, f"target {n}")
            objs: NewObjects = []
            view = DirView(reader, tree)
            top: dict[bytes, TreeEntry | None] = {}
            for dname, ch in changes.items():
                old = view.lookup(dname.encode())
                assert old is not None
                ref, count = update_dir(reader, ObjectId(old.ref), ch, objs)
                top[dname.encode()] = TreeEntry(old.name, old.kind, old.mode, count, 0, bytes(ref))
            batch.add(objs)
            new_tree, _ = update_dir(reader, tree, top, objs)
            batch.add(objs)
            head, tree = batch.commit(n, new_tree, tree), new_tree
            n += 1
        batch.write("bench history")
        gen = batch.gen
    api.close_store(home)
    return {
        "files": synth.files + extra,
        "commits": commits + 1,
        "target": "/".join(target),
        "target_dir": target[0],
        "seconds": time.perf_counter() - t0,
    }


def _file(writer: SegmentWriter, name: bytes, text: str) -> TreeEntry:
    """A file entry `name` holding `text`, its chunk added to `writer`."""
    data = text.encode()
    cid = ChunkId(hash_bytes(data))
    writer.add(cid, 0, data, len(data))  # codec 0: stored as is
    return TreeEntry(name, EntryKind.FILE, 0o644, len(data), 0, bytes(cid))


def query(home: Path, path: str, index: bool) -> dict[str, object]:
    from mlgitfs import api

    t0 = time.perf_counter()
    found = api.log(home, REPO, [path], use_index=index)
    seconds = time.perf_counter() - t0
    api.close_store(home)
    return {"seconds": seconds, "found": len(found), "index": index}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.logsynth", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("home", type=Path)
    b.add_argument("commits", type=int)
    b.add_argument("files", type=int)
    q = sub.add_parser("query")
    q.add_argument("home", type=Path)
    q.add_argument("path")
    q.add_argument("--no-index", action="store_true")
    a = p.parse_args(argv)
    if a.cmd == "build":
        out = build(a.home, a.commits, a.files)
    else:
        out = query(a.home, a.path, not a.no_index)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
