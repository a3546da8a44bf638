"""Import cases: many small files and one large file, against the raw chunk+hash+compress speed
of the same bytes and against ``dvc add``; then a re-import after a 1% change."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path

from bench import datagen, raw
from bench.cases import fixtures
from bench.context import Context
from bench.harness import Skipped
from bench.registry import Row, case

RAW_TARGET = 0.6
DVC_TARGET = 3.0
REIMPORT_TARGET = 10.0
MB = 1e6


def _files(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, _dirs, names in os.walk(root):
        out.extend(Path(dirpath, n) for n in names)
    return sorted(out)


def _raw_best(
    ctx: Context, data: datagen.Dataset, run: Callable[[list[bytes]], raw.RawResult]
) -> raw.RawResult:
    buffers = raw.read_all(_files(data.root))
    ctx.settle()
    best: raw.RawResult | None = None
    for _ in range(2):
        r = run(buffers)
        if best is None or r.seconds < best.seconds:
            best = r
    del buffers
    gc.collect()
    assert best is not None
    ctx.log(f"  raw: {best.throughput / MB:.0f} MB/s on {best.threads} threads")
    return best


def _import_rows(
    ctx: Context,
    which: str,
    data: datagen.Dataset,
    run: Callable[[list[bytes]], raw.RawResult],
) -> list[Row]:
    case_name = f"import_{which}"
    params = raw.store_params()
    ctx.meta["chunk_params"] = params.to_json()
    ctx.log(f"raw chunk+hash+compress baseline for {which}")
    base = _raw_best(ctx, data, run)
    warm_runs = fixtures.warm_import(ctx, which, data)
    warm_secs = min(warm_runs)
    first = fixtures.first_import(ctx, which, data)
    warm_tp = data.bytes / warm_secs
    cold_tp = data.bytes / first.seconds
    info = {
        "files": data.files,
        "bytes": data.bytes,
        "ours_warm_seconds": warm_runs,
        "ours_cold_seconds": first.seconds,
        "cold": first.cold,
        "raw_seconds": base.seconds,
        "raw_threads": base.threads,
        "raw_chunks": base.chunks,
        "raw_stored_bytes": base.bytes_stored,
    }
    raw_name = "raw (in memory, all cores)"
    rows = [
        Row(
            case_name,
            "throughput vs raw (warm)",
            warm_tp / MB,
            base.throughput / MB,
            warm_tp / base.throughput,
            RAW_TARGET,
            unit="MB/s",
            baseline_name=raw_name,
            note="input in the page cache, like the raw baseline's; best of 2",
            extra=info,
        ),
        Row(
            case_name,
            "throughput vs raw (cold)" if first.cold else "throughput vs raw (no cache drop)",
            cold_tp / MB,
            base.throughput / MB,
            cold_tp / base.throughput,
            None,
            unit="MB/s",
            baseline_name=raw_name,
            note="page cache dropped first: includes the disk reads the raw baseline skips",
        ),
    ]
    if not ctx.use_dvc:
        return rows
    try:
        dvc_secs = fixtures.dvc_add_timed(ctx, which, data)
    except Exception as e:  # noqa: BLE001 - reported as a failed or skipped row, the run goes on
        skipped = str(e) if isinstance(e, Skipped) else None
        rows.append(
            Row(
                case_name,
                "speedup vs dvc add",
                first.seconds,
                None,
                None,
                DVC_TARGET,
                unit="s",
                baseline_name="dvc add",
                error=None if skipped else f"{type(e).__name__}: {e}",
                skipped=skipped,
            )
        )
        return rows
    rows.append(
        Row(
            case_name,
            "speedup vs dvc add",
            first.seconds,
            dvc_secs,
            dvc_secs / first.seconds,
            DVC_TARGET,
            unit="s",
            baseline_name="dvc add",
            note="ratio = dvc seconds / ours seconds",
        )
    )
    return rows


@case("import_small")
def import_small(ctx: Context) -> list[Row]:
    """Import of many ~100 KiB files (half random, half text) vs raw speed and vs dvc add."""
    data = fixtures.small_data(ctx)
    params = raw.store_params()
    return _import_rows(ctx, "small", data, lambda bufs: raw.run_many(bufs, params))


@case("import_large")
def import_large(ctx: Context) -> list[Row]:
    """Import of one large partly compressible file vs raw speed and vs dvc add."""
    data = fixtures.large_data(ctx)
    params = raw.store_params()
    return _import_rows(ctx, "large", data, lambda bufs: raw.run_one_large(bufs[0], params))


@case("reimport", "import")
def reimport(ctx: Context) -> list[Row]:
    """Re-import of the small-file directory after rewriting 1% of the files."""
    data = fixtures.small_data(ctx)
    first = fixtures.first_import(ctx, "small", data)
    changed = datagen.rewrite_small_files(
        data.root, ctx.seed, ctx.sizes.small_files, ctx.sizes.change_fraction, version=1
    )
    ctx.forget("data:small")  # the directory no longer holds the first version
    cold = ctx.drop_caches()
    ctx.log("mlgitfs re-import after a 1% change")
    secs = first.store.import_dir(first.name, data.root, "bench small: 1% changed")
    ctx.log(f"  {secs:.2f}s")
    fsck_ok = first.store.fsck(first.name)
    return [
        Row(
            "reimport",
            "speedup vs first import (1% changed)",
            secs,
            first.seconds,
            first.seconds / secs,
            REIMPORT_TARGET,
            unit="s",
            baseline_name="first import",
            note="ratio = first import seconds / re-import seconds",
            extra={"changed_bytes": changed, "cold": cold, "fsck_ok": fsck_ok},
            error=None if fsck_ok else "mlgitfs fsck reported damage",
        )
    ]
