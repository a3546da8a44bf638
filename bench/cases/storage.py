"""Stored bytes for 10 versions of a data set that changes about 1% per version."""

from __future__ import annotations

from pathlib import Path

from bench import datagen
from bench.cases import fixtures
from bench.context import Context
from bench.dvc import Dvc, copy_tree
from bench.harness import Skipped
from bench.ours import Mlgitfs
from bench.proc import du_bytes, run
from bench.registry import Row, case

VERSIONS_TARGET = 1.15


def _generate(ctx: Context, root: Path) -> None:
    s = ctx.sizes
    ctx.log(
        f"generating versions data set: {s.small_files} small files, "
        f"{s.large_bytes / 2**20:.0f} MiB binary, {s.csv_bytes / 2**20:.0f} MiB CSV"
    )
    datagen.write_small_files(root / "small", ctx.seed, s.small_files)
    datagen.write_large_file(root / "big.bin", ctx.seed + 1, s.large_bytes)
    datagen.write_csv(root / "table.csv", ctx.seed, s.csv_bytes)


def _edit(ctx: Context, root: Path, version: int) -> None:
    """One version's change: 1% of big.bin in place, a CSV row inserted in the middle, 1% of
    the small files replaced. Deterministic, so both copies get the same edit."""
    s = ctx.sizes
    datagen.edit_large_file(root / "big.bin", ctx.seed, s.change_fraction, version)
    datagen.insert_csv_line(root / "table.csv", version)
    datagen.rewrite_small_files(root / "small", ctx.seed, s.small_files, s.change_fraction, version)


def _allocated(path: Path) -> int:
    return int(run(["du", "-sB1", path], capture=True).stdout.split()[0])


@case("versions_storage", "storage")
def versions_storage(ctx: Context) -> list[Row]:
    """Stored bytes of 10 versions (each changes ~1%) vs one version, and vs DVC's cache."""
    n = ctx.sizes.versions
    ours_root = ctx.fresh_dir("versions", "ours", "ds")
    _generate(ctx, ours_root)
    data = datagen.dir_stats(ours_root)

    home = ctx.fresh_dir("versions", "home")
    store = Mlgitfs(home, ctx.path("logs", "mlgitfs-versions.log"))
    name = "bench-versions"
    store.init(name)

    dvc: Dvc | None = None
    dvc_root: Path | None = None
    dvc_error: str | None = None
    dvc_skipped: str | None = None
    if ctx.use_dvc:
        try:
            exe = fixtures.dvc_exe(ctx)
            dvc_root = ctx.fresh_dir("versions", "dvc")
            copy_tree(ours_root, dvc_root / "ds")
            dvc = Dvc(exe, dvc_root, ctx.path("logs", "dvc-versions.log"))
            ctx.meta.setdefault("dvc_version", dvc.version())
            dvc.fresh()
        except Skipped as e:
            dvc, dvc_skipped = None, str(e)
        except Exception as e:  # noqa: BLE001 - DVC rows fail, ours go on
            dvc, dvc_error = None, f"{type(e).__name__}: {e}"

    ours_secs: list[float] = []
    dvc_secs: list[float] = []
    ours_bytes: list[int] = []
    dvc_bytes: list[int] = []
    for v in range(1, n + 1):
        if v > 1:
            _edit(ctx, ours_root, v)
            if dvc is not None and dvc_root is not None:
                _edit(ctx, dvc_root / "ds", v)
        ctx.log(f"version {v}/{n}: mlgitfs import")
        ours_secs.append(store.import_dir(name, ours_root, f"bench version {v}"))
        ours_bytes.append(du_bytes(home))
        if dvc is not None:
            ctx.log(f"version {v}/{n}: dvc add")
            try:
                dvc_secs.append(dvc.add("ds"))
                dvc_bytes.append(du_bytes(dvc.cache))
            except Exception as e:  # noqa: BLE001
                dvc, dvc_error = None, f"{type(e).__name__}: {e}"
        ctx.log(
            f"  ours {ours_secs[-1]:.1f}s, {ours_bytes[-1] / 2**20:.0f} MiB"
            + (f"; dvc {dvc_secs[-1]:.1f}s, {dvc_bytes[-1] / 2**20:.0f} MiB" if dvc else "")
        )

    fsck_ok = store.fsck(name)
    commits = store.commits(name)
    errors = []
    if not fsck_ok:
        errors.append("mlgitfs fsck reported damage")
    if commits != n:
        errors.append(f"log shows {commits} commits, expected {n}")
    extra = {
        "versions": n,
        "dataset_files": data.files,
        "dataset_bytes": data.bytes,
        "ours_bytes_per_version": ours_bytes,
        "ours_import_seconds": ours_secs,
        "ours_allocated_bytes": _allocated(home),
        "dvc_bytes_per_version": dvc_bytes,
        "dvc_add_seconds": dvc_secs,
        "fsck_ok": fsck_ok,
        "commits": commits,
    }
    rows = [
        Row(
            "versions_storage",
            f"stored bytes, {n} versions vs 1",
            ours_bytes[-1] / 2**20,
            ours_bytes[0] / 2**20,
            ours_bytes[-1] / ours_bytes[0],
            VERSIONS_TARGET,
            direction="max",
            unit="MiB",
            baseline_name="ours, 1 version",
            note=f"du -sb of MLGITFS_HOME; data set {data.bytes / 2**20:.0f} MiB",
            error="; ".join(errors) or None,
            extra=extra,
        )
    ]
    if ctx.use_dvc:
        if dvc_error is None and len(dvc_bytes) == n:
            rows.append(
                Row(
                    "versions_storage",
                    f"stored bytes, {n} versions vs DVC cache",
                    ours_bytes[-1] / 2**20,
                    dvc_bytes[-1] / 2**20,
                    ours_bytes[-1] / dvc_bytes[-1],
                    None,
                    direction="max",
                    unit="MiB",
                    baseline_name="du -sb .dvc/cache",
                    note=f"DVC {n} vs 1: {dvc_bytes[-1] / dvc_bytes[0]:.2f}x",
                )
            )
        else:
            rows.append(
                Row(
                    "versions_storage",
                    f"stored bytes, {n} versions vs DVC cache",
                    ours_bytes[-1] / 2**20,
                    None,
                    None,
                    None,
                    direction="max",
                    unit="MiB",
                    baseline_name="du -sb .dvc/cache",
                    error=None if dvc_skipped else dvc_error or "DVC incomplete",
                    skipped=dvc_skipped,
                )
            )
    if not ctx.keep:
        ctx.log("removing versions data")
        for p in (ours_root.parent, home, dvc_root):
            if p is not None:
                run(["rm", "-rf", p], check=False)
    return rows
