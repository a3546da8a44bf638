"""Read-set recording (issue 18 item 6): the small-file epochs of a DataLoader-like reader
with 2 worker processes, recorded (`mlgitfs run --record`) against the same epochs
unrecorded, over the same kind of mount.

Both sides use a `--recordable` mount, the kind a recording runs in (the kernel keeps sending
opens): two fresh ones for the cold epochs, one for the warm epochs (recorded and unrecorded
runs interleaved on it, so the two daemons' caches do not differ). The target row's baseline
is therefore the same epochs on the same --recordable mount, unrecorded (issue 18's "the same
epochs unrecorded"), never the default mount. Warm rows are medians of WARM_ROUNDS
interleaved rounds: on a loaded machine single epochs spread by +-30%, and a best-of picks
whichever side a quiet moment favoured. The informational row sets the unrecorded epochs
against a default mount (no-open mode): the price of being recordable rather than of
recording.
"""

from __future__ import annotations

import statistics
import sys
from functools import partial
from pathlib import Path
from typing import Any

from bench.cases import fixtures
from bench.context import Context
from bench.mounting import ROOT, mlgitfs_mount, run_reader
from bench.ours import Mlgitfs
from bench.proc import run
from bench.registry import Row, case
from bench.warm import WarmRuns
from mlgitfs import api

TARGET = 0.97  # recorded epochs at most 3% slower
PROCS = 2
SEED = 1234
WARM_ROUNDS = 5


def _args(root: Path) -> list[str]:
    return ["epoch", str(root), "--procs", str(PROCS), "--seed", str(SEED)]


def _plain(root: Path) -> dict[str, Any]:
    return run_reader(_args(root))


def _recorded(store: Mlgitfs, root: Path, name: str) -> dict[str, Any]:
    argv = store.argv("run", "--record", name, "--mount", root, "--")
    argv += [sys.executable, "-m", "bench.readers", *_args(root)]
    out: dict[str, Any] = run(argv, capture=True, cwd=ROOT, timeout=1800).json()
    return out


def _recorded_files(store: Mlgitfs, name: str) -> int:
    try:
        return api.recording(store.home, name).files
    finally:
        api.close_store(store.home)


@case("small_epochs_recorded", "mount")
def small_epochs_recorded(ctx: Context) -> list[Row]:
    """Shuffled whole-file reads of ~20k small files by 2 worker processes: recorded vs not."""
    data = fixtures.small_data(ctx)
    store, revspec = fixtures.tagged(ctx, "small", data.root)
    runs = WarmRuns()
    with (
        mlgitfs_mount(store, revspec, fixtures.mnt(ctx, "small-rec"), "--recordable") as m,
        mlgitfs_mount(store, revspec, fixtures.mnt(ctx, "small-plain"), "--recordable") as p,
        mlgitfs_mount(store, revspec, fixtures.mnt(ctx, "small-noopen")) as n,
    ):
        ctx.drop_caches()
        rec1 = runs.cold("recorded", partial(_recorded, store, m.path, "bench-cold"))
        cold_files = _recorded_files(store, "bench-cold")
        ctx.drop_caches()
        plain1 = runs.cold("plain", partial(_plain, p.path))
        warm = runs.warm(
            {
                "recorded": partial(_recorded, store, m.path, "bench-warm"),
                "plain": partial(_plain, m.path),
                "no-open": partial(_plain, n.path),
            },
            want=WARM_ROUNDS,
            max_tries=WARM_ROUNDS + 3,
        )
    files = int(plain1["files"])
    r2 = statistics.median(x["seconds"] for x in warm["recorded"])
    p2 = statistics.median(x["seconds"] for x in warm["plain"])
    n2 = statistics.median(x["seconds"] for x in warm["no-open"])
    ctx.log(
        f"  epoch 1: recorded {rec1['seconds']:.2f}s unrecorded {plain1['seconds']:.2f}s; "
        f"epoch 2: recorded {r2:.2f}s unrecorded {p2:.2f}s default mount {n2:.2f}s; "
        f"read set {cold_files} files of {files}"
    )
    err = None
    if cold_files != files:
        err = f"the recorded read set holds {cold_files} files, the epoch read {files}"
    extra = dict(procs=PROCS, files=files, recorded=[rec1, *warm["recorded"]],
                 unrecorded=[plain1, *warm["plain"]], no_open=warm["no-open"],
                 readset_files=cold_files, **runs.info())  # fmt: skip
    return [
        Row(
            "small_epochs_recorded",
            "epoch 1 (cold), 2 workers, recorded vs unrecorded",
            files / rec1["seconds"],
            files / plain1["seconds"],
            plain1["seconds"] / rec1["seconds"],
            TARGET,
            unit="files/s",
            baseline_name="unrecorded",
            note="fresh --recordable mounts, caches dropped; the read set checked complete",
            extra=extra,
            error=err,
        ),
        Row(
            "small_epochs_recorded",
            "epoch 2 (warm), 2 workers, recorded vs unrecorded",
            files / r2,
            files / p2,
            p2 / r2,
            TARGET,
            unit="files/s",
            baseline_name="unrecorded",
            note=f"same --recordable mount both sides, runs interleaved; medians of {WARM_ROUNDS}",
        ),
        Row(
            "small_epochs_recorded",
            "epoch 2 (warm), 2 workers, recordable mount vs default (no-open) mount",
            files / p2,
            files / n2,
            n2 / p2,
            None,
            unit="files/s",
            baseline_name="default mount",
            note=f"the price of keeping opens, unrecorded; medians of {WARM_ROUNDS}",
        ),
    ]
