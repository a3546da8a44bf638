"""gc on a remote: bytes a `file://` remote gives back after a branch is deleted there, and
DVC's `gc -w -c` on the same remote shape.

``gc_remote``: branch ``side`` holds every file of a small-files data set and ``main`` 80%
of them; both pushed (side first, so main's chunks share side's packs: gc must repack, not
only delete), then ``push --delete`` of side and ``gc --remote origin --grace 0``. Rows: the
remote's bytes after it against a fresh remote holding only main (target within 5%), and
against DVC on the same data and change (``dvc add`` of all, push to a local remote, remove
the same 20%, ``dvc add`` and push again, ``dvc gc -w -c -f``): time and bytes freed on
the remote. Sizes follow ``--quick`` (CI size: 1,000 files) or the full data set (20,000).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bench import datagen
from bench.cases.gc import RECLAIM_TARGET, _main_only, dvc_gc
from bench.context import Context
from bench.harness import Skipped
from bench.ours import Mlgitfs
from bench.proc import du_bytes, run
from bench.registry import Row, case

PACK_TARGET = str(4 << 20)  # several packs even at --quick size


def _pushed(ctx: Context, name: str, dirs: list[tuple[str, Path]]) -> tuple[Mlgitfs, Path]:
    home = ctx.fresh_dir("gc_remote", f"{name}-home")
    remote = ctx.fresh_dir("gc_remote", f"{name}-remote")
    ours = Mlgitfs(home, ctx.path("logs", "mlgitfs-gc-remote.log"))
    ours.init("ds")
    for branch, src in dirs:
        if branch != "main":
            ours.run("branch", f"ds@{branch}", "ds@main")
        ours.import_dir(f"ds@{branch}", src, branch)
    ours.run("remote", "add", "origin", remote.as_uri())
    for branch, _ in reversed(dirs):  # side first: main's chunks land in side's packs
        ours.run("push", f"ds@{branch}")
    return ours, remote


@case("gc_remote", "lifecycle")
def gc_remote(ctx: Context) -> list[Row]:
    """A file:// remote's bytes after deleting a branch with 20% of the data and remote gc."""
    data = ctx.fresh_dir("gc_remote", "data")
    datagen.write_small_files(data / "all", ctx.seed, ctx.sizes.small_files)
    _main_only(data / "all", data / "main")
    os.environ["MLGITFS_PACK_TARGET"] = PACK_TARGET
    try:
        ours, remote = _pushed(ctx, "ours", [("main", data / "main"), ("side", data / "all")])
        ours.run("push", "--delete", "ds@side", "origin", "--force")
        before = du_bytes(remote)
        secs, result = ours.json("gc", "--remote", "origin", "--grace", "0")
        after = du_bytes(remote)
        _, fresh_remote = _pushed(ctx, "fresh", [("main", data / "main")])
        fresh_bytes = du_bytes(fresh_remote)
    finally:
        os.environ.pop("MLGITFS_PACK_TARGET", None)
    errors = [] if ours.fsck("ds") else ["mlgitfs fsck reported damage"]
    extra: dict[str, Any] = {"before": before, "after": after, "fresh": fresh_bytes,
                             "gc": result, "gc_seconds": secs}  # fmt: skip
    rows = [
        Row("gc_remote", "remote bytes after branch delete + gc --remote vs fresh remote",
            after / 2**20, fresh_bytes / 2**20, after / fresh_bytes, RECLAIM_TARGET,
            direction="max", unit="MiB", baseline_name="fresh remote, main only",
            note=f"before gc {before / 2**20:.1f} MiB; gc {secs:.2f} s; "
            f"{result['packs_dead']} dead, {result['packs_repacked']} repacked packs",
            error="; ".join(errors) or None, extra=extra),
    ]  # fmt: skip
    rows += _dvc_rows(ctx, data, before - after, secs)
    if not ctx.keep:
        run(["rm", "-rf", data, ours.home, remote, fresh_remote], check=False)
    return rows


def _dvc_rows(ctx: Context, data: Path, ours_freed: int, ours_secs: float) -> list[Row]:
    names = ("gc --remote time vs dvc gc -w -c", "remote bytes freed vs dvc gc -w -c")
    if not ctx.use_dvc:
        return []
    try:
        dvc_secs, _, dvc_freed = dvc_gc(ctx, data, "gc_remote")
    except Skipped as e:
        return [Row("gc_remote", n, None, None, None, skipped=str(e)) for n in names]
    except Exception as e:  # noqa: BLE001 - DVC rows fail, ours stand
        err = f"{type(e).__name__}: {e}"
        return [Row("gc_remote", n, None, None, None, error=err) for n in names]
    return [
        Row("gc_remote", names[0], ours_secs, dvc_secs, ours_secs / dvc_secs, None,
            direction="max", unit="s", baseline_name="dvc gc -w -c -f",
            note="both on a local-directory remote; DVC also cleans its cache; ours waits no "
            "grace (--grace 0); both include process start"),
        Row("gc_remote", names[1], ours_freed / 2**20, dvc_freed / 2**20,
            ours_freed / dvc_freed if dvc_freed else None, None, direction="min", unit="MiB",
            baseline_name="DVC remote freed (du -sb)", note="ours: du -sb of the remote dir"),
    ]  # fmt: skip
