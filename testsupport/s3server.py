"""A real S3 server for tests: SeaweedFS ``weed mini`` on loopback, started and stopped by PID.

Every port is chosen free and passed explicitly, telemetry, WebDAV, the admin UI, Iceberg and
Lance endpoints are off, and nothing binds or dials anything but 127.0.0.1. The server enforces
SigV4 with one identity made from ``ACCESS_KEY``/``SECRET_KEY`` (``weed mini`` creates it from
its environment), so wrong credentials are refused as on AWS. Buckets are never created
implicitly (``-s3.autoCreateBucket=false``), so a missing bucket is an error as on AWS.

With ``identities`` (an ``s3.json`` identity configuration: ``identities`` and ``policies``,
as ``mlgitfs access export --format seaweedfs`` writes it), the server enforces those
identities' policies instead; the test identity ``ACCESS_KEY`` is added to them as an admin,
so fixtures can still create buckets and inspect everything.

Used by the session fixture ``s3_server`` of tests/conftest_s3.py and by bench/seaweed.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
ACCESS_KEY = "mlgitfs-test-key"
SECRET_KEY = "mlgitfs-test-secret"  # a throwaway secret for a loopback-only server
REGION = "us-east-1"
START_TIMEOUT = 60.0
ADMIN_GRPC_OFFSET = 10000  # the embedded worker dials admin.port + 10000, whatever we pass


def weed_binary() -> str | None:
    """Path of ``weed`` (next to the running Python first, then PATH), or None."""
    import sys

    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def client_env(endpoint_url: str | None = None) -> dict[str, str]:
    """The AWS environment a test process (or a CLI subprocess) needs for this server.

    Config and credential files point nowhere and IMDS is off, so no developer profile or
    cloud metadata endpoint (a non-loopback address) is ever consulted.
    """
    env = {
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    if endpoint_url:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    return env


# variables of the AWS chain that must not leak from the developer's environment into tests
CLEARED_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


@dataclass
class S3Server:
    """A running SeaweedFS: where it answers, and fresh buckets on it."""

    endpoint_url: str
    pid: int
    data_dir: Path
    log_path: Path
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION
    _counter: Iterator[int] = field(default_factory=itertools.count)
    _run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should use this server through the AWS chain."""
        return client_env(self.endpoint_url)

    def bucket_name(self) -> str:
        """A bucket name not used before in this session (not created)."""
        return f"t-{self._run_id}-{next(self._counter)}"

    def new_bucket(self) -> str:
        """Create a fresh, empty bucket and return its name."""
        name = self.bucket_name()
        client = self.client()
        try:
            client.create_bucket(Bucket=name)
        finally:
            client.close()
        return name

    def client(self, **kwargs: Any) -> Any:
        """A boto3 S3 client for this server (tests use it to set up or inspect state)."""
        return make_client(self.endpoint_url, **kwargs)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.log_path, lines)

    def env_as(self, access_key: str, secret_key: str) -> dict[str, str]:
        """``env`` with another identity's credentials."""
        env = client_env(self.endpoint_url)
        env["AWS_ACCESS_KEY_ID"] = access_key
        env["AWS_SECRET_ACCESS_KEY"] = secret_key
        return env


def make_client(endpoint_url: str, **kwargs: Any) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2,
        read_timeout=10,
        retries={"mode": "standard", "max_attempts": 2},
        s3={"addressing_style": "path"},
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=kwargs.pop("access_key", ACCESS_KEY),
        aws_secret_access_key=kwargs.pop("secret_key", SECRET_KEY),
        region_name=REGION,
        config=config,
        **kwargs,
    )


def _free_ports(n: int) -> list[int]:
    """``n`` distinct ports free on loopback right now (held together, so no duplicates)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _admin_port(taken: set[int]) -> int:
    """A free port P with P + 10000 free too (see ADMIN_GRPC_OFFSET)."""
    for _ in range(200):
        p = random.randint(20000, 65535 - ADMIN_GRPC_OFFSET)
        q = p + ADMIN_GRPC_OFFSET
        if p not in taken and q not in taken and _port_is_free(p) and _port_is_free(q):
            return p
    raise RuntimeError("no free admin port pair on 127.0.0.1")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the test process dies (Linux)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)


def identity_config(identities: dict[str, Any]) -> dict[str, Any]:
    """``identities`` (an s3.json) with the test identity added as an admin."""
    admin = {
        "name": "mlgitfs-test-admin",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    return {
        "identities": [admin, *identities.get("identities", [])],
        "policies": list(identities.get("policies", [])),
    }


def weed_args(
    weed: str, data_dir: Path, s3_config: Path | None = None
) -> tuple[list[str], int, list[int]]:
    """The command line for ``weed mini`` with fresh explicit ports, its S3 port, all ports."""
    (
        master,
        master_grpc,
        filer,
        filer_grpc,
        volume,
        volume_grpc,
        s3,
        s3_grpc,
        metrics,
    ) = _free_ports(9)
    ports = {master, master_grpc, filer, filer_grpc, volume, volume_grpc, s3, s3_grpc, metrics}
    admin = _admin_port(ports)
    args = [
        weed,
        "mini",
        f"-dir={data_dir}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        "-master.telemetry=false",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={data_dir}/filer.sock",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        # every bucket is a collection with volumes of its own: the default cap (free disk /
        # volume size) runs out after a few dozen buckets, and a session makes hundreds
        "-volume.max=10000",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.localSocket={data_dir}/s3.sock",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.autoCreateBucket=false",
        f"-admin.port={admin}",
        f"-admin.port.grpc={admin + ADMIN_GRPC_OFFSET}",
        "-admin.ui=false",
        "-webdav=false",
        f"-metricsPort={metrics}",
        f"-metricsIp={HOST}",
    ]
    if s3_config is not None:
        args.append(f"-s3.config={s3_config}")
    return args, s3, sorted(ports | {admin, admin + ADMIN_GRPC_OFFSET})


def _remove_stray_sockets(ports: list[int]) -> None:
    """weed hardcodes /tmp/seaweedfs-<component>-grpc-<port>.sock (no flag) and leaves some
    behind on exit: remove those of our ports once our server is gone."""
    for port in ports:
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                if path.is_socket():
                    path.unlink()


def _server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    # weed mini makes its one S3 identity from these
    env["AWS_ACCESS_KEY_ID"] = ACCESS_KEY
    env["AWS_SECRET_ACCESS_KEY"] = SECRET_KEY
    return env


def _wait_ready(proc: subprocess.Popen[bytes], endpoint_url: str, log_path: Path) -> None:
    """Poll with a real S3 call (create a bucket) until it answers, the process dies or time
    runs out."""
    client = make_client(endpoint_url)
    deadline = time.monotonic() + START_TIMEOUT
    last: Exception | None = None
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"weed mini exited with {proc.returncode}:\n{_tail(log_path)}")
            try:
                client.create_bucket(Bucket="readiness-probe")
                return
            except Exception as exc:  # not up yet: refused, 5xx while starting, ...
                code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                if code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    return  # an earlier try succeeded but its reply was lost
                last = exc
                time.sleep(0.2)
        raise RuntimeError(
            f"weed mini not ready after {START_TIMEOUT}s ({last!r}):\n{_tail(log_path)}"
        )
    finally:
        client.close()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate by PID, wait, kill if needed, reap."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=15)


@contextlib.contextmanager
def run_seaweedfs(
    weed: str, attempts: int = 3, identities: dict[str, Any] | None = None
) -> Iterator[S3Server]:
    """Start ``weed mini`` in a temporary directory, yield it ready, stop it and clean up.
    With ``identities`` (an s3.json), it enforces them (see the module docstring).

    A port taken between choosing and binding shows as an early exit: retried with new ports.
    """
    tmp = Path(tempfile.mkdtemp(prefix="mlgitfs-seaweedfs-"))
    s3_config: Path | None = None
    if identities is not None:
        s3_config = tmp / "s3.json"
        fd = os.open(s3_config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(identity_config(identities), f)
    proc: subprocess.Popen[bytes] | None = None
    used_ports: list[int] = []
    try:
        for attempt in range(1, attempts + 1):
            data_dir = tmp / f"data{attempt}"
            data_dir.mkdir()
            log_path = tmp / f"weed{attempt}.log"
            args, s3_port, ports = weed_args(weed, data_dir, s3_config)
            used_ports.extend(ports)
            endpoint_url = f"http://{HOST}:{s3_port}"
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=_server_env(),
                    cwd=data_dir,
                    start_new_session=True,  # a ^C in the terminal reaches pytest, not weed
                    preexec_fn=_die_with_parent,  # only a prctl call between fork and exec
                )
            try:
                _wait_ready(proc, endpoint_url, log_path)
            except RuntimeError:
                stop(proc)
                if attempt == attempts:
                    raise
                continue
            yield S3Server(
                endpoint_url=endpoint_url, pid=proc.pid, data_dir=data_dir, log_path=log_path
            )
            return
    finally:
        if proc is not None:
            stop(proc)
        _remove_stray_sockets(used_ports)
        shutil.rmtree(tmp, ignore_errors=True)
