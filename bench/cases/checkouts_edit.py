"""Writable branch mounts (issue 4), part two: editing 100 files of a 1,000,000-file data set in
a mount and committing, against importing the whole directory again (bench/cases/checkouts.py
has the rest and the conventions).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench.cases import fixtures
from bench.cases.checkouts import checkouts_root, spread, write_file
from bench.context import Context
from bench.mounting import mount_once
from bench.ours import Mlgitfs
from bench.registry import Row, case

EDIT_FILES = 1_000_000
EDIT_PER_DIR = 1_000
EDIT_CHANGES = 100
EDIT_ROUNDS = 3
TREE_FORMAT = 1  # bump when the generated tree's layout changes (a kept tree is regenerated)


# -- edit_vs_reimport ----------------------------------------------------------------------------


def _tree_file(root: Path, d: int, i: int) -> Path:
    return root / f"d{d:05d}" / f"f{d * EDIT_PER_DIR + i:07d}.txt"


def _real_tree(ctx: Context, files: int) -> Path:
    """A real directory of ``files`` tiny files (``files // 1000`` dirs of 1,000), generated once
    and reused while the work directory is kept (``--keep``)."""
    tree = checkouts_root(ctx) / f"tree-{files}"
    marker = tree / ".complete"
    want = {"format": TREE_FORMAT, "files": files, "per_dir": EDIT_PER_DIR}
    with contextlib.suppress(OSError, ValueError):
        if json.loads(marker.read_text()) == want:
            ctx.log(f"reusing the real tree of {files:,} files at {tree}")
            return tree
    if tree.exists():
        shutil.rmtree(tree)
    ctx.log(f"generating a real tree of {files:,} tiny files at {tree} (not timed)")
    t0 = time.perf_counter()
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    for d in range(files // EDIT_PER_DIR):
        sub = tree / f"d{d:05d}"
        sub.mkdir(parents=True)
        for i in range(EDIT_PER_DIR):
            n = d * EDIT_PER_DIR + i
            fd = os.open(_tree_file(tree, d, i), flags, 0o644)
            try:
                os.write(fd, b"sample %d of the data set, version 0\n" % n)
            finally:
                os.close(fd)
    ctx.settle()
    marker.write_text(json.dumps(want))
    ctx.log(f"  {time.perf_counter() - t0:.1f}s")
    return tree


def _edit_targets(files: int, n: int) -> list[tuple[int, int]]:
    return spread(files // EDIT_PER_DIR, EDIT_PER_DIR, n, 0)


@dataclass
class _EditRun:
    total: float
    mount: float
    edit: float
    commit: float
    unmount: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.__dict__.items()}


def _edit_in_mount(store: Mlgitfs, mnt: Path, targets: list[tuple[int, int]], tag: str) -> _EditRun:
    """mount REPO@main → overwrite the target files → commit → unmount, all timed."""
    t0 = time.perf_counter()
    m = mount_once(store, "ds@main", mnt)
    try:
        t1 = time.perf_counter()
        for d, i in targets:
            write_file(_tree_file(mnt, d, i), b"edited in the mount (%s)\n" % tag.encode())
        t2 = time.perf_counter()
        secs, out = store.commit(mnt, f"edit {tag}")
        if out.get("files_hashed") != len(targets):
            raise AssertionError(f"commit hashed {out.get('files_hashed')!r}, not {len(targets)}")
        t3 = time.perf_counter()
        # only the `mlgitfs unmount` command is timed, not finding the daemon's pid before it
        # nor waiting for the daemon to exit after it
        unmount = m.unmount(check=True)
    finally:
        m.unmount()  # a no-op when the timed unmount worked
    return _EditRun(t3 - t0 + unmount, t1 - t0, t2 - t1, secs, unmount)


def _edit_real(tree: Path, targets: list[tuple[int, int]], tag: str) -> None:
    for d, i in targets:
        write_file(_tree_file(tree, d, i), b"edited in the directory (%s)\n" % tag.encode())


@case("edit_vs_reimport", "checkout")
def edit_vs_reimport(ctx: Context) -> list[Row]:
    """Change 100 files of a 1M-file data set in a branch mount and commit vs re-importing it."""
    root = checkouts_root(ctx)
    files = fixtures.shrink(ctx, EDIT_FILES)
    tree = _real_tree(ctx, files)
    home = ctx.fresh_dir("checkouts", "edit")
    store = Mlgitfs(home, ctx.path("logs", "mlgitfs-checkouts.log"))
    store.init("ds")
    ctx.drop_caches()
    ctx.log(f"first import of {files:,} files (cold stat cache, caches dropped)")
    first = store.import_dir("ds", tree, "first import")
    ctx.log(f"  {first:.1f}s")
    targets = _edit_targets(files, EDIT_CHANGES)
    mnt = root / "mnt" / "edit"
    ours: list[_EditRun] = []
    warm: list[float] = []
    for r in range(EDIT_ROUNDS):
        ctx.settle()
        ours.append(_edit_in_mount(store, mnt, targets, f"round {r}"))
        _edit_real(tree, targets, f"round {r}")
        ctx.settle()
        warm.append(store.import_dir("ds", tree, f"re-import {r}"))
        ctx.log(
            f"  round {r + 1}/{EDIT_ROUNDS}: mount+edit+commit+unmount {ours[-1].total:.2f}s "
            f"(commit {ours[-1].commit:.2f}s), re-import {warm[-1]:.1f}s"
        )
    _edit_real(tree, targets, "cold")
    ctx.drop_caches()
    cold_page = store.import_dir("ds", tree, "re-import, caches dropped")
    ctx.log(f"  re-import after dropping caches {cold_page:.1f}s")
    ctx.settle()
    ctx.drop_caches()
    ours_cold = _edit_in_mount(store, mnt, targets, "cold")
    ctx.log(f"  mount+edit+commit+unmount after dropping caches {ours_cold.total:.2f}s")

    med = statistics.median(r.total for r in ours)
    med_warm = statistics.median(warm)
    extra = dict(
        files=files,
        changed=EDIT_CHANGES,
        ours_runs=[r.as_dict() for r in ours],
        ours_cold_caches=ours_cold.as_dict(),
        first_import_seconds=first,
        reimport_seconds=warm,
        reimport_cold_caches_seconds=cold_page,
    )
    label = f"{EDIT_CHANGES} of {files:,} files"
    note = "mount → overwrite → commit → unmount, median of 3"
    return [
        Row(
            "edit_vs_reimport",
            f"edit {label} in a mount + commit vs re-import (stat cache warm)",
            med,
            med_warm,
            med_warm / med,
            None,
            unit="s",
            baseline_name="mlgitfs import again",
            note=f"{note}; page cache warm for both; ratio = re-import s / ours s",
            extra=extra,
        ),
        Row(
            "edit_vs_reimport",
            f"edit {label} in a mount + commit vs import (stat cache cold)",
            med,
            first,
            first / med,
            None,
            unit="s",
            baseline_name="first import, caches dropped",
            note=f"{note}; the import into a fresh store reads every file",
        ),
        Row(
            "edit_vs_reimport",
            f"the same, both after dropping caches ({label}, stat cache warm)",
            ours_cold.total,
            cold_page,
            cold_page / ours_cold.total,
            None,
            unit="s",
            baseline_name="re-import, caches dropped",
            note="one run each; the re-import lstat()s every file from disk",
        ),
    ]
