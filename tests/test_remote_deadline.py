"""Bounded waits on a stalled remote: SeaweedFS stopped with SIGSTOP (a server that accepts
connections and never answers). A CLI read gives a clear error, and a read through a mount
EIO, once the remote deadline (MLGITFS_REMOTE_DEADLINE) has passed, not after botocore's
5 tries of 60 s; a reader blocked in `read` on the mount dies of SIGTERM at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import write_tree
from testsupport.mounts import fuse_skip_reason, kill_and_detach
from testsupport.s3server import S3Server, run_seaweedfs, weed_binary

pytestmark = [
    pytest.mark.s3,
    pytest.mark.fuse,
    pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason())),
]
MLGITFS = str(Path(sys.executable).parent / "mlgitfs")
DEADLINE = 3.0


@pytest.fixture
def server() -> Iterator[S3Server]:
    """A SeaweedFS of this test's own (it is stopped and continued); always continued before
    it is stopped for good."""
    weed = weed_binary()
    if weed is None:
        pytest.skip("SeaweedFS `weed` not installed")
    with run_seaweedfs(weed) as s:
        try:
            yield s
        finally:
            os.killpg(s.pid, signal.SIGCONT)


def cli(
    home: Path, env: dict[str, str], *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [MLGITFS, "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if check:
        assert proc.returncode == 0, f"{args}: {proc.stdout}{proc.stderr}"
    return proc


def test_stalled_remote(tmp_path: Path, server: S3Server) -> None:
    env = {**os.environ, **server.env, "MLGITFS_REMOTE_DEADLINE": str(DEADLINE)}
    src = write_tree(
        tmp_path / "src",
        {"a.bin": os.urandom(300_000), "b.bin": os.urandom(300_000), "c.bin": os.urandom(9 << 20)},
    )
    up, home = tmp_path / "up", tmp_path / "down"
    url = f"s3://{server.new_bucket()}/data"
    cli(up, env, "init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli(up, env, "import", "ds", str(src), "-m", "v1")
    cli(up, env, "tag", "ds@v1")
    cli(up, env, "remote", "add", "origin", url, "--endpoint-url", server.endpoint_url)
    cli(up, env, "push", "ds", "--all")
    cli(home, env, "clone", url, "ds", "--endpoint-url", server.endpoint_url)
    mp = tmp_path / "mnt"
    mp.mkdir()
    cli(home, env, "mount", "ds@v1", str(mp))
    mounts = json.loads(cli(home, env, "mounts", "--json").stdout)
    pid = next(int(m["pid"]) for m in mounts if m["mountpoint"] == str(mp))
    try:
        assert sorted(os.listdir(mp)) == ["a.bin", "b.bin", "c.bin"]  # the tree is here now
        os.killpg(server.pid, signal.SIGSTOP)

        t0 = time.monotonic()
        got = cli(home, env, "cat", "ds@v1:a.bin", check=False)
        took = time.monotonic() - t0
        assert got.returncode != 0
        # the key is a chunk pack, or a metadata pack when the chunk's locator is not cached
        assert "did not answer get of " in got.stderr and "within 3 s" in got.stderr
        assert took < DEADLINE + 10, took

        t0 = time.monotonic()
        with pytest.raises(OSError) as failed:
            (mp / "b.bin").read_bytes()
        took = time.monotonic() - t0
        assert failed.value.errno == 5  # EIO
        assert took < DEADLINE + 10, took

        reader = subprocess.Popen(["cat", str(mp / "c.bin")], stdout=subprocess.DEVNULL)
        time.sleep(0.5)  # blocked in read by now: the daemon waits on the stopped server
        assert reader.poll() is None
        t0 = time.monotonic()
        reader.send_signal(signal.SIGTERM)
        reader.wait(timeout=DEADLINE + 10)
        assert time.monotonic() - t0 < 1.0
        assert reader.returncode == -signal.SIGTERM
    finally:
        os.killpg(server.pid, signal.SIGCONT)
        kill_and_detach(pid, mp)
