"""Mount cases (issue 3), part two: one DataLoader-like epoch over many small files, and a
metadata walk (``find`` + stat), through a tag mount against ext4 (and, for the epochs, the bare
pyfuse3 passthrough: the stack's limit). See bench/cases/mounts.py for the rest.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from bench import datagen
from bench.cases import fixtures
from bench.context import Context
from bench.mounting import mlgitfs_mount, passthrough_mount, run_reader
from bench.proc import run
from bench.registry import Row, case
from bench.warm import WarmRuns
from mlgitfs.daemon import pyfuse3_build

EPOCH1_TARGET = 0.4
EPOCH2_TARGET = 0.3
FIND_TARGET = 0.3
STAT_FILES = 100_000
EPOCH_SEED = 1234


# -- small_epochs --------------------------------------------------------------------------------


def _epoch(root: Path, procs: int, unbuffered: bool = False) -> dict[str, Any]:
    more = ["--unbuffered"] if unbuffered else []
    return run_reader(["epoch", str(root), "--procs", str(procs), "--seed", str(EPOCH_SEED), *more])


def _patched_pyfuse3() -> bool:
    """Whether the passthrough can answer open with ENOSYS, as the mlgitfs daemon does."""
    return "noopen" in pyfuse3_build.features(pyfuse3_build.installed_version() or "")


def _check_same(a: dict[str, Any], b: dict[str, Any], what: str) -> None:
    if (a["files"], a["bytes"]) != (b["files"], b["bytes"]):
        raise AssertionError(
            f"{what}: mount read {b['files']} files / {b['bytes']} bytes, "
            f"ext4 {a['files']} / {a['bytes']}"
        )


@case("small_epochs", "mount")
def small_epochs(ctx: Context) -> list[Row]:
    """Shuffled whole-file reads of ~20k 100 KiB files, 1 and 2 readers, epochs 1 and 2."""
    data = fixtures.small_data(ctx)
    store, revspec = fixtures.tagged(ctx, "small", data.root)
    rows: list[Row] = []
    no_open = _patched_pyfuse3()
    for procs in (1, 2):
        runs = WarmRuns()
        # Fresh mounts for each reader count; each first epoch after its own cache drop; the
        # second epochs interleaved, so load on the machine hits all alike.
        with (
            mlgitfs_mount(store, revspec, fixtures.mnt(ctx, "small")) as m,
            passthrough_mount(
                data.root,
                fixtures.mnt(ctx, "small-passthrough"),
                ctx.path("logs", "passthrough.log"),
                no_open=no_open,
            ) as pt,
        ):
            ctx.drop_caches()
            ours1 = runs.cold("ours", partial(_epoch, m.path, procs))
            ctx.drop_caches()
            pt1 = runs.cold("pt", partial(_epoch, pt.path, procs))
            ctx.drop_caches()
            ext1 = runs.cold("ext4", partial(_epoch, data.root, procs))
            warm = runs.warm(
                {
                    "ext4": partial(_epoch, data.root, procs),
                    "ours": partial(_epoch, m.path, procs),
                    "pt": partial(_epoch, pt.path, procs),
                    "ext4 unbuffered": partial(_epoch, data.root, procs, True),
                    "ours unbuffered": partial(_epoch, m.path, procs, True),
                },
                want=2,
                max_tries=5,
            )
            ext2, ours2, pt2 = warm["ext4"], warm["ours"], warm["pt"]
            ext2u, ours2u = warm["ext4 unbuffered"], warm["ours unbuffered"]
        for r in (ours1, *ours2, pt1, *pt2):
            _check_same(ext1, r, f"small_epochs procs={procs}")
        e2 = min(x["seconds"] for x in ext2)
        o2 = min(x["seconds"] for x in ours2)
        p2 = min(x["seconds"] for x in pt2)
        e2u = min(x["seconds"] for x in ext2u)
        o2u = min(x["seconds"] for x in ours2u)
        ctx.log(
            f"  {procs} reader(s): epoch 1 ext4 {ext1['seconds']:.2f}s ours "
            f"{ours1['seconds']:.2f}s passthrough {pt1['seconds']:.2f}s; epoch 2 ext4 "
            f"{e2:.2f}s ours {o2:.2f}s passthrough {p2:.2f}s"
        )
        files = int(ext1["files"])
        extra = dict(
            procs=procs,
            files=files,
            bytes=ext1["bytes"],
            ext4=[ext1, *ext2],
            ours=[ours1, *ours2],
            passthrough=[pt1, *pt2],
            ext4_unbuffered=ext2u,
            ours_unbuffered=ours2u,
            passthrough_no_open=no_open,
            **runs.info(),
        )
        rate = "files/s"
        readers = f"{procs} reader{'s' if procs > 1 else ''}"
        pt_name = "passthrough" + (" (no open)" if no_open else "")
        rows += [
            Row(
                "small_epochs",
                f"epoch 1 (cold), {readers}",
                files / ours1["seconds"],
                files / ext1["seconds"],
                ext1["seconds"] / ours1["seconds"],
                EPOCH1_TARGET,
                unit=rate,
                baseline_name="ext4 cold",
                note="caches dropped, fresh mount, chunks in the local store; walk + shuffled "
                "reads",
                extra=extra,
            ),
            Row(
                "small_epochs",
                f"epoch 2 (warm), {readers}",
                files / o2,
                files / e2,
                e2 / o2,
                EPOCH2_TARGET,
                unit=rate,
                baseline_name="ext4 warm",
                note="same mount; best of 2 (runs a cache drop spoiled are retried)",
            ),
            Row(
                "small_epochs",
                f"epoch 2 (warm), {readers}, open(buffering=0)",
                files / o2u,
                files / e2u,
                e2u / o2u,
                None,
                unit=rate,
                baseline_name="ext4 warm, same",
                note="no isatty() per open, so no FUSE_IOCTL round trip per file",
            ),
            Row(
                "small_epochs",
                f"{pt_name} epoch 1 vs ext4 cold, {readers} (the stack's limit)",
                files / pt1["seconds"],
                files / ext1["seconds"],
                ext1["seconds"] / pt1["seconds"],
                None,
                unit=rate,
                baseline_name="ext4 cold",
            ),
            Row(
                "small_epochs",
                f"{pt_name} epoch 2 vs ext4 warm, {readers} (the stack's limit)",
                files / p2,
                files / e2,
                e2 / p2,
                None,
                unit=rate,
                baseline_name="ext4 warm",
            ),
        ]
    return rows


# -- find_stat -----------------------------------------------------------------------------------


def _stat_data(ctx: Context) -> datagen.Dataset:
    def make() -> datagen.Dataset:
        n = fixtures.shrink(ctx, STAT_FILES)
        root = ctx.fresh_dir("data", "stat")
        ctx.log(f"generating {n} tiny files in {root}")
        for i in range(n):
            d = root / f"d{i // 1000:03d}"
            if i % 1000 == 0:
                d.mkdir()
            (d / f"f{i:06d}.txt").write_bytes(f"file {i}\n".encode() * (1 + i % 7))
        return datagen.dir_stats(root)

    return ctx.once("data:stat", make)


def _find(root: Path) -> float:
    return run(["find", root, "-type", "f", "-printf", "%s\n"], timeout=1800).seconds


def _listing(root: Path) -> list[str]:
    """Names, types, and sizes of non-directories (a directory's st_size is fs-specific)."""
    argv = [
        "find", str(root),
        "(", "-type", "d", "-printf", "%P d\n", ")", "-o", "-printf", "%P %y %s\n",
    ]  # fmt: skip
    return sorted(run(argv, capture=True).stdout.splitlines())


@case("find_stat", "mount")
def find_stat(ctx: Context) -> list[Row]:
    """``find -type f -printf %s`` over 100k files: a tag mount vs ext4, warm (second run)."""
    data = _stat_data(ctx)
    store, revspec = fixtures.tagged(ctx, "stat", data.root)
    runs = WarmRuns()
    with mlgitfs_mount(store, revspec, fixtures.mnt(ctx, "stat")) as m:
        ctx.drop_caches()
        ours_cold = runs.cold("ours", lambda: _find(m.path))
        ctx.drop_caches()
        ext_cold = runs.cold("ext4", lambda: _find(data.root))
        warm = runs.warm(
            {"ext4": lambda: _find(data.root), "ours": lambda: _find(m.path)},
            want=3,
            max_tries=8,
        )
        ext_warm, ours_warm = warm["ext4"], warm["ours"]
        same = _listing(m.path) == _listing(data.root)
    ew, ow = min(ext_warm), min(ours_warm)
    ctx.log(
        f"  find: ext4 cold {ext_cold:.2f}s warm {ew:.2f}s; ours cold {ours_cold:.2f}s "
        f"warm {ow:.2f}s; listings equal: {same}"
    )
    extra = dict(
        files=data.files,
        ext4_cold=ext_cold,
        ext4_warm=ext_warm,
        ours_cold=ours_cold,
        ours_warm=ours_warm,
        listings_equal=same,
        **runs.info(),
    )
    err = None if same else "find over the mount does not list what find over ext4 lists"
    return [
        Row(
            "find_stat",
            f"find + stat of {data.files:,} files, warm",
            data.files / ow,
            data.files / ew,
            ew / ow,
            FIND_TARGET,
            unit="files/s",
            baseline_name="ext4 warm",
            note="second and later runs (kernel caches warm for both); best of 3",
            extra=extra,
            error=err,
        ),
        Row(
            "find_stat",
            f"find + stat of {data.files:,} files, cold (fresh mount, caches dropped)",
            data.files / ours_cold,
            data.files / ext_cold,
            ext_cold / ours_cold,
            None,
            unit="files/s",
            baseline_name="ext4 cold",
        ),
    ]
