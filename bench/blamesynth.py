"""A labels table with a long history for the blame case (bench/cases/blaming.py), built
through the library.

``python -m bench.blamesynth build HOME ROWS COMMITS`` makes repo ``b``: a first version of
``labels.csv`` with ROWS rows (about 100 bytes a row), then COMMITS - 1 commits that each
relabel one to five rows chosen at random (fixed seed), as a labelling team's history would.
A relabel keeps the row's length (labels of one length replace each other), so rows stay
where they are; the chunks are the store's own content-defined chunks, cut again only
around each edit (from the chunk boundary before it until a cut meets an old boundary
after it, which is where a whole-file cut would resynchronise too), so a commit costs its
edits, not a 100 MB re-chunk. Commits are written in batches per LMDB transaction with
their commit-graph records (`commitindex.make_record`, as `write_commit` writes them), and
each new chunk with its quote parity, as an import of a CSV records it (``--no-quotes``:
without, as a store made before that; the first blame then counts those it needs).
Prints one JSON line: rows, bytes, commits, a key never relabelled, the key relabelled
last, seconds.

``python -m bench.blamesynth blame HOME [--row KEY]`` runs `api.blame` of ``b:labels.csv``
by ``image_id`` in this fresh process (one row, or every row) and prints its seconds and
how many answers differ from those the history was made with (kept in HOME/truth.json).
``python -m bench.blamesynth reference HOME N`` times the plain way on the first N versions
from the head: each decoded whole into key → row and compared with the next.

``python -m bench.blamesynth run [--full]`` runs the whole blame_rows bench case alone
(bench/cases/blaming.py): CI-sized by default (20,000 rows, 50 commits), the issue's size
(1,000,000 rows, 1,000 commits) with --full, and prints its table.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

REPO = "b"
PATH = "labels.csv"
SEED = 18
BATCH = 100
CI_ROWS, CI_COMMITS = 20_000, 50
HEADER = b"image_id,path,label,score,annotator,x,y,w,h,hash,split\n"
# relabels keep a row's length: a label is replaced by another of its length
LABELS = [["cat", "dog", "cow", "fox"], ["bird", "fish", "deer", "frog"], ["horse", "sheep"]]


def _row(i: int, rnd: random.Random) -> bytes:
    group = LABELS[rnd.randrange(len(LABELS))]
    label = group[rnd.randrange(len(group))]
    box = ",".join(f"{rnd.randrange(1000):04d}" for _ in range(4))
    return (
        f"{i:07d},images/{i // 1000:04d}/{i:07d}.jpg,{label},0.{rnd.randrange(1000):03d},"
        f"annotator{rnd.randrange(40):02d},{box},{rnd.getrandbits(64):016x},train\n"
    ).encode()


class Chunked:
    """A file held as one buffer and its content-defined chunks, re-cut around edits."""

    def __init__(self, data: bytearray) -> None:
        from mlgitfs.store.chunker import Chunker

        self.data = data
        self.chunker = Chunker()
        self.bounds = [0]  # chunk starts, then the end
        self.dirty: set[int] = set()  # starts of chunks cut again since `clean`
        for off, n in self.chunker.cut(memoryview(data)):
            self.bounds.append(off + n)

    def edit(self, pos: int, new: bytes) -> None:
        """Replace bytes at `pos` (same length) and cut again from the chunk that holds it."""
        import bisect

        self.data[pos : pos + len(new)] = new
        i = bisect.bisect_right(self.bounds, pos) - 1
        start = self.bounds[i]
        old_after = set(self.bounds[i + 1 :])
        window = 8 << 20
        while True:
            hi = min(start + window, len(self.data))
            cuts = [start]
            synced = False
            for off, n in self.chunker.cut(memoryview(self.data)[start:hi]):
                end = start + off + n
                if end == hi and hi < len(self.data):
                    break  # the window's own end is no cut
                cuts.append(end)
                if end > pos + len(new) and end in old_after:
                    synced = True
                    break
            if synced or hi == len(self.data):
                break
            window *= 4
        j = self.bounds.index(cuts[-1])
        self.bounds[i : j + 1] = cuts
        self.dirty.update(cuts[:-1])

    def pieces(self) -> list[tuple[int, int]]:
        return [(a, b - a) for a, b in zip(self.bounds, self.bounds[1:], strict=False)]


def build(home: Path, rows: int, commits: int, quotes: bool = True) -> dict[str, object]:
    from bench.commitbatch import CommitBatch
    from mlgitfs import api
    from mlgitfs.meta import chunkquotes
    from mlgitfs.model.ids import ChunkId, ObjectId, hash_bytes
    from mlgitfs.model.objects import ChunkRef, EntryKind, Manifest, TreeEntry, object_id
    from mlgitfs.repo.trees import NewObjects, build_dir
    from mlgitfs.store import compress

    t0 = time.perf_counter()
    rnd = random.Random(SEED)
    lines = [_row(i, rnd) for i in range(rows)]
    starts = [len(HEADER)]
    for line in lines:
        starts.append(starts[-1] + len(line))
    file = Chunked(bytearray(HEADER + b"".join(lines)))
    del lines
    api.init(home, REPO, "labels", "mutable")
    store = api.open_store(home)
    ids: dict[tuple[int, int], bytes] = {}  # (offset, length) of a chunk → its id, this version
    touched: list[int] = []
    set_by: dict[int, int] = {}  # row → the commit (by number) that last relabelled it
    made: list[ObjectId] = []
    head: ObjectId | None = None
    tree: ObjectId | None = None
    gen = 0
    n = 0
    while n < commits:
        batch = CommitBatch(store, REPO, head, gen)
        writer = batch.writer
        for _ in range(min(BATCH, commits - n)):
            if n:
                for _ in range(rnd.randint(1, 5)):
                    i = rnd.randrange(rows)
                    pos, line = starts[i], bytes(file.data[starts[i] : starts[i + 1]])
                    parts = line.split(b",")
                    group = next(g for g in LABELS if len(g[0]) == len(parts[2]))
                    parts[2] = rnd.choice([g for g in group if g.encode() != parts[2]]).encode()
                    file.edit(pos, b",".join(parts))
                    touched.append(i)
                    set_by[i] = n
            refs = []
            now: dict[tuple[int, int], bytes] = {}
            view = memoryview(file.data)
            for off, length in file.pieces():
                cid = None if off in file.dirty else ids.get((off, length))
                if cid is None:
                    cid = hash_bytes(view[off : off + length])
                now[(off, length)] = cid
                refs.append(ChunkRef(ChunkId(cid), length))
            fresh = {k for k in now if ids.get(k) != now[k]}
            for off, length in fresh:
                piece = bytes(view[off : off + length])
                codec, stored = compress.compress(piece)
                odd = chunkquotes.odd(piece) if quotes else None
                writer.add(ChunkId(now[(off, length)]), codec, stored, length, odd)
            view.release()
            ids = now
            file.dirty.clear()
            objs: NewObjects = []
            size = len(file.data)
            if len(refs) == 1:
                entry = TreeEntry(PATH.encode(), EntryKind.FILE, 0o644, size, 0, refs[0].id)
            else:
                moid, mdata = object_id(Manifest(tuple(refs)))
                objs.append((moid, mdata))
                entry = TreeEntry(PATH.encode(), EntryKind.CHUNKED, 0o644, size, 0, moid)
            new_tree = build_dir([entry], objs)
            batch.add(objs)
            head, tree = batch.commit(n, new_tree, tree), new_tree
            made.append(head)
            n += 1
        batch.write("bench blame history")
        gen = batch.gen
    api.close_store(home)
    never = next(i for i in range(rows // 2, rows) if i not in set_by)
    # the answer a blame must give, known from how the history was made
    truth = {"root": made[0].hex(), "set": {f"{i:07d}": made[c].hex() for i, c in set_by.items()}}
    (home / "truth.json").write_text(json.dumps(truth))
    return {
        "rows": rows,
        "bytes": len(file.data),
        "chunks": len(file.bounds) - 1,
        "commits": commits,
        "relabels": len(touched),
        "never": f"{never:07d}",
        "last": f"{touched[-1]:07d}" if touched else f"{never:07d}",
        "seconds": time.perf_counter() - t0,
    }


def blame(home: Path, row: str | None) -> dict[str, object]:
    """`api.blame` of one row (or every row), timed, and how many answers differ from the
    ones the history was made with (truth.json)."""
    from mlgitfs import api

    t0, c0 = time.perf_counter(), time.process_time()
    got = api.blame(home, f"{REPO}:{PATH}", ["image_id"], rows=[[row]] if row else None)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    api.close_store(home)
    truth = json.loads((home / "truth.json").read_text())
    want: dict[str, str] = truth["set"]
    wrong = sum(1 for r in got.rows if r.commit != want.get(r.key[0], truth["root"]))
    return {"seconds": seconds, "cpu": cpu, "rows": len(got.rows), "wrong": wrong}


def reference(home: Path, limit: int) -> dict[str, object]:
    """The plain way: every changed version decoded whole into key → row (the first
    `limit` versions from the head), rows compared; seconds per version and how many."""
    from mlgitfs import api
    from mlgitfs.merge.rows import codec_for
    from mlgitfs.repo.blamerows import entry_bytes
    from mlgitfs.repo.history import walk_commits
    from mlgitfs.repo.refs import resolve
    from mlgitfs.repo.trees import resolve_path

    store = api.open_store(home)
    codec = codec_for(PATH)
    head = resolve(store, f"{REPO}@main").commit_id
    versions = [c.tree for _, c in walk_commits(store, [head])]
    t0 = time.perf_counter()
    done = 0
    prev: dict[str, object] | None = None
    for tree in versions[: limit + 1]:
        e = resolve_path(store, tree, (PATH.encode(),))
        assert e is not None
        table = codec.decode(entry_bytes(store, e), "v", PATH)
        rows = {str(r["image_id"]): r for r in codec.all_rows(table)}
        if prev is not None:
            sum(1 for k, r in rows.items() if prev.get(k) != r)
            done += 1
        prev = rows  # type: ignore[assignment]
    seconds = time.perf_counter() - t0
    api.close_store(home)
    return {"seconds": seconds, "versions": done, "of": len(versions) - 1}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.blamesynth", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("home", type=Path)
    b.add_argument("rows", type=int)
    b.add_argument("commits", type=int)
    b.add_argument("--no-quotes", action="store_true")
    q = sub.add_parser("blame")
    q.add_argument("home", type=Path)
    q.add_argument("--row")
    r = sub.add_parser("reference")
    r.add_argument("home", type=Path)
    r.add_argument("limit", type=int)
    run = sub.add_parser("run")
    run.add_argument("--full", action="store_true")
    a = p.parse_args(argv)
    if a.cmd == "run":
        return _run(a.full)
    if a.cmd == "build":
        out = build(a.home, a.rows, a.commits, not a.no_quotes)
    elif a.cmd == "blame":
        out = blame(a.home, a.row)
    else:
        out = reference(a.home, a.limit)
    print(json.dumps(out))
    return 0


def _run(full: bool) -> int:
    import tempfile

    from bench.cases.blaming import COMMITS, ROWS, measure

    rows, commits = (ROWS, COMMITS) if full else (CI_ROWS, CI_COMMITS)
    with tempfile.TemporaryDirectory(prefix="blame-bench-") as tmp:
        out = measure(Path(tmp) / "store", rows, commits, full_reference=not full)
    print("| case | metric | ours (s) | baseline (s) | ratio | target |")
    print("|---|---|---|---|---|---|")
    for r in out:
        base = "" if r.baseline is None else f"{r.baseline:.3f}"
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        print(f"| {r.case} | {r.metric} | {r.ours:.3f} | {base} | {ratio} | {r.target_text} |")
    print()
    for r in out:
        print(f"- {r.metric}: {r.note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
