"""A schema gate whose cost follows the change (issue 17): a commit that changes 100 rows of a
1,000,000-row labels CSV and 10 files of a 1,000,000-file repo, checked by a `table` check of
`.mlgitfs/hooks.toml`, against the same check validating the whole table.

The repo is built through the library (trees of 1,000 directories of 1,000 small files, the
table stored in chunks like an import would), not imported from disk: making a million files
is not what is measured. Two commits: v1 with the table and the hooks file, v2 changing 100
rows (relabelled in place) and 10 files in 10 directories.

- ours: the pre-commit gate on v2 (`Gate.run`, no cached verdict): read the hooks file from
  the head, diff the two trees (unchanged pages skipped by id), read both versions of the
  table, align them, check the 100 changed rows (types, empty key, unique key);
- baseline: the same check on the whole v2 table (every row a change).

Also measured (extra): the gate run again on the same tree (a cache hit: no check runs).

    python -m bench --cases hooks_gate [--quick]
    python -m bench.hooksgate [--full]            # alone: CI-sized by default
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from bench.context import QUICK_FACTOR, Context
from bench.registry import Row, case

ROWS = 1_000_000
FILES = 1_000_000
PER_DIR = 1_000
CHANGED_ROWS = 100
CHANGED_FILES = 10
TARGET = 20.0
CI_FACTOR = 50  # standalone default: 20,000 rows and 20,000 files
HOOKS = b"""
[[check]]
name = "labels-schema"
events = ["pre-commit"]
type = "table"
path = "labels.csv"
columns = { image_id = "int", path = "str", label = "str", score = "float" }
key = ["image_id"]
"""


def _table(rows: int, changed: frozenset[int]) -> bytes:
    lines = ["image_id,path,label,score\n"]
    for i in range(rows):
        label = f"l{i % 10}" if i not in changed else f"l{i % 10}-v2"
        lines.append(f"{i:07d},images/{i // 1000:04d}/{i:07d}.jpg,{label},{(i % 997) / 997:.4f}\n")
    return "".join(lines).encode()


def _measure(rows: int, files: int, work: Path) -> dict[str, float | int]:
    from mlgitfs import api
    from mlgitfs.model.changes import ChangeKind
    from mlgitfs.model.ids import ObjectId
    from mlgitfs.model.objects import EntryKind, TreeEntry
    from mlgitfs.repo.checks import run_check
    from mlgitfs.repo.commits import CommitRequest, write_commit
    from mlgitfs.repo.diff import DiffEntry
    from mlgitfs.repo.gate import Gate
    from mlgitfs.repo.hookrun import Candidate
    from mlgitfs.repo.hooks import load_hooks
    from mlgitfs.repo.mergebranch import BlobIO
    from mlgitfs.repo.trees import NewObjects, build_dir, resolve_path
    from mlgitfs.store.cache import SegmentWriter

    home = work / "store"
    api.init(home, "ds", "dataset", "flexible")
    store = api.open_store(home)
    like = TreeEntry(b"x", EntryKind.FILE, 0o644, 0, 1_700_000_000 * 10**9, b"")
    dirs = max(1, files // PER_DIR)
    changed_dirs = frozenset(range(0, dirs, max(1, dirs // CHANGED_FILES)))
    changed_rows = frozenset(range(0, rows, rows // CHANGED_ROWS))

    def version(v: int) -> tuple[ObjectId, SegmentWriter, NewObjects]:
        writer = store.chunks.writer()
        out: NewObjects = []
        blobs = BlobIO(store, writer, out)
        small = {
            b: blobs.write(b"file content %d\n" % b, like) for b in (0, 1)
        }  # two contents: v2's 10 changed files take the second
        top: list[TreeEntry] = []
        for d in range(dirs):
            entries = []
            for f in range(PER_DIR):
                e = small[1 if v == 2 and d in changed_dirs and f == 0 else 0]
                entries.append(
                    # one mtime in both versions: an unchanged file keeps its entry, as an
                    # import's stat cache keeps it
                    TreeEntry(b"f%05d.bin" % f, e.kind, e.mode, e.size, like.mtime_ns, e.ref)
                )
            sub = build_dir(entries, out)
            top.append(TreeEntry(b"d%05d" % d, EntryKind.DIR, 0o755, 0, like.mtime_ns, bytes(sub)))
        table = blobs.write(_table(rows, changed_rows if v == 2 else frozenset()), like)
        hooks = blobs.write(HOOKS, like)
        meta = build_dir([TreeEntry(b"hooks.toml", hooks.kind, 0o644, hooks.size, like.mtime_ns,
                                    hooks.ref)], out)  # fmt: skip
        top.append(TreeEntry(b".mlgitfs", EntryKind.DIR, 0o755, 0, like.mtime_ns, bytes(meta)))
        top.append(TreeEntry(b"labels.csv", table.kind, 0o644, table.size, like.mtime_ns,
                             table.ref))  # fmt: skip
        top.sort(key=lambda e: e.name)
        return build_dir(top, out), writer, out

    commits: list[ObjectId] = []
    for v in (1, 2):
        root, writer, out = version(v)
        parent = commits[-1] if commits else None
        cid, _ = write_commit(
            store, CommitRequest("ds", "main", f"v{v}", {}, []), root,
            (parent,) if parent else (), parent, writer, out,
        )  # fmt: skip
        writer.reset()
        commits.append(cid)
    v1, v2 = commits
    t1, t2 = store.commit(v1).tree, store.commit(v2).tree
    import mlgitfs.merge.csvtable  # noqa: F401 - imported before either clock starts

    gate = Gate.load(store, "main", v1, views=None)
    cand = Candidate("ds", "main", v1, v2, t2, t1)

    t0 = time.perf_counter()
    gate.run(cand, ("pre-commit",))
    gate_s = time.perf_counter() - t0
    gate.flush()
    assert [r.status for r in gate.results] == ["passed"], gate.results
    t0 = time.perf_counter()
    gate.run(cand, ("pre-commit",))
    cached_s = time.perf_counter() - t0
    assert gate.results[-1].cached

    hook = load_hooks(store, t1).hooks[0]
    entry = resolve_path(store, t2, [b"labels.csv"])
    assert entry is not None
    t0 = time.perf_counter()
    verdict = run_check(hook, store, [DiffEntry(ChangeKind.ADDED, "labels.csv", None, entry)])
    whole_s = time.perf_counter() - t0
    assert verdict.ok, verdict.output
    api.close_store(home)
    return {
        "rows": rows,
        "files": dirs * PER_DIR,
        "table_bytes": entry.size,
        "gate_seconds": gate_s,
        "cached_gate_seconds": cached_s,
        "whole_table_seconds": whole_s,
    }


def _row(m: dict[str, float | int]) -> Row:
    gate_s, whole_s = float(m["gate_seconds"]), float(m["whole_table_seconds"])
    return Row(
        "hooks_gate",
        f"schema gate on {CHANGED_ROWS} changed rows of a {int(m['rows']):,}-row CSV and "
        f"{CHANGED_FILES} of {int(m['files']):,} files vs the whole table",
        gate_s,
        whole_s,
        whole_s / gate_s,
        TARGET,
        "min",
        "s",
        "table check on every row",
        note=f"cached re-run {float(m['cached_gate_seconds']) * 1000:.1f} ms",
        extra=dict(m),
    )


@case("hooks_gate", "hooks")
def hooks_gate(ctx: Context) -> list[Row]:
    """A schema gate on a 100-row change of a 1M-row CSV in a 1M-file repo vs the whole table."""
    f = QUICK_FACTOR if ctx.quick else 1
    work = ctx.fresh_dir("hooks_gate")
    try:
        m = _measure(ROWS // f, FILES // f, work)
    finally:
        if not ctx.keep:
            shutil.rmtree(work, ignore_errors=True)
    ctx.log(f"hooks_gate: {m}")
    return [_row(m)]
