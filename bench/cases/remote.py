"""Remote cases (issue 5), part one: push and clone against DVC, and the remote's object
count (bench/cases/remote_data.py: the server, data set and stores they share;
bench/cases/remote_reads.py: reads through mounts that stream from S3).

All against one SeaweedFS started for the run on 127.0.0.1. Every mount is of the TAG
(read-only). Page caches are dropped before every timed step (root), so the server reads its
volumes from disk alike for every client.
"""

from __future__ import annotations

import shutil
import time
from typing import Any

from bench import seaweed
from bench.cases import remote_data as rd
from bench.cases.remote_data import OURS_BUCKET, REPO
from bench.context import Context
from bench.harness import Skipped
from bench.mounting import mount_once
from bench.registry import Row, case
from testsupport.s3server import S3Server

DVC_TARGET = 3.0
OBJECTS_TARGET = 0.01


# -- push_clone_vs_dvc -----------------------------------------------------------------------------


@case("push_clone_vs_dvc", "remote", "s3")
def push_clone_vs_dvc(ctx: Context) -> list[Row]:
    """Push, then clone + full read, of 20k x 100 KiB + 1 GiB to SeaweedFS vs dvc push/pull."""
    data = rd.dataset(ctx)
    pushed = rd.pushed(ctx)
    srv = pushed.srv

    # clone + mount + read every file through the mount of the tag, the chunks streaming in
    # (the product's path); then the same with `mlgitfs prefetch` first, as an info row
    ctx.drop_caches()
    ours: dict[str, Any] = dict(_clone_and_read(ctx, srv, data, "clone-full", prefetch=False))
    ctx.drop_caches()
    ours_pf = _clone_and_read(ctx, srv, data, "clone-prefetch", prefetch=True)
    ours["push_seconds"] = pushed.seconds
    ours["with_prefetch"] = ours_pf
    ours_clone = ours["clone_read_seconds"]
    common = {"files": data.files, "bytes": data.bytes, "ours": ours}
    try:
        dvc = rd.dvc_push_pull(ctx, srv, data) if ctx.use_dvc else None
    except Skipped as e:
        ctx.log(f"  DVC skipped: {e}")
        return _without_dvc(data, pushed.seconds, ours, str(e))
    if dvc is None:
        return [
            Row(
                "push_clone_vs_dvc",
                "push (DVC skipped)",
                pushed.seconds,
                None,
                None,
                unit="s",
                extra=common,
            ),
            Row(
                "push_clone_vs_dvc",
                "clone + full read (DVC skipped)",
                ours_clone,
                None,
                None,
                unit="s",
                extra=common,
            ),
        ]
    ctx.meta.setdefault("remote", {})["dvc_objects"] = dvc.objects
    dvc_info = {
        "push_seconds": dvc.push,
        "pull_seconds": dvc.pull,
        "read_seconds": dvc.read,
        "objects": dvc.objects,
    }
    extra = {**common, "dvc": dvc_info}
    dvc_clone = dvc.pull + dvc.read
    return [
        Row(
            "push_clone_vs_dvc",
            f"push {data.files:,} files, {data.bytes / 2**30:.1f} GiB to S3",
            pushed.seconds,
            dvc.push,
            dvc.push / pushed.seconds,
            DVC_TARGET,
            unit="s",
            baseline_name="dvc push",
            note="dvc seconds ÷ ours (`mlgitfs push ds --all origin`)",
            extra=extra,
        ),
        Row(
            "push_clone_vs_dvc",
            "clone + full read",
            ours_clone,
            dvc_clone,
            dvc_clone / ours_clone,
            DVC_TARGET,
            unit="s",
            baseline_name="dvc pull + read",
            note=f"ours: clone {ours['clone_seconds']:.1f} + mount "
            f"{ours['mount_seconds']:.1f} + read through the tag mount, streaming "
            f"{ours['read_seconds']:.1f}s; dvc: pull {dvc.pull:.1f} + read {dvc.read:.1f}s",
            extra=extra,
        ),
        Row(
            "push_clone_vs_dvc",
            "clone + prefetch + full read",
            ours_pf["clone_read_seconds"],
            dvc_clone,
            dvc_clone / ours_pf["clone_read_seconds"],
            None,
            unit="s",
            baseline_name="dvc pull + read",
            note=f"ours: clone {ours_pf['clone_seconds']:.1f} + prefetch "
            f"{ours_pf['prefetch_seconds']:.1f} + mount {ours_pf['mount_seconds']:.1f} + read "
            f"{ours_pf['read_seconds']:.1f}s",
            extra=extra,
        ),
    ]


def _clone_and_read(
    ctx: Context, srv: S3Server, data: rd.Dataset, name: str, prefetch: bool
) -> dict[str, float]:
    """Fresh clone, optionally `mlgitfs prefetch`, mount the tag, read every file whole."""
    what = "clone + prefetch + mount" if prefetch else "clone + mount"
    ctx.log(f"mlgitfs {what} + read every file")
    t0 = time.perf_counter()
    store, clone_s = rd.clone(ctx, name, rd.url(REPO), REPO, srv)
    prefetch_s = store.prefetch(f"{REPO}@v1") if prefetch else 0.0
    mounted = mount_once(store, f"{REPO}@v1", rd.mnt(ctx, name))
    try:
        t1 = time.perf_counter()
        r = rd.s3reader(["tree", str(mounted.path / "small"), str(mounted.path / "large")])
        read_s = time.perf_counter() - t1
    finally:
        mounted.unmount()
    total = time.perf_counter() - t0
    rd.check_bytes(f"mlgitfs {what} read", int(r["bytes"]), data.bytes)
    ctx.log(
        f"  {total:.1f}s (clone {clone_s:.1f}s, prefetch {prefetch_s:.1f}s, "
        f"mount {mounted.seconds:.2f}s, read {read_s:.1f}s)"
    )
    shutil.rmtree(store.home, ignore_errors=True)
    return {
        "clone_read_seconds": total,
        "clone_seconds": clone_s,
        "prefetch_seconds": prefetch_s,
        "mount_seconds": mounted.seconds,
        "read_seconds": read_s,
    }


def _without_dvc(data: rd.Dataset, push_s: float, ours: dict[str, Any], why: str) -> list[Row]:
    """The target rows with ours measured and DVC skipped (it could not be installed)."""
    extra = {"files": data.files, "bytes": data.bytes, "ours": ours}
    return [
        Row(
            "push_clone_vs_dvc",
            f"push {data.files:,} files, {data.bytes / 2**30:.1f} GiB to S3",
            push_s,
            None,
            None,
            DVC_TARGET,
            unit="s",
            baseline_name="dvc push",
            skipped=why,
            extra=extra,
        ),
        Row(
            "push_clone_vs_dvc",
            "clone + full read",
            ours["clone_read_seconds"],
            None,
            None,
            DVC_TARGET,
            unit="s",
            baseline_name="dvc pull + read",
            skipped=why,
        ),
    ]


# -- remote_objects ------------------------------------------------------------------------------


@case("remote_objects", "s3")
def remote_objects(ctx: Context) -> list[Row]:
    """Remote object count (listing the bucket) against the data set's file count."""
    data = rd.dataset(ctx)
    pushed = rd.pushed(ctx)
    keys = list(seaweed.list_keys(pushed.srv, OURS_BUCKET, f"{REPO}/"))
    kinds: dict[str, int] = {}
    for k, _size in keys:
        top = k[len(REPO) + 1 :].split("/", 1)[0]
        kinds[top] = kinds.get(top, 0) + 1
    remote_bytes = sum(s for _k, s in keys)
    dvc_objects = ctx.meta.get("remote", {}).get("dvc_objects")
    ctx.log(f"  {len(keys)} objects for {data.files} files: {kinds}")
    return [
        Row(
            "remote_objects",
            "remote objects per file",
            float(len(keys)),
            float(data.files),
            len(keys) / data.files,
            OBJECTS_TARGET,
            direction="max",
            unit="objects",
            baseline_name="files",
            note=f"{len(keys) / data.files:.4f} objects per file; by top-level prefix: {kinds}"
            + (f"; DVC's remote holds {dvc_objects:,}" if dvc_objects else ""),
            extra=dict(
                objects=len(keys),
                files=data.files,
                by_prefix=kinds,
                remote_bytes=remote_bytes,
                data_bytes=data.bytes,
                dvc_objects=dvc_objects,
            ),
        )
    ]
