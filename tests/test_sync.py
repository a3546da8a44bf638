"""Remotes end to end, against file:// and SeaweedFS: push, clone, fetch, pull, prefetch, races.

Corruption, hostile remotes and kill -9 cases are in tests/test_sync_faults.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.errors import MissingObject, NotFastForward
from mlgitfs.meta import chunkquotes, db
from mlgitfs.meta import remotes as remote_records
from mlgitfs.meta.remotes import RemoteRecord
from mlgitfs.model.ids import ChunkId, ObjectId, from_hex
from mlgitfs.repo.history import walk_commits
from mlgitfs.repo.refs import resolve
from mlgitfs.repo.trees import file_chunks
from mlgitfs.store.remote import RemoteTransport
from mlgitfs.store.transports import open_transport
from tests.conftest import Cli, write_tree
from testsupport.s3server import S3Server

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Remote:
    url: str
    endpoint: str | None
    env: dict[str, str]

    def transport(self) -> RemoteTransport:
        return open_transport(self.url, self.endpoint)

    def add_args(self) -> list[str]:
        return ["--endpoint-url", self.endpoint] if self.endpoint else []

    def remote_keys(self) -> set[str]:
        t = self.transport()
        try:
            return {k for k in t.list() if not k.startswith("tmp/")}
        finally:
            t.close()


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Remote]:
    if request.param == "file":
        yield Remote((tmp_path / "remote").as_uri(), None, {})
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        yield Remote(f"s3://{server.new_bucket()}/team/data", server.endpoint_url, server.env)


def fsck_clean(home: Path) -> None:
    report = api.fsck(home)
    assert report.clean, f"fsck of {home} found damage: {report.damage}"


def sample_tree(root: Path, seed: int = 0) -> Path:
    rnd = __import__("random").Random(seed)
    files: dict[str, bytes | str] = {
        f"train/img{i:03d}.bin": rnd.randbytes(rnd.randrange(1, 40_000)) for i in range(60)
    }
    files["big/weights.bin"] = rnd.randbytes(3_000_000)  # several chunks: a manifest
    files["labels.csv"] = b"id,label\n" + b"".join(b"%d,%d\n" % (i, i % 7) for i in range(500))
    files["latest"] = "->big/weights.bin"
    files["empty/"] = b""
    return write_tree(root, files)


def same_tree(a: Path, b: Path) -> None:
    def listing(root: Path) -> dict[str, bytes | str | None]:
        out: dict[str, bytes | str | None] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            for n in dirnames + filenames:
                p = Path(dirpath, n)
                rel = str(p.relative_to(root))
                if p.is_symlink():
                    out[rel] = "->" + os.readlink(p)
                elif p.is_dir():
                    out[rel] = None
                else:
                    out[rel] = p.read_bytes()
        return out

    assert listing(a) == listing(b)


def setup_pushed(cli: Cli, remote: Remote, src: Path) -> None:
    cli("init", "ds", "--kind", "dataset", "--mutability", "flexible", "--category", "vision")
    cli("import", "ds", str(src), "-m", "v1")
    cli("remote", "add", "origin", remote.url, *remote.add_args())
    cli("push", "ds")


def test_push_clone_read_every_byte(cli: Cli, remote: Remote, tmp_path: Path) -> None:
    src = sample_tree(tmp_path / "src")
    setup_pushed(cli, remote, src)
    keys = remote.remote_keys()
    assert "mlgitfs.toml" in keys and "repos/ds" in keys and "refs/ds/heads/main" in keys
    assert any(k.startswith("packs/") and k.endswith(".idx") for k in keys)
    assert len(keys) < 20  # 62 files: a handful of packs, not one object per file

    home2 = tmp_path / "store2"
    cli2 = Cli(home2)
    cli2("clone", remote.url, "ds", "copy", *remote.add_args())
    repos = json.loads(cli2("repos", "--json").stdout)
    assert [(r["name"], r["kind"], r["mutability"], r["categories"]) for r in repos] == [
        ("copy", "dataset", "flexible", ["vision"])
    ]
    store2 = api.open_store(home2)
    with store2.env.read() as txn:
        assert txn.count("chunks") == 0  # a clone fetches history, not contents
    cli2("export", "copy@main", str(tmp_path / "out"))
    same_tree(src, tmp_path / "out")
    assert b"".join(api.cat(home2, "copy:labels.csv")) == (src / "labels.csv").read_bytes()
    # the local name maps to the remote's: a push from the clone goes to refs/ds
    (src / "new.txt").write_bytes(b"from the clone")
    cli2("import", "copy", str(src), "-m", "v2")
    cli2("push", "copy")
    cli("pull", "ds")
    assert b"".join(api.cat(cli.home, "ds:new.txt")) == b"from the clone"
    fsck_clean(home2)


def test_second_push_uploads_only_new_packs(cli: Cli, remote: Remote, tmp_path: Path) -> None:
    src = sample_tree(tmp_path / "src")
    setup_pushed(cli, remote, src)
    before = remote.remote_keys()
    again = json.loads(cli("push", "ds", "--json").stdout)
    assert again["chunks"] == 0 and again["objects"] == 0
    assert remote.remote_keys() == before
    (src / "train" / "img000.bin").write_bytes(b"changed")
    write_tree(src, {"train/extra.bin": b"x" * 5000})
    r = json.loads(cli("push", "ds", "--json").stdout)
    assert r["chunks"] == 0  # nothing new was committed yet
    cli("import", "ds", str(src), "-m", "v2", "--unlock", "train/img000.bin")  # flexible
    r = json.loads(cli("push", "ds", "--json").stdout)
    assert r["chunks"] == 2  # the two changed files, not the 60 others
    assert r["objects"] == 3  # the commit, the root tree and train/
    after = remote.remote_keys()
    # one chunk pack and one meta pack, each with its index; the meta pack's chunk locator
    # (.loc, .lidx) and commit list (.cidx)
    assert len(after - before) == 7


def test_prefetch_then_reads_need_no_remote(cli: Cli, remote: Remote, tmp_path: Path) -> None:
    src = sample_tree(tmp_path / "src")
    setup_pushed(cli, remote, src)
    home2 = tmp_path / "store2"
    Cli(home2)("clone", remote.url, "ds", *remote.add_args())
    r = json.loads(Cli(home2)("prefetch", "ds:train", "--json").stdout)
    assert r["chunks"] == 60 and r["requests"] <= 4  # neighbouring chunks coalesced
    r = json.loads(Cli(home2)("prefetch", "ds", "--json").stdout)
    assert r["chunks"] > 2
    assert json.loads(Cli(home2)("prefetch", "ds", "--json").stdout)["chunks"] == 0
    # a CSV's chunks came with their quote parities recorded (row blame reads none), and
    # no other file's
    store2 = api.open_store(home2)
    labels = resolve(store2, "ds:labels.csv").entry
    assert labels is not None
    with store2.env.read() as txn:
        kept = chunkquotes.recorded(txn)
    ids = [bytes(c.id) for c in file_chunks(store2, labels)]
    assert kept == {c: chunkquotes.odd(store2.read_chunk(ChunkId(c))) for c in ids}
    api.remote_remove(home2, "origin")
    Cli(home2)("export", "ds", str(tmp_path / "out"))
    same_tree(src, tmp_path / "out")
    fsck_clean(home2)


def test_not_fast_forward_and_diverged_pull(cli: Cli, remote: Remote, tmp_path: Path) -> None:
    src = sample_tree(tmp_path / "src")
    setup_pushed(cli, remote, src)
    home2 = tmp_path / "store2"
    cli2 = Cli(home2)
    cli2("clone", remote.url, "ds", *remote.add_args())
    write_tree(src, {"a.txt": b"A"})
    cli("import", "ds", str(src), "-m", "from one")
    cli("push", "ds")
    write_tree(src, {"a.txt": b"B"})
    cli2("import", "ds", str(src), "-m", "from two")
    head = api.show(cli.home, "ds").id
    res = cli2("push", "ds", code=12)
    assert "pull first" in res.stderr and head[:12] in res.stderr
    res = cli2("pull", "ds", "--ff-only", code=12)
    assert "diverged" in res.stderr
    # without --ff-only the pull merges: a.txt added both ways is a conflict, nothing moves
    mine = api.show(home2, "ds").id
    res = cli2("pull", "ds", code=23)
    assert "C  a.txt  (add/add)" in res.stdout and api.show(home2, "ds").id == mine
    # origin/main (as log prints it) is a revspec: the same merge, theirs winning
    cli2("merge", "ds@origin/main", "--dry-run", "--strategy", "theirs")
    r = json.loads(cli2("pull", "ds", "--strategy", "theirs", "--json").stdout)
    assert r["updates"][0]["status"] == "merged"
    assert api.show(home2, "ds").parents == (mine, head)
    assert cli2("cat", "ds:a.txt").stdout == "A"
    # the remote kept the winner, and the loser's fetch sees it
    cli2("fetch", "ds")
    store2 = api.open_store(home2)
    with store2.env.read() as txn:
        assert db.get_ref(txn, "ds", "remotes/origin/heads/main") == from_hex(head)
    # tags never move on the remote
    cli("tag", "ds@v1")
    cli("push", "ds", "--all")
    cli2("tag", "ds@v1")
    res = cli2("push", "ds", "--all", code=12)
    assert "tags never move" in res.stderr
    fsck_clean(home2)


def test_remote_commands(cli: Cli, remote: Remote, tmp_path: Path) -> None:
    cli("remote", "add", "origin", remote.url, *remote.add_args(), code=24)  # no store yet
    cli("init", "ds", "--kind", "dataset", "--mutability", "strict")
    cli("remote", "add", "origin", remote.url, *remote.add_args())
    cli("remote", "add", "origin", remote.url, *remote.add_args(), code=8)
    listed = json.loads(cli("remote", "list", "--json").stdout)
    assert listed == [
        {
            "name": "origin",
            "url": remote.url,
            "endpoint_url": remote.endpoint,
            "conditional_writes": True,
        }
    ]
    cli("remote", "remove", "origin")
    assert json.loads(cli("remote", "list", "--json").stdout) == []
    cli("remote", "remove", "origin", code=3)
    cli("remote", "add", "bad name", remote.url, code=6)
    cli("remote", "add", "x", "http://example.invalid/x", code=2)


def test_remote_ignoring_preconditions_is_refused_for_push(cli: Cli, tmp_path: Path) -> None:
    cli("init", "ds", "--kind", "dataset", "--mutability", "strict")
    cli("import", "ds", str(sample_tree(tmp_path / "src")), "-m", "v1")
    store = api.open_store(cli.home)
    with store.env.write() as txn:
        remote_records.add_remote(txn, RemoteRecord("lax", (tmp_path / "r").as_uri(), None, False))
    res = cli("push", "ds", code=13)
    assert "does not enforce conditional writes" in res.stderr
    assert not (tmp_path / "r").exists()


def test_chunker_mismatch_refused(cli: Cli, tmp_path: Path) -> None:
    t = open_transport((tmp_path / "r").as_uri())
    t.put("mlgitfs.toml", b"format = 1\nchunker = [1, 2, 3, 1]\n")
    cli("init", "ds", "--kind", "dataset", "--mutability", "strict")
    res = cli("remote", "add", "origin", (tmp_path / "r").as_uri(), code=13)
    assert "chunker" in res.stderr


def test_unknown_chunk_is_missing_without_remote(cli: Cli, tmp_path: Path) -> None:
    cli("init", "ds", "--kind", "dataset", "--mutability", "strict")
    store = api.open_store(cli.home)
    with pytest.raises(MissingObject):
        store.read_chunk(ChunkId(b"\1" * 32))
    with pytest.raises(MissingObject):
        store.get_object(ObjectId(b"\1" * 32))


# --- concurrent pushers -----------------------------------------------------------------------

WORKERS = 8


@pytest.fixture(
    params=[
        pytest.param(("file", 20), id="file-20"),
        pytest.param(("s3", 5), id="s3-5", marks=pytest.mark.s3),
        pytest.param(("s3", 20), id="s3-20", marks=[pytest.mark.s3, pytest.mark.slow]),
    ]
)
def race(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Remote, int]]:
    """The remote and rounds of the race: on this 2-core CI machine, 8x20 rounds take ~30 s on
    file:// but ~100 s on SeaweedFS (160 serialized wins), so S3's full size is `slow`."""
    kind, rounds = request.param
    if kind == "file":
        yield Remote((tmp_path / "remote").as_uri(), None, {}), rounds
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        yield Remote(f"s3://{server.new_bucket()}/race", server.endpoint_url, server.env), rounds


def test_concurrent_pushers_lose_no_commit(race: tuple[Remote, int], tmp_path: Path) -> None:
    """8 processes push to one branch at once, 20 rounds each; each round commits on top of
    the fetched head and pushes, and on NotFastForward fetches and retries."""
    remote, ROUNDS = race
    base = tmp_path / "base"
    api.init(base, "ds", "dataset", "mutable")
    api.import_dir(base, "ds", write_tree(tmp_path / "src0", {"seed": b"0"}), "seed")
    api.remote_add(base, "origin", remote.url, remote.endpoint)
    api.push(base, "ds")
    homes = [tmp_path / f"w{i}" for i in range(WORKERS)]
    for h in homes:
        api.clone(h, remote.url, "ds", endpoint_url=remote.endpoint)
    env = {**os.environ, **remote.env, "PYTHONPATH": str(REPO_ROOT)}
    t0 = time.monotonic()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.syncworker", str(h), "ds", str(i), str(ROUNDS),
             str(tmp_path), str(tmp_path / f"out{i}.json")],
            cwd=REPO_ROOT, env=env, stderr=subprocess.PIPE,
        )
        for i, h in enumerate(homes)
    ]  # fmt: skip
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()[-3000:]
    elapsed = time.monotonic() - t0
    results = [json.loads((tmp_path / f"out{i}.json").read_text()) for i in range(WORKERS)]
    wins = [w for r in results for w in r["wins"]]
    assert len(wins) == WORKERS * ROUNDS and len(set(wins)) == len(wins)
    assert sum(r["losses"] for r in results) > 0  # they did race
    api.fetch(base, "ds")
    store = api.open_store(base)
    with store.env.read() as txn:
        head = db.get_ref(txn, "ds", "remotes/origin/heads/main")
    assert head is not None
    history = {bytes(oid) for oid, _ in walk_commits(store, [head])}
    assert {from_hex(w) for w in wins} <= history
    assert len(history) == WORKERS * ROUNDS + 1  # every win once, no lost and no extra commit
    print(f"{WORKERS}x{ROUNDS} pushes in {elapsed:.1f}s", file=sys.stderr)
    api.pull(base, "ds")
    fsck_clean(base)
    for h in homes[:2]:
        fsck_clean(h)


def test_push_refuses_when_behind_without_upload(cli: Cli, remote: Remote, tmp_path: Path) -> None:
    src = sample_tree(tmp_path / "src")
    setup_pushed(cli, remote, src)
    home2 = tmp_path / "store2"
    api.clone(home2, remote.url, "ds", endpoint_url=remote.endpoint)
    cli("import", "ds", str(write_tree(src, {"n": b"1"})), "-m", "v2")
    cli("push", "ds")
    api.import_dir(home2, "ds", write_tree(tmp_path / "other", {"z": os.urandom(9000)}), "v2b")
    before = remote.remote_keys()
    with pytest.raises(NotFastForward, match="pull first"):
        api.push(home2, "ds")
    assert remote.remote_keys() == before  # refused before uploading anything
    fsck_clean(home2)
