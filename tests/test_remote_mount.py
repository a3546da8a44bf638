"""Mounts that stream a version from a remote: a fresh clone, nothing cached, real FUSE reads.

Against file:// and SeaweedFS: every byte through `sha256sum` equals the source; a damaged
pack gives EIO for its file only and caches nothing; reading one file of a clone fetches
only its ranges (GETs counted by a transport double passed to the store); two readers of
one missing chunk cause one GET; a small cache budget evicts pushed chunks (fetched again on
read) and never unpushed ones. Every store a test changes ends fsck-clean.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio

from mlgitfs import api
from mlgitfs.daemon import registry
from mlgitfs.meta.remotes import RemoteRecord
from mlgitfs.model.ids import ChunkId, from_hex
from mlgitfs.repo import sync
from mlgitfs.repo.refs import resolve
from mlgitfs.repo.trees import file_chunks
from mlgitfs.store import remotedb
from mlgitfs.store.facade import Store
from mlgitfs.store.packs import CHUNKS
from mlgitfs.store.remote import RemoteTransport
from mlgitfs.store.transports import open_transport
from mlgitfs.vfs import reader
from mlgitfs.vfs.snapshot import SnapshotView
from mlgitfs.vfs.types import ROOT_INODE
from tests.conftest import Cli, write_tree
from tests.test_mount import sha_tree
from testsupport.mounts import detach, fuse_skip_reason, stop_pid
from testsupport.s3server import S3Server

MLGITFS = str(Path(sys.executable).parent / "mlgitfs")
fuse = pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason()))


@dataclass
class Remote:
    url: str
    endpoint: str | None

    def transport(self) -> RemoteTransport:
        return open_transport(self.url, self.endpoint)

    def add_args(self) -> list[str]:
        return ["--endpoint-url", self.endpoint] if self.endpoint else []


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Remote:
    if request.param == "file":
        return Remote((tmp_path / "remote").as_uri(), None)
    server: S3Server = request.getfixturevalue("s3_server")
    return Remote(f"s3://{server.new_bucket()}/team", server.endpoint_url)


Mounter = Callable[[Path, str], Path]


@pytest.fixture
def mount(tmp_path: Path) -> Iterator[Mounter]:
    """Mounts of any store with the real CLI; teardown unmounts and kills, even on failure."""
    made: list[tuple[Path, Path]] = []

    def do(home: Path, revspec: str) -> Path:
        mp = tmp_path / f"mnt{len(made)}"
        mp.mkdir()
        made.append((home, mp))
        proc = subprocess.run(
            [MLGITFS, "--home", str(home), "mount", revspec, str(mp)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return mp

    yield do
    for home, mp in made:
        for rec in registry.list_mounts(home / "mounts"):
            if rec.mountpoint == str(mp):
                stop_pid(rec.pid)
        detach(mp)
    assert not [m for m in registry.kernel_mounts() if m.mountpoint.startswith(str(tmp_path))]


def fsck_clean(home: Path) -> None:
    report = api.fsck(home)
    assert report.clean, f"fsck of {home} found damage: {report.damage}"


def dataset(root: Path, seed: int = 0, files: int = 40) -> Path:
    rnd = random.Random(seed)
    tree: dict[str, bytes | str] = {
        f"train/{i % 4}/img{i:03d}.bin": rnd.randbytes(rnd.randrange(1, 60_000))
        for i in range(files)
    }
    tree["big/weights.bin"] = rnd.randbytes(6 << 20)  # a dozen chunks: a manifest
    tree["labels.csv"] = b"".join(b"%d,%d\n" % (i, i % 7) for i in range(500))
    tree["latest"] = "->labels.csv"
    return write_tree(root, tree)


def push_v1(cli: Cli, remote: Remote, src: Path) -> None:
    cli("init", "ds", "--kind", "dataset", "--mutability", "strict")
    cli("import", "ds", str(src), "-m", "v1")
    cli("tag", "ds@v1")
    cli("remote", "add", "origin", remote.url, *remote.add_args())
    cli("push", "ds", "--all")


def cloned(tmp_path: Path, remote: Remote) -> Path:
    home2 = tmp_path / "clone"
    Cli(home2)("clone", remote.url, "ds", *remote.add_args())
    with api.open_store(home2).env.read() as txn:
        assert txn.count("chunks") == 0  # a clone fetches no file contents
    return home2


def chunks_of(home: Path, revspec: str) -> list[bytes]:
    store = api.open_store(home)
    r = resolve(store, revspec)
    assert r.entry is not None
    return [bytes(c.id) for c in file_chunks(store, r.entry)]


# --- real mounts -------------------------------------------------------------------------------


@fuse
def test_clone_mount_streams_every_byte(
    cli: Cli, remote: Remote, tmp_path: Path, mount: Mounter
) -> None:
    src = dataset(tmp_path / "src")
    push_v1(cli, remote, src)
    home2 = cloned(tmp_path, remote)
    mp = mount(home2, "ds@v1")
    assert sha_tree(mp) == sha_tree(src)
    assert os.readlink(mp / "latest") == "labels.csv"
    fsck_clean(home2)
    api.close_store(home2)


@fuse
def test_damaged_pack_is_eio_for_its_file_only(
    cli: Cli, remote: Remote, tmp_path: Path, mount: Mounter
) -> None:
    src = dataset(tmp_path / "src")
    push_v1(cli, remote, src)
    victim = chunks_of(cli.home, "ds@v1:big/weights.bin")[3]
    with api.open_store(cli.home).env.read() as txn:
        ((_, loc),) = remotedb.locate(txn, CHUNKS, victim)
    t = remote.transport()
    good = t.get(loc.key)
    at = loc.offset + loc.length // 2
    t.put(loc.key, good[:at] + bytes([good[at] ^ 0xFF]) + good[at + 1 :])
    home2 = cloned(tmp_path, remote)
    mp = mount(home2, "ds@v1")
    bad = subprocess.run(["sha256sum", str(mp / "big/weights.bin")], capture_output=True)
    assert bad.returncode != 0 and b"Input/output error" in bad.stderr
    want = sha_tree(src)
    del want["./big/weights.bin"]
    got = sha_tree_except(mp, "big")
    assert got == want  # every other file reads, from the same pack too
    assert not api.open_store(home2).chunk_is_local(ChunkId(victim))  # nothing bad cached
    t.put(loc.key, good)  # repaired: the same mount now reads it (nothing bad was kept)
    out = subprocess.run(["sha256sum", str(mp / "big/weights.bin")], capture_output=True)
    assert out.returncode == 0
    assert out.stdout.split()[0].decode() == sha_tree(src)["./big/weights.bin"]
    t.close()
    fsck_clean(home2)
    api.close_store(home2)


def sha_tree_except(root: Path, skip: str) -> dict[str, str]:
    out = subprocess.run(
        f"cd {root} && find . -path ./{skip} -prune -o -type f -print0 | sort -z"
        " | xargs -0 sha256sum",
        shell=True,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {line.split("  ", 1)[1]: line.split("  ", 1)[0] for line in out.splitlines()}


@fuse
def test_cache_budget_evicts_pushed_chunks_only(
    cli: Cli, tmp_path: Path, mount: Mounter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGITFS_CACHE_SIZE", "1M")  # this process and the mount daemons
    remote = Remote((tmp_path / "remote").as_uri(), None)
    src = dataset(tmp_path / "src")
    push_v1(cli, remote, src)  # the push unpins v1's chunks and enforces the budget
    v1 = chunks_of(cli.home, "ds@v1:big/weights.bin")
    store = api.open_store(cli.home)
    assert not any(store.chunk_is_local(ChunkId(c)) for c in v1)  # evicted: on the remote
    extra = os.urandom(3 << 20)
    write_tree(src, {"new/unpushed.bin": extra})
    cli("import", "ds", str(src), "-m", "v2, not pushed")
    unpushed = chunks_of(cli.home, "ds@main:new/unpushed.bin")
    assert store.remote.enforce_budget(force=True) == 0  # pinned: nothing may go
    mp = mount(cli.home, "ds@v1")
    assert sha_tree(mp) == sha_tree_except(src, "new")  # fetched again on demand
    mp2 = mount(cli.home, "ds@main")
    assert (mp2 / "new/unpushed.bin").read_bytes() == extra
    store.remote.enforce_budget(force=True)
    assert all(store.chunk_is_local(ChunkId(c)) for c in unpushed)
    assert store.chunks.usage() < 12 << 20  # under budget but for pinned and open segments
    fsck_clean(cli.home)


# --- what a read fetches (the view without a kernel, GETs counted) -----------------------------


class Counting:
    """A transport double: delegates, and records every read (and can slow range reads)."""

    def __init__(self, inner: RemoteTransport, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.gets: list[str] = []
        self.ranges: list[tuple[str, int, int]] = []
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def get(self, key: str) -> bytes:
        with self.lock:
            self.gets.append(key)
        return self.inner.get(key)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        with self.lock:
            self.ranges.append((key, start, length))
        time.sleep(self.delay)
        return self.inner.get_range(key, start, length)

    def reset(self) -> None:
        with self.lock:
            self.gets.clear()
            self.ranges.clear()


def counting_clone(tmp_path: Path, remote: Remote, delay: float = 0.0) -> tuple[Store, Counting]:
    made: list[Counting] = []

    def factory(rec: RemoteRecord) -> RemoteTransport:
        c = Counting(open_transport(rec.url, rec.endpoint_url), delay)
        made.append(c)
        return c  # type: ignore[return-value]

    store = Store.open(tmp_path / "clone", transport_factory=factory)
    sync.clone(store, remote.url, "ds", endpoint_url=remote.endpoint)
    (counter,) = made
    return store, counter


def view_of(store: Store, revspec: str) -> SnapshotView:
    commit = resolve(store, revspec).commit
    return SnapshotView(store, commit.tree, time_ns=commit.time_ns)


def lookup(view: SnapshotView, path: str) -> int:
    ino = ROOT_INODE
    for name in path.split("/"):
        ino = view.lookup(ino, name.encode()).ino  # type: ignore[arg-type]
    return ino


async def test_reading_one_file_fetches_only_its_ranges(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGITFS_PACK_TARGET", str(256 << 10))  # many chunk packs
    remote = Remote((tmp_path / "remote").as_uri(), None)
    src = dataset(tmp_path / "src", files=200)
    push_v1(cli, remote, src)
    chunk_packs = [k for k in remote.transport().list("packs/") if k.endswith(".pack")]
    assert len(chunk_packs) > 20
    store, counter = counting_clone(tmp_path, remote)
    try:
        assert not [k for k in counter.gets if k.startswith("packs/")]  # no chunk index read
        counter.reset()
        view = view_of(store, "ds@v1")
        ino = lookup(view, "train/2/img042.bin")
        want = (src / "train/2/img042.bin").read_bytes()
        assert await view.read(ino, 0, 1 << 20) == want  # type: ignore[arg-type]
        chunk_gets = [r for r in counter.ranges if r[0].startswith("packs/")]
        assert len(chunk_gets) == 1 and chunk_gets[0][2] == len(
            remote.transport().get_range(chunk_gets[0][0], chunk_gets[0][1], chunk_gets[0][2])
        )
        assert not [k for k in counter.gets if k.startswith("packs/")]  # still no index read
        assert len(counter.ranges) <= 4  # tree pages, their chunk locators, the chunk
    finally:
        store.close()
    fsck_clean(tmp_path / "clone")
    api.close_store(tmp_path / "clone")


async def test_two_readers_of_one_missing_chunk_cause_one_get(cli: Cli, tmp_path: Path) -> None:
    remote = Remote((tmp_path / "remote").as_uri(), None)
    src = dataset(tmp_path / "src")
    push_v1(cli, remote, src)
    store, counter = counting_clone(tmp_path, remote, delay=0.2)
    try:
        view = view_of(store, "ds@v1")
        ino = lookup(view, "train/1/img001.bin")
        counter.reset()
        results: list[bytes] = []

        async def reader() -> None:
            results.append(await view.read(ino, 0, 1 << 20))  # type: ignore[arg-type]

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            nursery.start_soon(reader)
        want = (src / "train/1/img001.bin").read_bytes()
        assert results == [want, want]
        assert len([r for r in counter.ranges if r[0].startswith("packs/")]) == 1
    finally:
        store.close()
    fsck_clean(tmp_path / "clone")
    api.close_store(tmp_path / "clone")


async def test_sequential_reader_drops_fetched_chunks_behind_it(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "DROP_BEHIND", 1 << 20)
    remote = Remote((tmp_path / "remote").as_uri(), None)
    src = dataset(tmp_path / "src")
    push_v1(cli, remote, src)
    store, _ = counting_clone(tmp_path, remote)
    try:
        view = view_of(store, "ds@v1")
        ino = lookup(view, "big/weights.bin")
        want = (src / "big/weights.bin").read_bytes()
        got = b"".join(
            [await view.read(ino, at, 128 << 10) for at in range(0, len(want), 128 << 10)]  # type: ignore[arg-type]
        )
        assert got == want
        refs = file_chunks(store, view._node(ino).entry)  # type: ignore[arg-type]
        ends = [sum(r.length for r in refs[: i + 1]) for i in range(len(refs))]
        behind = [r.id for r, end in zip(refs, ends, strict=True) if end <= len(want) - (2 << 20)]
        assert behind and all(view._chunks.get(cid) is None for cid in behind)
        assert view._chunks.get(refs[-1].id) is not None  # what is near the reader stays
        # a reader going back still gets the right bytes
        assert await view.read(ino, 0, 1 << 20) == want[: 1 << 20]  # type: ignore[arg-type]
    finally:
        store.close()
    fsck_clean(tmp_path / "clone")
    api.close_store(tmp_path / "clone")


def test_old_remote_without_locators_still_reads(cli: Cli, tmp_path: Path) -> None:
    remote = Remote((tmp_path / "remote").as_uri(), None)
    src = dataset(tmp_path / "src")
    push_v1(cli, remote, src)
    t = remote.transport()
    for key in list(t.list("meta/")):
        if key.endswith((".loc", ".lidx")):
            t.delete(key)  # as pushed by a version before chunk locators
    home2 = cloned(tmp_path, remote)
    got = b"".join(api.cat(home2, "ds@v1:big/weights.bin"))
    assert got == (src / "big/weights.bin").read_bytes()
    store2 = api.open_store(home2)
    cid = from_hex(chunks_of(home2, "ds@v1:big/weights.bin")[0].hex())
    assert store2.chunk_is_local(ChunkId(cid))
    fsck_clean(home2)
    api.close_store(home2)
