"""Progress counts the unit it names and is told the totals where they are known: import and
export count files, push and prefetch chunks, fsck chunks (push counted chunks plus metadata
objects as "files", prefetch counted chunks as files); clone, fetch and pull count the
objects of history they fetch (commits and root trees: no file contents), with their bytes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from mlgitfs_cli.render import human

from mlgitfs import api
from mlgitfs.meta.remotes import RemoteRecord
from mlgitfs.repo import sync
from mlgitfs.store.commitlist import CommitLinks, build_commit_list, decode_commit_list
from mlgitfs.store.facade import Store
from mlgitfs.store.remote import RemoteTransport
from mlgitfs.store.transports import open_transport
from tests.conftest import Cli, write_tree


class Recorder:
    """A progress double: every (done, bytes) call and the totals it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.totals: tuple[int | None, int | None] | None = None

    def __call__(self, done: int, nbytes: int) -> None:
        self.calls.append((done, nbytes))

    def total(self, items: int | None, nbytes: int | None) -> None:
        self.totals = (items, nbytes)

    def wait_totals(self) -> tuple[int | None, int | None]:
        deadline = time.monotonic() + 10  # import counts in a thread of its own
        while self.totals is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.totals is not None
        return self.totals


def test_progress_units_and_totals(tmp_path: Path, home: Path) -> None:
    files = {f"d{i % 7}/f{i}.bin": os.urandom(1000 + i) for i in range(300)}
    src = write_tree(tmp_path / "src", {**files, "link": "->d0/f0.bin"})
    size = sum(len(v) for v in files.values())
    api.init(home, "ds", "dataset", "mutable")

    rec = Recorder()
    api.import_dir(home, "ds", src, "v1", progress=rec)
    assert rec.wait_totals() == (300, size)
    assert rec.calls[-1] == (300, size) and len(rec.calls) == 300
    again = Recorder()
    api.import_dir(home, "ds", src, "v1 again", progress=again)  # unchanged files count too
    assert again.wait_totals() == (300, size) and again.calls[-1] == (300, size)

    rec = Recorder()
    api.export(home, "ds", tmp_path / "out", rec)
    assert rec.totals == (300, size) and rec.calls[-1] == (300, size)

    api.remote_add(home, "origin", (tmp_path / "remote").as_uri())
    rec = Recorder()
    pushed = api.push(home, "ds", progress=rec)
    assert pushed.chunks == 300  # one chunk per small file
    assert rec.totals is not None and rec.totals[0] == 300
    assert rec.calls[-1][0] == 300  # chunks, not chunks + metadata objects

    other = tmp_path / "other"
    rec = Recorder()
    cloned = api.clone(other, (tmp_path / "remote").as_uri(), "ds", progress=rec)
    check_history_count(other, "ds", rec, cloned.fetch.objects, cloned.fetch.bytes)
    rec = Recorder()
    got = api.prefetch(other, "ds@main:d3", rec)
    assert rec.totals == (got.chunks, None) and rec.calls[-1][0] == got.chunks
    assert got.chunks == sum(1 for k in files if k.startswith("d3/"))
    api.close_store(other)

    rec = Recorder()
    report = api.fsck(home, progress=rec)
    assert report.clean and rec.totals == (report.chunks, None)
    assert rec.calls[-1] == (report.chunks, 0)


def check_history_count(
    home: Path, repo: str, rec: Recorder | None, objects: int, nbytes: int, planned: bool = True
) -> None:
    """What a clone or fetch counted is every commit of the repo's refs and each ref's root
    tree, with the bytes of those objects as stored; and, `planned` (the remote's commit
    lists named every commit), the totals it announced before downloading are exactly that."""
    from mlgitfs.meta import db
    from mlgitfs.model.ids import ObjectId

    store = api.open_store(home)
    with store.env.read() as txn:
        heads = {oid for _, oid in db.list_refs(txn, repo)}
    commits = {c.id for h in heads for c in api.log(home, f"{repo}@{h.hex()}")}
    want = {bytes.fromhex(c) for c in commits} | {
        bytes.fromhex(api.log(home, f"{repo}@{h.hex()}", limit=1)[0].tree) for h in heads
    }
    with store.env.read() as txn:
        sizes = [len(db.get_object_bytes(txn, ObjectId(o)) or b"") for o in want]
    assert objects == len(want) and nbytes == sum(sizes) > 0
    if rec is not None:
        assert rec.calls[-1] == (objects, nbytes)
        assert [c for c, _ in rec.calls] == sorted(c for c, _ in rec.calls)  # never goes back
        assert rec.totals == ((objects, nbytes) if planned else None)


def test_clone_and_fetch_count_history_objects(tmp_path: Path, home: Path) -> None:
    """Through the CLI: clone and fetch report the history objects and bytes they fetched,
    and a progress callback is told the same."""
    src = write_tree(tmp_path / "src", {"a.txt": "a"})
    api.init(home, "ds", "dataset", "mutable")
    for i in range(5):
        (src / "a.txt").write_text(f"v{i}")
        api.import_dir(home, "ds", src, f"v{i}")
    url = (tmp_path / "remote").as_uri()
    api.remote_add(home, "origin", url)
    api.push(home, "ds")
    other = tmp_path / "other"
    got = json.loads(Cli(other)("clone", url, "ds", "--json").stdout)["fetch"]
    assert got["objects"] == 6  # five commits and the head's root tree
    check_history_count(other, "ds", None, got["objects"], got["bytes"])
    text = Cli(tmp_path / "third")("clone", url, "ds").stderr
    assert f"; 6 objects ({human(got['bytes'])}) in " in text
    api.close_store(tmp_path / "third")
    text = Cli(other)("clone", url, "ds", "again").stderr  # the history is already here
    assert "; 0 objects (0 B) in " in text

    (src / "a.txt").write_text("v5")
    api.import_dir(home, "ds", src, "v5")
    api.push(home, "ds")
    rec = Recorder()
    fetched = api.fetch(other, "ds", progress=rec)
    assert fetched.objects == 2 and rec.calls[-1] == (2, fetched.bytes)  # one commit, one tree
    assert rec.totals == (2, fetched.bytes)
    api.close_store(other)


class CountingTransport:
    """A transport double: delegates, and records the key of every ranged read in order."""

    def __init__(self, inner: RemoteTransport) -> None:
        self.inner = inner
        self.reads: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def get_range(self, key: str, start: int, length: int) -> bytes:
        self.reads.append(key)
        return self.inner.get_range(key, start, length)


def history(home: Path, tmp_path: Path, commits: int, pushes: int) -> str:
    """ds with `commits` commits on main pushed in `pushes` pushes to a file:// remote."""
    src = write_tree(tmp_path / "src", {"a.txt": "a", "d/b.txt": "b"})
    api.init(home, "ds", "dataset", "mutable")
    url = (tmp_path / "remote").as_uri()
    api.remote_add(home, "origin", url)
    for i in range(commits):
        (src / ("a.txt" if i % 2 else "d/b.txt")).write_text(f"v{i}")
        api.import_dir(home, "ds", src, f"v{i}")
        if (i + 1) % (commits // pushes) == 0:
            api.push(home, "ds")
    return url


def counted_clone(tmp_path: Path, url: str, rec: Recorder) -> tuple[Store, CountingTransport]:
    made: list[CountingTransport] = []

    def factory(remote: RemoteRecord) -> RemoteTransport:
        made.append(CountingTransport(open_transport(remote.url, remote.endpoint_url)))
        return made[-1]  # type: ignore[return-value]

    store = Store.open(tmp_path / "clone", transport_factory=factory)
    sync.clone(store, url, "ds", progress=rec)
    return store, made[0]


def test_clone_knows_its_total_from_the_commit_lists(tmp_path: Path, home: Path) -> None:
    """Push writes each meta pack's commit list; a clone reads the lists with the packs'
    locators (no round of requests of its own), announces the exact totals before its first
    download and asks for the whole history in one batch: a handful of pack reads, not one
    per generation."""
    url = history(home, tmp_path, 24, 3)
    rec = Recorder()
    store, t = counted_clone(tmp_path, url, rec)
    assert len([k for k in t.reads if k.endswith(".cidx")]) == 3
    before_index = t.reads[: t.reads.index(next(k for k in t.reads if k.endswith(".loc")))]
    assert len([k for k in before_index if k.endswith(".pack")]) <= 3  # 24 generations
    # the commit-graph records' diffs: a batch per directory level (repo/diffprefetch.py),
    # not a read per tree of each of the 24 commits
    # (38 pack reads of 85 reads in all without it; 9 of 27 with it)
    assert len([k for k in t.reads if k.endswith(".pack")]) <= 12
    store.close()
    check_history_count(tmp_path / "clone", "ds", rec, *rec.calls[-1])
    api.close_store(tmp_path / "clone")


def test_clone_without_commit_lists_walks_and_stays_right(tmp_path: Path, home: Path) -> None:
    """A remote an older mlgitfs pushed has no commit lists: the clone walks commit by
    commit, with no total; a list that lies (here: every commit without parents) costs only
    the total's truth, never history (the commits fetched name their real parents)."""
    url = history(home, tmp_path, 8, 2)
    lists = sorted((tmp_path / "remote/meta").glob("*.cidx"))
    assert len(lists) == 2
    saved = {p: p.read_bytes() for p in lists}
    for p in lists:
        p.unlink()
    rec = Recorder()
    cloned = api.clone(tmp_path / "old", url, "ds", progress=rec)
    check_history_count(tmp_path / "old", "ds", rec, *rec.calls[-1], planned=False)
    assert cloned.fetch.objects == 9
    api.close_store(tmp_path / "old")
    for p, data in saved.items():
        pack = bytes.fromhex(p.name.split(".")[0])
        links = decode_commit_list(pack, data)
        lie = {oid: CommitLinks(c.tree, (), c.inputs) for oid, c in links.items()}
        p.write_bytes(build_commit_list(pack, lie.items()))
    rec = Recorder()
    cloned = api.clone(tmp_path / "lied", url, "ds", progress=rec)
    assert rec.totals is not None and rec.totals[0] == 2  # the head and its tree, it thought
    assert cloned.fetch.objects == 9 and len(api.log(tmp_path / "lied", "ds")) == 8
    assert api.fsck(tmp_path / "lied").clean
    api.close_store(tmp_path / "lied")
    phantom = b"\x01" * 32  # a parent no pack holds: the plan is dropped, the walk is right
    for p, data in saved.items():
        pack = bytes.fromhex(p.name.split(".")[0])
        links = decode_commit_list(pack, data)
        lie = {oid: CommitLinks(c.tree, (phantom,), c.inputs) for oid, c in links.items()}
        p.write_bytes(build_commit_list(pack, lie.items()))
    rec = Recorder()
    cloned = api.clone(tmp_path / "phantom", url, "ds", progress=rec)
    check_history_count(tmp_path / "phantom", "ds", rec, *rec.calls[-1], planned=False)
    api.close_store(tmp_path / "phantom")


def test_clone_of_a_large_root_commit_reads_what_its_record_can_hold(
    tmp_path: Path, home: Path
) -> None:
    """A root commit of more paths than a commit-graph record holds (bloom.MAX_KEYS) gets
    the "too many" marker: the clone's prefetch stops once its budget is spent instead of
    fetching every directory of the version (a clone of 1,000,000 files fetched all 1,000),
    and what it left is read on demand."""
    from mlgitfs.meta import db
    from mlgitfs.model.bloom import MAX_KEYS
    from mlgitfs.model.ids import ObjectId
    from mlgitfs.repo.refs import resolve_ref
    from mlgitfs.repo.trees import DirView
    from testsupport.synth import build

    made = build(home, "big", 12_000, min_dirs=120)  # 120 directories of 100 files
    assert made.dirs * made.per_dir > MAX_KEYS
    url = (tmp_path / "remote").as_uri()
    api.remote_add(home, "origin", url)
    api.push(home, "big")
    api.clone(tmp_path / "clone", url, "big")
    store = Store.open(tmp_path / "clone")
    try:
        root = store.commit(resolve_ref(store, "big", "main")[0]).tree
        dirs = [ObjectId(e.ref) for e in DirView(store, root).entries()]
        with store.env.read() as txn:
            local = sum(db.has_object(txn, d) for d in dirs)
    finally:
        store.close()
    assert len(dirs) == 120
    assert local < len(dirs) // 2 + 10  # the budget, in rounds of diffprefetch.CHUNK
    assert api.log(tmp_path / "clone", "big@main", paths=[made.sample])  # the rest on demand
    assert api.fsck(tmp_path / "clone").clean
    api.close_store(tmp_path / "clone")
