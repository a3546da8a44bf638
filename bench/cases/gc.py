"""gc: disk given back after deleting a branch, gc time against store size, and DVC's gc.

- ``gc_reclaim``: branch ``side`` holds every file of a small-files data set and ``main``
  80% of them (imported after side, so both branches' chunks share segments: gc must
  rewrite, not just delete). Delete ``side``, let the reflog expire, run ``mlgitfs gc``:
  the store's bytes on disk against a fresh store holding only main (target within 5%).
  DVC on the same data and the same change: ``dvc add`` of all, push to a local remote,
  remove the same 20%, ``dvc add`` and push again, then ``dvc gc -w -c -f``: time and
  bytes freed from the cache, against ours.
- ``gc_scale``: gc time of a synthetic store of many files with 1% garbage (a deleted
  branch that changed 1% of them; bench/gcsynth.py) against one of 10,000 files, and the
  gc's peak memory. Default 100,000 files (5,000 with --quick);
  ``MLGITFS_BENCH_GC_FILES=1000000`` gives the issue's million.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from bench import datagen
from bench.cases import fixtures
from bench.context import Context
from bench.dvc import Dvc, copy_tree
from bench.harness import Skipped
from bench.ours import Mlgitfs
from bench.proc import du_bytes, run, run_module
from bench.registry import Row, case

RECLAIM_TARGET = 1.05
DROP = 5  # every 5th file: 20% of the data set


def _main_only(all_dir: Path, main_dir: Path) -> None:
    shutil.copytree(all_dir, main_dir)
    for i, p in enumerate(sorted(main_dir.rglob("*"))):
        if p.is_file() and i % DROP == 0:
            p.unlink()


@case("gc_reclaim", "lifecycle")
def gc_reclaim(ctx: Context) -> list[Row]:
    """Bytes on disk after deleting a branch with 20% of the data and gc, vs a fresh store."""
    data = ctx.fresh_dir("gc", "data")
    datagen.write_small_files(data / "all", ctx.seed, ctx.sizes.small_files)
    _main_only(data / "all", data / "main")
    home = ctx.fresh_dir("gc", "home")
    ours = Mlgitfs(home, ctx.path("logs", "mlgitfs-gc.log"))
    ours.init("ds")
    ours.import_dir("ds@side", data / "all", "everything")
    ours.import_dir("ds@main", data / "main", "80%")
    ours.run("branch", "-d", "ds@side", "--force")
    ours.run("config", "reflog-expiry", "0")
    before = du_bytes(home)
    secs, result = ours.json("gc")
    after = du_bytes(home)
    fresh_home = ctx.fresh_dir("gc", "fresh")
    fresh = Mlgitfs(fresh_home, ctx.path("logs", "mlgitfs-gc.log"))
    fresh.init("ds")
    fresh.import_dir("ds@main", data / "main", "80%")
    fresh_bytes = du_bytes(fresh_home)
    errors = [] if ours.fsck("ds") else ["mlgitfs fsck reported damage"]
    extra: dict[str, Any] = {"before": before, "after": after, "fresh": fresh_bytes,
                             "gc": result, "gc_seconds": secs}  # fmt: skip
    rows = [
        Row(
            "gc_reclaim",
            "bytes on disk after branch delete + gc vs fresh store",
            after / 2**20,
            fresh_bytes / 2**20,
            after / fresh_bytes,
            RECLAIM_TARGET,
            direction="max",
            unit="MiB",
            baseline_name="fresh store, main only",
            note=f"before gc {before / 2**20:.1f} MiB; gc {secs:.2f} s",
            error="; ".join(errors) or None,
            extra=extra,
        )
    ]
    rows += _dvc_rows(ctx, data, before - after, secs)
    if not ctx.keep:
        for p in (data, home, fresh_home):
            run(["rm", "-rf", p], check=False)
    return rows


def dvc_gc(ctx: Context, data: Path, case_name: str) -> tuple[float, int, int]:
    """DVC on the data set and change of ``gc_reclaim``: ``dvc add`` of all, push to a local
    remote, remove the same 20%, ``dvc add`` and push again, then ``dvc gc -w -c -f``:
    (seconds of the gc, bytes freed from the cache, bytes freed from the remote)."""
    exe = fixtures.dvc_exe(ctx)
    root = ctx.fresh_dir(case_name, "dvc")
    remote = ctx.fresh_dir(case_name, "dvc-remote")
    copy_tree(data / "all", root / "ds")
    dvc = Dvc(exe, root, ctx.path("logs", f"dvc-{case_name}.log"))
    ctx.meta.setdefault("dvc_version", dvc.version())
    dvc.fresh()
    dvc.run("remote", "add", "-d", "local", str(remote))
    dvc.add("ds")
    dvc.run("push", "--quiet")
    for i, p in enumerate(sorted((root / "ds").rglob("*"))):  # the same 20% as ours
        if p.is_file() and i % DROP == 0:
            p.unlink()
    dvc.add("ds")
    dvc.run("push", "--quiet")
    cache_before, remote_before = du_bytes(dvc.cache), du_bytes(remote)
    secs = dvc.run("gc", "-w", "-c", "-f", "--quiet")
    freed = (cache_before - du_bytes(dvc.cache), remote_before - du_bytes(remote))
    if not ctx.keep:
        run(["rm", "-rf", root, remote], check=False)
    return secs, *freed


def _dvc_rows(ctx: Context, data: Path, ours_freed: int, ours_secs: float) -> list[Row]:
    names = ("gc time vs dvc gc -w -c", "bytes freed vs dvc gc -w -c")
    if not ctx.use_dvc:
        return []
    try:
        dvc_secs, dvc_freed, _ = dvc_gc(ctx, data, "gc")
    except Skipped as e:
        return [Row("gc_reclaim", n, None, None, None, skipped=str(e)) for n in names]
    except Exception as e:  # noqa: BLE001 - DVC rows fail, ours stand
        err = f"{type(e).__name__}: {e}"
        return [Row("gc_reclaim", n, None, None, None, error=err) for n in names]
    return [
        Row("gc_reclaim", names[0], ours_secs, dvc_secs, ours_secs / dvc_secs, None,
            direction="max", unit="s", baseline_name="dvc gc -w -c -f",
            note="DVC also deletes from its (local) remote; both include process start"),
        Row("gc_reclaim", names[1], ours_freed / 2**20, dvc_freed / 2**20,
            ours_freed / dvc_freed if dvc_freed else None, None, direction="min", unit="MiB",
            baseline_name=".dvc/cache freed (du -sb)",
            note="ours: the whole store (du -sb of the home)"),
    ]  # fmt: skip


def _synth(ctx: Context, files: int) -> dict[str, Any]:
    home = ctx.fresh_dir("gc", f"synth{files}")
    out: dict[str, Any] = {}
    for args in (["build", str(home), str(files), "0.01"], ["gc", str(home)]):
        out[args[0]] = run_module("gcsynth", *args, timeout=7200)
    if not ctx.keep:
        run(["rm", "-rf", home], check=False)
    return out


@case("gc_scale", "lifecycle")
def gc_scale(ctx: Context) -> list[Row]:
    """gc time of a store of many files with 1% garbage vs one of 10,000 files."""
    factor = 20 if ctx.quick else 1
    big_n = int(os.environ.get("MLGITFS_BENCH_GC_FILES", "100000")) // factor
    small_n = 10_000 // factor
    small, big = _synth(ctx, small_n), _synth(ctx, big_n)
    s, b = small["gc"], big["gc"]
    errors = [f"{n} files: gc freed {r['chunks']} chunks, expected {g['garbage_files']}"
              for n, r, g in ((small_n, s, small["build"]), (big_n, b, big["build"]))
              if r["chunks"] != g["garbage_files"]]  # fmt: skip
    phases = {k: b[k] for k in ("seconds_mark", "seconds_sweep", "seconds_segments")}
    return [
        Row("gc_scale", f"gc time, {big['build']['files']:,} vs {small['build']['files']:,} "
            "files, 1% garbage", b["seconds"], s["seconds"], b["seconds"] / s["seconds"], None,
            direction="max", unit="s", baseline_name=f"{small['build']['files']:,} files",
            note=f"files ratio {big_n / small_n:.0f}x; peak heap {b['peak_anon_kib'] / 1024:.0f}"
            f" MiB vs {s['peak_anon_kib'] / 1024:.0f} MiB (RSS with LMDB's pages "
            f"{b['maxrss_kib'] / 1024:.0f} vs {s['maxrss_kib'] / 1024:.0f} MiB)",
            error="; ".join(errors) or None, extra={"big": big, "small": small, **phases}),
    ]  # fmt: skip
