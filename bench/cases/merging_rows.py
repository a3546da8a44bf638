"""Row-level merge of a labels table (issue 15): a 1,000,000-row CSV (~100 MB) changed on 20
branches, each relabelling 1% of the rows at random, merged into main one after another.

A relabelled row gets the same new label on every branch that picks it (about 100 rows per
pair of branches are relabelled identically on both), so the true conflicts are 0 and every
conflict reported is a false one. Three merges of the same sequence, in one run:

- ``mlgitfs.merge.rows.merge_table`` in this process (the table merge alone), per merge;
- ``mlgitfs merge labels@bJ --into labels@main --json`` through the CLI, with a ``rows`` rule
  in ``.mlgitfs/merge.toml`` (wall time of the command: reading both sides and the base from
  the store, merging, writing the merged file's chunks and the merge commit);
- ``git merge`` (real git) of the same files: its line-based conflicts per merge (each
  conflicted merge is then completed with the correct table so the next one starts where
  ours did).

Each result is checked byte for byte against the table computed directly.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

from bench.context import QUICK_FACTOR, Context
from bench.ours import Mlgitfs
from bench.peers import tool
from bench.registry import Row, case

ROWS = 1_000_000
BRANCHES = 20
FRACTION = 0.01
TARGET_SECONDS = 2.0
LABELS = ("cat", "dog", "bird", "fish", "horse", "sheep", "cow", "deer", "frog", "truck")
RULES = b'[[rule]]\npath = "*.csv"\nstrategy = "rows"\nkey = ["image_id"]\n'


def _line(i: int, label: str) -> str:
    h = (i * 0x9E3779B97F4A7C15) & ((1 << 64) - 1)
    return (
        f"{i:07d},images/{i // 1000:04d}/{i:07d}.jpg,{label},{(h % 10_000) / 10_000:.4f},"
        f"annotator{h % 37:02d},{h:016x}{(h * 31) & 0xFFFFFFFF:08x}\n"
    )


class Labels:
    """The base table and the 20 branches' relabellings, as lines."""

    def __init__(self, rows: int, seed: int = 15) -> None:
        rnd = random.Random(seed)
        self.header = "image_id,path,label,score,annotator,hash\n"
        self.base = [_line(i, LABELS[rnd.randrange(len(LABELS))]) for i in range(rows)]
        self.picks = [
            sorted(rnd.sample(range(rows), int(rows * FRACTION))) for _ in range(BRANCHES)
        ]
        self.new = {i: _line(i, self._relabel(i)) for p in self.picks for i in p}

    def _relabel(self, i: int) -> str:
        old = self.base[i].split(",")[2]
        return f"{LABELS[(LABELS.index(old) + 1 + i % 7) % len(LABELS)]}-v2"

    def table(self, changed: set[int]) -> bytes:
        lines = list(self.base)
        for i in changed:
            lines[i] = self.new[i]
        return (self.header + "".join(lines)).encode()

    def shared(self) -> int:
        seen: set[int] = set()
        twice: set[int] = set()
        for p in self.picks:
            twice.update(seen.intersection(p))
            seen.update(p)
        return len(twice)


def _in_process(labels: Labels, cpu: list[float]) -> tuple[list[float], list[int], bool]:
    from mlgitfs.merge.rows import merge_table

    base = labels.table(set())
    main = base
    done: set[int] = set()
    seconds, conflicts = [], []
    ok = True
    for p in labels.picks:
        theirs = labels.table(set(p))
        t0, c0 = time.perf_counter(), time.process_time()
        got = merge_table(base, main, theirs, "labels.csv", ["image_id"])
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        conflicts.append(len(got.conflicts))
        done.update(p)
        want = labels.table(done)
        ok = ok and got.data == want
        main = want
    return seconds, conflicts, ok


def labels_store(ctx: Context, name: str, table: bytes) -> tuple[Mlgitfs, Path, Path]:
    """A store whose repo `labels` has `labels.csv` (and the rows rule) imported as main's
    first commit: (store, its root directory, the imported tree to edit)."""
    root = ctx.fresh_dir(name)
    store = Mlgitfs(root / "store", ctx.work / "logs" / f"{name}.log")
    store.init("labels")
    tree = root / "tree"
    (tree / ".mlgitfs").mkdir(parents=True)
    (tree / ".mlgitfs" / "merge.toml").write_bytes(RULES)
    (tree / "labels.csv").write_bytes(table)
    store.import_dir("labels@main", tree, "base")
    return store, root, tree


def _cli(ctx: Context, labels: Labels) -> tuple[list[float], list[int], bool]:
    store, root, tree = labels_store(ctx, "merge_rows", labels.table(set()))
    for j, p in enumerate(labels.picks):
        store.run("branch", f"labels@b{j}", "labels@main")
        (tree / "labels.csv").write_bytes(labels.table(set(p)))
        store.import_dir(f"labels@b{j}", tree, f"relabel {j}")
    seconds, conflicts = [], []
    for j in range(len(labels.picks)):
        ran = store.call("merge", f"labels@b{j}", "--into", "labels@main", "--json", check=False)
        seconds.append(ran.seconds)
        conflicts.append(len(ran.json().get("conflicts", [])) if ran.stdout.strip() else -1)
        if ran.returncode != 0:
            ctx.log(f"merge_rows: merge of b{j} exited {ran.returncode}: {ran.stderr.strip()}")
    out_dir = root / "out"
    store.run("export", "labels@main", out_dir)
    done = {i for p in labels.picks for i in p}
    ok = (out_dir / "labels.csv").read_bytes() == labels.table(done)
    ok = ok and store.fsck("labels")
    return seconds, conflicts, ok


def _git(
    git: str, repo: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    who = {"NAME": "b", "EMAIL": "b@b"}
    env = {
        **os.environ,
        **{f"GIT_{r}_{k}": v for r in ("AUTHOR", "COMMITTER") for k, v in who.items()},
    }
    return subprocess.run([git, "-C", str(repo), *args], env=env, capture_output=True, check=check)


def _git_merges(ctx: Context, labels: Labels) -> tuple[list[float], list[int]]:
    """git merge of each branch into main: line-based conflicts (conflict markers) per merge."""
    git = tool(ctx, "git")
    repo = ctx.fresh_dir("merge_rows_git")
    _git(git, repo, "init", "-q", "-b", "main")
    f = repo / "labels.csv"
    f.write_bytes(labels.table(set()))
    _git(git, repo, "add", "labels.csv")
    _git(git, repo, "commit", "-q", "-m", "base")
    for j, p in enumerate(labels.picks):
        _git(git, repo, "checkout", "-q", "-b", f"b{j}", "main")
        f.write_bytes(labels.table(set(p)))
        _git(git, repo, "commit", "-q", "-am", f"relabel {j}")
        _git(git, repo, "checkout", "-q", "main")
    seconds, conflicts = [], []
    done: set[int] = set()
    for j, p in enumerate(labels.picks):
        t0 = time.perf_counter()
        proc = _git(git, repo, "merge", "-q", "--no-edit", f"b{j}", check=False)
        seconds.append(time.perf_counter() - t0)
        done.update(p)
        if proc.returncode == 0:
            conflicts.append(0)
            continue
        conflicts.append(f.read_bytes().count(b"\n<<<<<<< "))
        f.write_bytes(labels.table(done))  # resolved as the row merge does
        _git(git, repo, "commit", "-q", "-am", f"merge {j}")
    return seconds, conflicts


@case("merge_rows", "merge")
def merge_rows(ctx: Context) -> list[Row]:
    """A 1M-row labels CSV relabelled 1% on 20 branches, merged one after another (and by git)."""
    rows = ROWS // QUICK_FACTOR if ctx.quick else ROWS
    labels = Labels(rows)
    size = len(labels.table(set()))
    ctx.log(f"merge_rows: {rows:,} rows, {size / 1e6:.0f} MB, {labels.shared():,} rows shared")
    fn_cpu: list[float] = []
    fn_secs, fn_conf, fn_ok = _in_process(labels, fn_cpu)
    cli_secs, cli_conf, cli_ok = _cli(ctx, labels)
    git_secs, git_conf = _git_merges(ctx, labels)
    if not (fn_ok and cli_ok):
        raise RuntimeError(f"merged table differs from the expected one (fn {fn_ok}, cli {cli_ok})")
    extra = {
        "rows": rows,
        "bytes": size,
        "branches": BRANCHES,
        "rows_relabelled_on_two_branches": labels.shared(),
        "merge_table_seconds": fn_secs,
        "merge_table_conflicts": fn_conf,
        "merge_table_cpu_seconds": fn_cpu,
        "cli_seconds": cli_secs,
        "cli_conflicts": cli_conf,
        "git_seconds": git_secs,
        "git_conflicts": git_conf,
    }
    false_conflicts = sum(fn_conf) + sum(cli_conf)
    label = f"{rows:,}-row CSV, {BRANCHES} branches x 1%"
    return [
        Row(
            "merge_rows",
            f"{label}: false conflicts, ours (git merge: {sum(git_conf):,} line conflicts)",
            float(false_conflicts),
            float(sum(git_conf)),
            float(false_conflicts),
            0.0,
            "max",
            "",
            "git merge conflicts",
            note=f"git: {min(git_conf)}-{max(git_conf)} conflicts per merge",
            extra=extra,
        ),
        Row(
            "merge_rows",
            f"{label}: slowest table merge (merge_table) / 2 s",
            max(fn_secs),
            TARGET_SECONDS,
            max(fn_secs) / TARGET_SECONDS,
            1.0,
            "max",
            "s",
            "2 s budget",
            note=f"median {sorted(fn_secs)[len(fn_secs) // 2]:.2f} s; CPU seconds of the slowest "
            f"{max(fn_cpu):.2f} (the machine's load skews wall times)",
        ),
        Row(
            "merge_rows",
            f"{label}: slowest `mlgitfs merge` command / 2 s",
            max(cli_secs),
            TARGET_SECONDS,
            max(cli_secs) / TARGET_SECONDS,
            1.0,
            "max",
            "s",
            "2 s budget",
            note=f"median {sorted(cli_secs)[len(cli_secs) // 2]:.2f} s; git merge median "
            f"{sorted(git_secs)[len(git_secs) // 2]:.2f} s",
        ),
    ]
