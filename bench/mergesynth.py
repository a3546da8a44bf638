"""Two diverged branches of a synthetic version, for the merge case (bench/cases/merging.py).

``python -m bench.mergesynth HOME REPO FILES FRACTION`` builds REPO@main (testsupport.synth's
nested layout: ``dNNNNN/fNNNNNNN.bin``), then branches ``left`` and ``right`` from it that
each give FRACTION of the files new contents, chosen at random (fixed seed) over every
directory: left the even-numbered picks, right the odd ones, so the merge is clean. Each
branch is one commit made through the library (only the changed directories are rebuilt).
It prints one JSON line: files, dirs, changes per side, seconds. ``git_layout`` gives the
same files and changes to the git baseline.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from testsupport.synth import build, dir_name, file_name, layout

SEED = 15


def picks(files: int, min_dirs: int, fraction: float) -> tuple[list[int], list[int]]:
    """File numbers changed on left and on right (disjoint, spread over all directories)."""
    ndirs, per_dir = layout(files, min_dirs)
    total = ndirs * per_dir
    n = max(1, int(total * fraction))
    chosen = random.Random(SEED).sample(range(total), 2 * n)
    return sorted(chosen[0::2]), sorted(chosen[1::2])


def path_of(k: int, per_dir: int) -> tuple[str, str]:
    d, i = divmod(k, per_dir)
    return dir_name(d), file_name(d, i, per_dir)


def _branch(home: Path, repo: str, name: str, changed: list[int], per_dir: int) -> None:
    from mlgitfs import api
    from mlgitfs.meta import db
    from mlgitfs.model.ids import ChunkId, ObjectId, hash_bytes
    from mlgitfs.model.objects import EntryKind, TreeEntry
    from mlgitfs.repo.commits import CommitRequest, write_commit
    from mlgitfs.repo.treeedit import update_dir
    from mlgitfs.repo.trees import DirView, NewObjects

    store = api.open_store(home)
    with store.env.read() as txn:
        head = db.get_ref(txn, repo, "heads/main")
    assert head is not None
    root = store.commit(head).tree
    writer = store.chunks.writer()
    objs: NewObjects = []
    by_dir: dict[str, dict[bytes, TreeEntry | None]] = {}
    for k in changed:
        d, f = path_of(k, per_dir)
        data = f"{name} {k}\n".encode()
        cid = ChunkId(hash_bytes(data))
        writer.add(cid, 0, data, len(data))
        entry = TreeEntry(f.encode(), EntryKind.FILE, 0o644, len(data), 0, bytes(cid))
        by_dir.setdefault(d, {})[f.encode()] = entry
    top: dict[bytes, TreeEntry | None] = {}
    view = DirView(store, root)
    for d, changes in by_dir.items():
        old = view.lookup(d.encode())
        assert old is not None
        ref, count = update_dir(store, ObjectId(old.ref), changes, objs)
        top[d.encode()] = TreeEntry(old.name, old.kind, old.mode, count, 0, bytes(ref))
    tree, _ = update_dir(store, root, top, objs)
    req = CommitRequest(repo, name, f"change {len(changed)} files", {}, [])
    write_commit(store, req, tree, (head,), None, writer, objs)
    writer.reset()
    api.close_store(home)


def main(home: Path, repo: str, files: int, fraction: float, min_dirs: int = 10) -> int:
    t0 = time.perf_counter()
    s = build(home, repo, files, min_dirs=min_dirs)
    left, right = picks(files, min_dirs, fraction)
    _branch(home, repo, "left", left, s.per_dir)
    _branch(home, repo, "right", right, s.per_dir)
    out = {"files": s.files, "dirs": s.dirs, "changes": len(left)}
    print(json.dumps({**out, "seconds": time.perf_counter() - t0}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
