"""The other FUSE views of an S3 bucket, for the remote cases: ``rclone mount`` and s3fs-fuse
(Debian packages ``rclone`` and ``s3fs``), both against the run's SeaweedFS on 127.0.0.1.

Each runs in the foreground as our child (so we hold its PID), mounted read-only; the context
manager waits until the mount answers and always unmounts (``fusermount3 -u``, then ``-u -z``)
and stops the process by its PID (SIGTERM, then SIGKILL), even when the body fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.mounting import mountpoint
from bench.proc import CommandFailed, tail
from testsupport.mounts import detach, mount_dev
from testsupport.s3server import S3Server

MOUNT_TIMEOUT = 60.0


@dataclass
class ProcMount:
    name: str
    path: Path
    proc: subprocess.Popen[bytes]
    seconds: float  # from start to the mount answering a stat


def tool(name: str) -> str | None:
    return shutil.which(name)


def tool_version(argv: Sequence[str]) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if lines else ""


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        proc.wait(timeout=10)  # exits by itself once unmounted
        return
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(timeout=10)


@contextlib.contextmanager
def _fuse_process(
    name: str, argv: Sequence[str], env: Mapping[str, str], path: Path, log: Path
) -> Iterator[ProcMount]:
    mountpoint(path)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while mount_dev(path) is None:
            if proc.poll() is not None:
                raise CommandFailed(f"{name} exited {proc.returncode}:\n{tail(log)}")
            if time.monotonic() > deadline:
                raise CommandFailed(f"{name} did not mount in {MOUNT_TIMEOUT:.0f}s:\n{tail(log)}")
            time.sleep(0.02)
        os.stat(path)
        yield ProcMount(name, path, proc, time.perf_counter() - t0)
    finally:
        if mount_dev(path) is not None:
            subprocess.run(["fusermount3", "-u", str(path)], capture_output=True, check=False)
        if mount_dev(path) is not None:
            detach(path)
        _stop(proc)


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@contextlib.contextmanager
def rclone_mount(
    srv: S3Server, bucket: str, path: Path, cache_mode: str, work: Path, log: Path
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
        "rclone",
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
        with _fuse_process(f"rclone mount ({cache_mode})", argv, env, path, log) as m:
            yield m
    finally:
        shutil.rmtree(cache, ignore_errors=True)


@contextlib.contextmanager
def s3fs_mount(
    srv: S3Server, bucket: str, path: Path, work: Path, log: Path
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
    argv = ["s3fs", bucket, str(path), "-f", "-o", opts]
    with _fuse_process("s3fs", argv, _base_env(), path, log) as m:
        yield m
