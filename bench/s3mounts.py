"""The other FUSE views of an S3 bucket, for the remote cases: ``rclone mount`` and s3fs-fuse
(Debian packages ``rclone`` and ``s3fs``, installed by bench/peers.py when missing), both
against the run's SeaweedFS on 127.0.0.1.

Each runs in the foreground as our child (bench/mounting.py `fuse_process`: we hold its PID),
mounted read-only, always unmounted and stopped, even when the body fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from bench.mounting import ProcMount, fuse_process
from testsupport.s3server import S3Server


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@contextlib.contextmanager
def rclone_mount(
    exe: str, srv: S3Server, bucket: str, path: Path, cache_mode: str, work: Path, log: Path
) -> Iterator[ProcMount]:
    """``rclone mount`` of ``bucket`` (read-only) with ``--vfs-cache-mode cache_mode`` and a
    fresh cache directory under ``work``. The remote is configured only through
    ``RCLONE_CONFIG_SW_*`` variables (an empty config file, ``AWS_CA_BUNDLE`` unset: rclone
    refuses to start with a bundle it cannot use)."""
    cache = work / f"rclone-cache-{cache_mode}"
    if cache.exists():
        shutil.rmtree(cache)
    cache.mkdir(parents=True)
    config = work / "rclone.conf"
    config.write_text("")
    env = _base_env()
    env.update(
        {
            "RCLONE_CONFIG_SW_TYPE": "s3",
            "RCLONE_CONFIG_SW_PROVIDER": "SeaweedFS",
            "RCLONE_CONFIG_SW_ENV_AUTH": "false",
            "RCLONE_CONFIG_SW_ACCESS_KEY_ID": srv.access_key,
            "RCLONE_CONFIG_SW_SECRET_ACCESS_KEY": srv.secret_key,
            "RCLONE_CONFIG_SW_REGION": srv.region,
            "RCLONE_CONFIG_SW_ENDPOINT": srv.endpoint_url,
            "RCLONE_CONFIG_SW_FORCE_PATH_STYLE": "true",
        }
    )
    argv = [
        exe,
        "mount",
        f"sw:{bucket}",
        str(path),
        "--config",
        str(config),
        "--read-only",
        "--vfs-cache-mode",
        cache_mode,
        "--cache-dir",
        str(cache),
        "--log-level",
        "NOTICE",
    ]
    try:
        with fuse_process(f"rclone mount ({cache_mode})", argv, path, log, env) as m:
            yield m
    finally:
        shutil.rmtree(cache, ignore_errors=True)


@contextlib.contextmanager
def s3fs_mount(
    exe: str, srv: S3Server, bucket: str, path: Path, work: Path, log: Path
) -> Iterator[ProcMount]:
    """s3fs-fuse of ``bucket`` (read-only, path-style requests, no local cache: its default)."""
    passwd = work / "s3fs.passwd"
    passwd.write_text(f"{srv.access_key}:{srv.secret_key}\n")
    passwd.chmod(0o600)
    opts = ",".join(
        [
            f"url={srv.endpoint_url}",
            "use_path_request_style",
            f"passwd_file={passwd}",
            f"endpoint={srv.region}",
            "ro",
        ]
    )
    argv = [exe, bucket, str(path), "-f", "-o", opts]
    with fuse_process("s3fs", argv, path, log, _base_env()) as m:
        yield m
