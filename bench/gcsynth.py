"""Synthetic stores for the gc case (bench/cases/gc.py), built through the library.

``python -m bench.gcsynth build HOME FILES FRACTION`` makes repo ``g``: ``main`` holds FILES
files of unique small contents (one chunk each) in testsupport.synth's nested layout; branch
``side`` changes FRACTION of them (new contents, spread over the directories) and is then
deleted with the reflog expiring at once, so that FRACTION of the files' chunks (and the
trees leading to them) are garbage. It prints one JSON line: files, garbage files, seconds.

``python -m bench.gcsynth gc HOME`` runs one gc and prints its result as JSON with the
process's peak RSS (``maxrss_kib``, LMDB's mapped pages included) and its peak anonymous
memory (``peak_anon_kib``, sampled every 50 ms), so the case measures the gc's alone.
"""

from __future__ import annotations

import dataclasses
import json
import random
import resource
import sys
import threading
import time
from pathlib import Path

from testsupport.synth import dir_name, file_name, layout

REPO = "g"


def _content(k: int, version: int) -> bytes:
    return f"file {k} version {version}\n".encode() * 3


def build(home: Path, files: int, fraction: float) -> dict[str, float]:
    from mlgitfs import api
    from mlgitfs.model.ids import ChunkId, hash_bytes
    from mlgitfs.model.objects import EntryKind, TreeEntry
    from mlgitfs.repo.commits import CommitRequest, write_commit
    from mlgitfs.repo.trees import NewObjects, build_dir

    t0 = time.perf_counter()
    api.init(home, REPO, "dataset", "mutable")
    api.config(home, "reflog-expiry", "0")
    store = api.open_store(home)
    ndirs, per_dir = layout(files, 10)
    total = ndirs * per_dir
    changed = set(random.Random(16).sample(range(total), max(1, int(total * fraction))))

    def version(branch: str, parent: tuple[bytes, ...], picks: set[int] | None) -> bytes:
        writer = store.chunks.writer()
        objs: NewObjects = []
        top = []
        for d in range(ndirs):
            entries = []
            for i in range(per_dir):
                k = d * per_dir + i
                data = _content(k, 1 if picks is not None and k in picks else 0)
                cid = ChunkId(hash_bytes(data))
                if picks is None or k in picks:
                    writer.add(cid, 0, data, len(data))
                name = file_name(d, i, per_dir).encode()
                entries.append(TreeEntry(name, EntryKind.FILE, 0o644, len(data), 0, bytes(cid)))
            tid = build_dir(entries, objs)
            top.append(TreeEntry(dir_name(d).encode(), EntryKind.DIR, 0o755, per_dir, 0, tid))
        req = CommitRequest(REPO, branch, branch, {}, [])
        head = parent[0] if parent else None
        cid, _ = write_commit(store, req, build_dir(top, objs), parent, head, writer, objs)  # type: ignore[arg-type]
        writer.reset()
        return bytes(cid)

    main = version("main", (), None)
    api.branch_create(home, f"{REPO}@side")
    side_head = version("side", (main,), changed)
    assert side_head
    api.branch_delete(home, f"{REPO}@side", force=True)
    api.close_store(home)
    return {"files": total, "garbage_files": len(changed), "seconds": time.perf_counter() - t0}


def _rss_anon_kib() -> int:
    """Anonymous resident memory (the heap), not LMDB's mapped file pages, which ru_maxrss
    counts too although the kernel can drop them at any time."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def gc(home: Path) -> dict[str, object]:
    from mlgitfs import api

    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], _rss_anon_kib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    r = api.gc(home)
    secs = time.perf_counter() - t0
    done.set()
    sampler.join()
    out: dict[str, object] = dataclasses.asdict(r)
    out["seconds"] = secs
    out["maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out["peak_anon_kib"] = peak[0]
    return out


if __name__ == "__main__":
    if sys.argv[1] == "build":
        print(json.dumps(build(Path(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))))
    else:
        print(json.dumps(gc(Path(sys.argv[2]))))
