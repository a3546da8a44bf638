"""Contract tests of RemoteTransport, run against file:// and S3 (SeaweedFS), plus S3 errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mlgitfs.errors import (
    InvalidName,
    PreconditionFailed,
    RemoteDenied,
    RemoteError,
    RemoteKeyMissing,
    RemoteNotFound,
    RemoteUnreachable,
    UsageError,
)
from mlgitfs.store.filestore import FileTransport
from mlgitfs.store.remote import (
    RemoteTransport,
    TransportOptions,
    parse_remote_url,
    run_probe,
)
from mlgitfs.store.transports import open_transport
from testsupport.s3server import SECRET_KEY, S3Server

MANY = 1100  # more than one S3 listing page (1000)


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def transport(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RemoteTransport]:
    if request.param == "file":
        t = open_transport((tmp_path / "remote").as_uri())
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        url = f"s3://{server.new_bucket()}/some/prefix"
        t = open_transport(url, endpoint_url=server.endpoint_url)
    yield t
    t.close()


class TestRemoteTransportContract:
    def test_round_trip(self, transport: RemoteTransport) -> None:
        data = os.urandom(1 << 20)
        transport.put("packs/ab/one", data)
        assert transport.get("packs/ab/one") == data
        info = transport.head("packs/ab/one")
        assert info is not None and info.size == len(data)
        got = transport.get_with_etag("packs/ab/one")
        assert got == (data, info.etag)

        transport.put("packs/ab/one", b"other")  # unconditional overwrite
        info2 = transport.head("packs/ab/one")
        assert info2 is not None and info2.size == 5 and info2.etag != info.etag
        transport.put("empty", b"")
        assert transport.get("empty") == b""
        assert transport.head("empty") == transport.head("empty")

    def test_get_range(self, transport: RemoteTransport) -> None:
        data = bytes(range(256)) * 40
        transport.put("r", data)
        assert transport.get_range("r", 0, 10) == data[:10]
        assert transport.get_range("r", 1000, 4096) == data[1000:5096]
        assert transport.get_range("r", len(data) - 3, 10) == data[-3:]  # short at the end
        assert transport.get_range("r", len(data), 10) == b""
        assert transport.get_range("r", len(data) + 100, 10) == b""
        assert transport.get_range("r", 5, 0) == b""
        transport.put("e", b"")
        assert transport.get_range("e", 0, 10) == b""
        with pytest.raises(ValueError):
            transport.get_range("r", -1, 10)
        with pytest.raises(RemoteKeyMissing):
            transport.get_range("missing", 0, 10)
        with pytest.raises(RemoteKeyMissing):
            transport.get_range("missing", 0, 0)

    def test_missing_keys(self, transport: RemoteTransport) -> None:
        with pytest.raises(RemoteKeyMissing) as info:
            transport.get("refs/r/heads/none")
        assert info.value.key == "refs/r/heads/none"
        assert transport.head("refs/r/heads/none") is None
        assert transport.get_with_etag("refs/r/heads/none") is None
        transport.delete("refs/r/heads/none")  # deleting nothing is fine

    def test_delete(self, transport: RemoteTransport) -> None:
        transport.put("a/b", b"x")
        transport.delete("a/b")
        assert transport.head("a/b") is None
        assert list(transport.list()) == []

    def test_list_paginates(self, transport: RemoteTransport) -> None:
        many = [f"many/{i:05d}" for i in range(MANY)]
        odd = ["ord/a-b", "ord/a/b", "ord/a0", "ord/A"]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda k: transport.put(k, k.encode()), many + odd))
        # order is not part of the contract (SeaweedFS lists directory by directory), but no
        # key may be missing or repeated
        assert list(transport.list("many/")) == many
        assert list(transport.list("many/001")) == many[100:200]
        assert sorted(transport.list("ord/")) == sorted(odd)
        assert sorted(transport.list("ord/a")) == ["ord/a-b", "ord/a/b", "ord/a0"]
        assert list(transport.list("ord/a0/")) == []  # "ord/a0" is an object, not a folder
        everything = list(transport.list())
        assert len(everything) == len(set(everything)) and set(everything) == set(many + odd)
        assert list(transport.list("nothing/")) == []

    def test_put_if_absent(self, transport: RemoteTransport) -> None:
        etag = transport.put_if_absent("refs/r/heads/main", b"c1")
        assert transport.get_with_etag("refs/r/heads/main") == (b"c1", etag)
        with pytest.raises(PreconditionFailed):
            transport.put_if_absent("refs/r/heads/main", b"c2")
        assert transport.get("refs/r/heads/main") == b"c1"

    def test_put_if_match(self, transport: RemoteTransport) -> None:
        e1 = transport.put_if_absent("refs/r/heads/main", b"c1")
        e2 = transport.put_if_match("refs/r/heads/main", b"c2", e1)
        assert transport.get_with_etag("refs/r/heads/main") == (b"c2", e2)
        with pytest.raises(PreconditionFailed):
            transport.put_if_match("refs/r/heads/main", b"c3", e1)  # stale
        assert transport.get("refs/r/heads/main") == b"c2"
        with pytest.raises(PreconditionFailed):
            transport.put_if_match("refs/r/heads/other", b"c3", e2)  # missing: never creates
        assert transport.head("refs/r/heads/other") is None

    def test_probe(self, transport: RemoteTransport) -> None:
        assert transport.probe_conditional_writes() is True
        assert list(transport.list()) == []  # the scratch key is gone

    def test_concurrent_put_if_match(self, transport: RemoteTransport) -> None:
        key, threads, rounds = "refs/r/heads/main", 8, 3

        def attempt(barrier: threading.Barrier, data: bytes, etag: str) -> str | None:
            barrier.wait()  # all threads send their PUT at once
            try:
                return transport.put_if_match(key, data, etag)
            except PreconditionFailed:
                return None

        etag = transport.put_if_absent(key, b"start")
        with ThreadPoolExecutor(threads) as pool:
            for r in range(rounds):
                barrier = threading.Barrier(threads)
                datas = [f"round {r} thread {i}".encode() for i in range(threads)]
                futures = [pool.submit(attempt, barrier, d, etag) for d in datas]
                results = [f.result() for f in futures]
                won = [(d, e) for d, e in zip(datas, results, strict=True) if e is not None]
                assert len(won) == 1, (r, results)
                assert transport.get_with_etag(key) == won[0]
                etag = won[0][1]

    @pytest.mark.parametrize(
        "key",
        [
            "",
            "/abs",
            "a/../b",
            "..",
            "a/./b",
            "a//b",
            "a/",
            "nul\x00",
            ".hidden",
            "a/.tmp/x",
            "b\\s",
        ],
    )
    def test_bad_keys(self, transport: RemoteTransport, key: str) -> None:
        with pytest.raises(InvalidName):
            transport.get(key)
        with pytest.raises(InvalidName):
            transport.get_range(key, 0, 1)
        with pytest.raises(InvalidName):
            transport.head(key)
        with pytest.raises(InvalidName):
            transport.put(key, b"x")
        with pytest.raises(InvalidName):
            transport.put_if_absent(key, b"x")
        with pytest.raises(InvalidName):
            transport.put_if_match(key, b"x", "etag")
        with pytest.raises(InvalidName):
            transport.delete(key)

    @pytest.mark.parametrize("prefix", ["/a", "../", "a/../", ".x", "a//"])
    def test_bad_list_prefix(self, transport: RemoteTransport, prefix: str) -> None:
        with pytest.raises(InvalidName):
            transport.list(prefix)

    def test_describe(self, transport: RemoteTransport) -> None:
        text = transport.describe()
        assert text.startswith(("s3://", "file://")) and SECRET_KEY not in text


class _IgnoresPreconditions(FileTransport):
    """A remote that accepts conditional writes without checking them."""

    def put_if_absent(self, key: str, data: bytes) -> str:
        self.put(key, data)
        return "etag"

    def put_if_match(self, key: str, data: bytes, etag: str) -> str:
        self.put(key, data)
        return "etag"


def test_probe_detects_ignored_preconditions(tmp_path: Path) -> None:
    assert run_probe(_IgnoresPreconditions(tmp_path)) is False
    assert list(FileTransport(tmp_path).list()) == []


_CAS_WORKER = """
import sys
from pathlib import Path
from mlgitfs.errors import PreconditionFailed
from mlgitfs.store.filestore import FileTransport
t = FileTransport(Path(sys.argv[1]))
done = 0
while done < int(sys.argv[2]):
    data, etag = t.get_with_etag("counter")
    try:
        t.put_if_match("counter", str(int(data) + 1).encode(), etag)
        done += 1
    except PreconditionFailed:
        pass
"""


def test_file_conditional_writes_across_processes(tmp_path: Path) -> None:
    """Read-increment-CAS from several processes loses no increment."""
    t = FileTransport(tmp_path)
    t.put_if_absent("counter", b"0")
    procs, each = 4, 50
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    workers = [
        subprocess.Popen([sys.executable, "-c", _CAS_WORKER, str(tmp_path), str(each)], env=env)
        for _ in range(procs)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0] * procs
    assert t.get("counter") == str(procs * each).encode()


def test_file_missing_root_is_empty(tmp_path: Path) -> None:
    t = open_transport((tmp_path / "not" / "yet").as_uri())
    assert t.head("k") is None and list(t.list()) == []
    t.put("k", b"v")
    assert t.get("k") == b"v"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/x",
        "s3://",
        "s3://UPPER/x",
        "s3://ab/x",
        "s3://bucket/a/../b",
        "file://relative/dir",
        "file:///tmp/x?y=1",
        "/just/a/path",
    ],
)
def test_open_transport_refuses(url: str) -> None:
    with pytest.raises(UsageError):
        open_transport(url)


def test_url_with_credentials_refused_without_echo() -> None:
    with pytest.raises(UsageError) as info:
        parse_remote_url("s3://AKIA:hunter2@bucket/p")
    assert "hunter2" not in str(info.value)


def test_parse_remote_url() -> None:
    u = parse_remote_url("s3://my-bucket/a/b/")
    assert (u.scheme, u.bucket, u.prefix) == ("s3", "my-bucket", "a/b/")
    assert parse_remote_url("s3://my-bucket").prefix == ""
    assert parse_remote_url("file:///srv/remote%20x").path == Path("/srv/remote x")


def test_remote_error_exit_codes_distinct() -> None:
    codes = [c.exit_code for c in (RemoteError, RemoteNotFound, RemoteDenied, RemoteUnreachable)]
    assert len(set(codes + [RemoteKeyMissing.exit_code])) == 5


FAST = TransportOptions(connect_timeout=1.0, read_timeout=2.0, max_attempts=1)


@pytest.mark.s3
class TestS3Errors:
    def test_missing_bucket(self, s3_server: S3Server) -> None:
        name = s3_server.bucket_name()
        t = open_transport(f"s3://{name}/p", endpoint_url=s3_server.endpoint_url, options=FAST)
        for call in (
            lambda: t.get("k"),
            lambda: t.head("k"),
            lambda: t.get_with_etag("k"),
            lambda: t.put("k", b"x"),
            lambda: t.put_if_absent("k", b"x"),
            lambda: t.put_if_match("k", b"x", '"e"'),
            lambda: list(t.list()),
        ):
            with pytest.raises(RemoteNotFound, match=f"bucket {name} does not exist"):
                call()
        t.close()

    def test_unreachable_endpoint(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]  # closed again below: nothing listens there
        t = open_transport("s3://bucket/p", endpoint_url=f"http://127.0.0.1:{port}", options=FAST)
        started = time.monotonic()
        with pytest.raises(RemoteUnreachable, match=f"127.0.0.1:{port}"):
            t.get("k")
        with pytest.raises(RemoteUnreachable):
            t.put_if_absent("k", b"x")
        assert time.monotonic() - started < 5
        t.close()

    def test_wrong_secret_denied(
        self, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        bucket = s3_server.new_bucket()
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        t = open_transport(f"s3://{bucket}", endpoint_url=s3_server.endpoint_url, options=FAST)
        for call in (lambda: t.get("k"), lambda: t.head("k"), lambda: t.put("k", b"x")):
            with pytest.raises(RemoteDenied) as info:
                call()
            assert "not-the-secret" not in str(info.value)
            assert SECRET_KEY not in str(info.value)
        t.close()

    def test_no_credentials_denied(
        self, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        t = open_transport("s3://bucket/p", endpoint_url=s3_server.endpoint_url, options=FAST)
        with pytest.raises(RemoteDenied, match="no usable AWS credentials"):
            t.get("k")
        t.close()

    def test_describe_names_endpoint(self, s3_server: S3Server) -> None:
        t = open_transport("s3://bucket/p/q", endpoint_url=s3_server.endpoint_url)
        assert t.describe() == f"s3://bucket/p/q/ at {s3_server.endpoint_url}"
        t.close()
