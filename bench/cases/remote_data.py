"""The remote cases' shared state (bench/cases/remote.py, remote_reads.py), memoized for the
run: one SeaweedFS on 127.0.0.1 (bench/seaweed.py), three buckets: ``bench-mlgitfs`` (our
remote, prefixes ``ds`` and ``synth``), ``bench-dvc`` (DVC's remote) and ``bench-raw`` (the same
files as plain objects, keys = paths, for rclone, s3fs and boto3).

The data set ``ds`` is the shared generated data (bench/datagen.py): ``small/`` (20,000 files of
~100 KiB in 20 dirs) and ``large/big.bin`` (1 GiB), hard-linked into one directory, imported
into a source store and tagged ``ds@v1`` (not timed). Also: DVC with dvc-s3 and its push/pull.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import seaweed
from bench.cases import fixtures
from bench.context import Context
from bench.dvc import Dvc, copy_tree
from bench.harness import Skipped
from bench.mounting import reader
from bench.ours import Mlgitfs
from bench.proc import CommandFailed, run
from testsupport.s3server import S3Server

MB = 1e6
OURS_BUCKET = "bench-mlgitfs"
DVC_BUCKET = "bench-dvc"
RAW_BUCKET = "bench-raw"
REPO = "ds"
LARGE_PATH = "large/big.bin"


def log_path(ctx: Context) -> Path:
    return ctx.path("logs", "remote.log")


def url(prefix: str) -> str:
    return f"s3://{OURS_BUCKET}/{prefix}"


@dataclass
class Dataset:
    root: Path  # small/ and large/big.bin
    files: int
    bytes: int
    small_files: int
    small_bytes: int
    large_bytes: int


def dataset(ctx: Context) -> Dataset:
    def make() -> Dataset:
        small = fixtures.small_data(ctx)
        large = fixtures.large_data(ctx)
        root = ctx.fresh_dir("data", "remote-ds")
        # hard links: the same bytes without a copy (DVC gets a real copy: dvc_push_pull)
        run(["cp", "-al", small.root, root / "small"], capture=True)
        run(["cp", "-al", large.root, root / "large"], capture=True)
        big = root / LARGE_PATH
        if not big.is_file():
            raise FileNotFoundError(f"expected the large file at {big}")
        return Dataset(
            root,
            small.files + large.files,
            small.bytes + large.bytes,
            small.files,
            small.bytes,
            big.stat().st_size,
        )

    return ctx.once("remote:dataset", make)


def source(ctx: Context) -> Mlgitfs:
    """The source store: ``ds`` imported and tagged ``ds@v1`` (not timed)."""

    def make() -> Mlgitfs:
        data = dataset(ctx)
        store = Mlgitfs(ctx.fresh_dir("homes", "remote-src"), log_path(ctx))
        store.init(REPO)
        ctx.log(f"mlgitfs import {data.root} ({data.files} files) into {REPO} (not timed)")
        secs = store.import_dir(REPO, data.root, "bench remote: v1")
        ctx.log(f"  {secs:.1f}s")
        store.tag(f"{REPO}@v1")
        return store

    return ctx.once("remote:source", make)


@dataclass
class Pushed:
    srv: S3Server
    seconds: float
    cold: bool


def pushed(ctx: Context) -> Pushed:
    """``remote add origin`` + ``push ds --all origin`` (timed, caches dropped before)."""

    def make() -> Pushed:
        srv = seaweed.server(ctx)
        store = source(ctx)
        seaweed.bucket(ctx, srv, OURS_BUCKET)
        store.remote_add("origin", url(REPO), srv.endpoint_url)
        cold = ctx.drop_caches()
        ctx.log(f"mlgitfs push {REPO} --all origin")
        secs = store.push(REPO, "origin")
        ctx.log(f"  {secs:.1f}s")
        return Pushed(srv, secs, cold)

    return ctx.once("remote:pushed", make)


def raw(ctx: Context) -> S3Server:
    """The data set's files as plain objects in ``bench-raw`` (keys = paths; not timed)."""

    def make() -> S3Server:
        srv = seaweed.server(ctx)
        data = dataset(ctx)
        seaweed.bucket(ctx, srv, RAW_BUCKET)
        ctx.log(f"boto3: uploading {data.files} files to {RAW_BUCKET} (not timed)")
        t0 = time.perf_counter()
        files, nbytes = seaweed.upload_tree(srv, data.root, RAW_BUCKET)
        ctx.log(f"  {files} files, {nbytes / MB:.0f} MB in {time.perf_counter() - t0:.1f}s")
        return srv

    return ctx.once("remote:raw", make)


def clone(
    ctx: Context, name: str, remote_url: str, repo: str, srv: S3Server
) -> tuple[Mlgitfs, float]:
    """``mlgitfs clone`` into a fresh store; returns it and the wall seconds."""
    home = ctx.fresh_dir("homes", f"remote-{name}")
    store = Mlgitfs(home, log_path(ctx))
    secs = store.clone(remote_url, repo, srv.endpoint_url)
    return store, secs


def mnt(ctx: Context, name: str) -> Path:
    return ctx.path("mnt", f"remote-{name}")


def s3reader(args: list[str]) -> dict[str, Any]:
    """bench.s3readers in a subprocess (a stuck mount cannot hang the runner)."""
    return reader("bench.s3readers", args)


def check_bytes(what: str, got: int, want: int) -> None:
    if got != want:
        raise AssertionError(f"{what}: read {got} bytes, expected {want}")


# -- DVC with dvc-s3 -----------------------------------------------------------------------------


def dvc_s3(ctx: Context) -> Path:
    """The bench's DVC with the s3 extra (``dvc[s3]`` installed into the same venv if missing)."""

    def make() -> Path | Skipped:
        exe = fixtures.dvc_exe(ctx)
        python = exe.parent / "python"
        if run([python, "-c", "import dvc_s3"], capture=True, check=False).returncode != 0:
            version = Dvc(exe, ctx.work, log_path(ctx)).version()
            spec = f"dvc[s3]=={version}" if version else "dvc[s3]"
            ctx.log(f"installing {spec} into {exe.parent.parent}")
            log = ctx.path("logs", "dvc-install.log")
            try:
                pip = ["-m", "pip", "install", "-q", "--disable-pip-version-check", spec]
                run([python, *pip], log=log, timeout=900)
            except (CommandFailed, OSError, subprocess.TimeoutExpired) as e:
                return Skipped(f"{spec} could not be installed with pip (see {log}): {e}")
        version = Dvc(exe, ctx.work, log_path(ctx)).version()
        ctx.meta.setdefault("dvc_version", version)
        return exe

    found = ctx.once("remote:dvc-s3", make)
    if isinstance(found, Skipped):
        raise found
    return found


def dvc_repo(ctx: Context, exe: Path, name: str, srv: S3Server) -> Dvc:
    root = ctx.fresh_dir("dvc", name)
    repo = Dvc(exe, root, ctx.path("logs", "dvc-remote.log"))
    repo.fresh()
    repo.run("remote", "add", "-d", "storage", f"s3://{DVC_BUCKET}/{REPO}")
    repo.run("remote", "modify", "storage", "endpointurl", srv.endpoint_url)
    return repo


@dataclass
class DvcTimes:
    push: float
    pull: float
    read: float
    objects: int


def dvc_push_pull(ctx: Context, srv: S3Server, data: Dataset) -> DvcTimes:
    """``dvc add`` (not timed), ``dvc push``, then what a clone does: ``dvc pull`` and a read
    of every file; caches dropped before push and pull."""
    exe = dvc_s3(ctx)
    seaweed.bucket(ctx, srv, DVC_BUCKET)
    src = dvc_repo(ctx, exe, "remote-src", srv)
    for d in ("small", "large"):
        copy_tree(data.root / d, src.root / d)
    ctx.log("dvc add small large (not timed)")
    src.add("small", "large")
    ctx.drop_caches()
    ctx.log("dvc push")
    push = src.run("push", "--quiet")
    ctx.log(f"  {push:.1f}s")
    objects = sum(1 for _ in seaweed.list_keys(srv, DVC_BUCKET, f"{REPO}/"))
    # the clone: what `git clone` of the DVC project gives (config + .dvc files), then pull
    dst = dvc_repo(ctx, exe, "remote-clone", srv)
    for f in ("small.dvc", "large.dvc"):
        shutil.copy2(src.root / f, dst.root / f)
    shutil.rmtree(src.root, ignore_errors=True)
    ctx.drop_caches()
    ctx.log("dvc pull + read every file")
    pull = dst.run("pull", "--quiet")
    t0 = time.perf_counter()
    r = s3reader(["tree", str(dst.root / "small"), str(dst.root / "large")])
    read = time.perf_counter() - t0
    check_bytes("dvc pull read", int(r["bytes"]), data.bytes)
    ctx.log(f"  pull {pull:.1f}s + read {read:.1f}s")
    shutil.rmtree(dst.root, ignore_errors=True)
    return DvcTimes(push, pull, read, objects)
