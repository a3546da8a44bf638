"""A long history of small commits for the signing case (bench/cases/signing.py).

``python -m bench.signsynth build HOME COMMITS [--sign]`` makes repo ``s`` with COMMITS
commits in a chain, each holding one small file of its own (so each commit brings a tree
and a chunk), written in batches of BATCH per LMDB transaction as `write_commit` writes
them (objects, commit, generation). With ``--sign`` the store gets a key (`mlgitfs key
generate`) and each commit its author's signed statement in the same transaction, as
`write_commit` does when signing is on; the commits are the same either way (fixed times),
so the two stores differ only by the signatures. Prints one JSON line: commits, seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = "s"
BATCH = 1000
T0 = 1_700_000_000 * 10**9


def build(home: Path, commits: int, sign: bool) -> dict[str, object]:
    from mlgitfs import api
    from mlgitfs.meta import db, statements
    from mlgitfs.model import statement
    from mlgitfs.model.ids import ChunkId, ObjectId, hash_bytes
    from mlgitfs.model.objects import EntryKind, Tree, TreeEntry, make_commit, object_id
    from mlgitfs.repo import keyring

    t0 = time.perf_counter()
    api.init(home, REPO, "dataset", "mutable")
    store = api.open_store(home)
    key = None
    if sign:
        api.key_generate(home, "bench")
        with store.env.read() as txn:
            key = keyring.signer(keyring.Keyring(store.home), txn)
    head: ObjectId | None = None
    n = 0
    while n < commits:
        writer = store.chunks.writer()
        objs: list[tuple[ObjectId, bytes]] = []
        rows = []
        first = head
        for _ in range(min(BATCH, commits - n)):
            data = f"version {n}\n".encode()
            cid_chunk = ChunkId(hash_bytes(data))
            writer.add(cid_chunk, 0, data, len(data))
            entry = TreeEntry(b"labels.txt", EntryKind.FILE, 0o644, len(data), 0, cid_chunk)
            tree_id, tree_data = object_id(Tree((entry,)))
            objs.append((tree_id, tree_data))
            commit = make_commit(
                tree_id, (head,) if head else (), "bench@lab", T0 + n * 10**9, f"v{n}"
            )
            cid, cdata = object_id(commit)
            st = statement.sign_commit(key, cid, commit) if key is not None else None
            rows.append((cid, cdata, n + 1, st))
            head = cid
            n += 1
        writer.flush()
        with store.env.write() as txn:
            writer.record(txn)
            store.put_objects(txn, objs)
            for cid, cdata, gen, st in rows:
                db.put_object(txn, cid, cdata)
                db.put_generation(txn, cid, gen)
                if st is not None:
                    statements.put(txn, st)
            assert head is not None
            db.set_ref(txn, REPO, "heads/main", head, first, "bench history")
        writer.reset()
    api.close_store(home)
    return {"commits": commits, "signed": sign, "seconds": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.signsynth", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("home", type=Path)
    b.add_argument("commits", type=int)
    b.add_argument("--sign", action="store_true")
    a = p.parse_args(argv)
    print(json.dumps(build(a.home, a.commits, a.sign)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
