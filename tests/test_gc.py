"""Local gc (repo/gc.py): what it frees, what it keeps, what --dry-run leaves untouched."""

from __future__ import annotations

import contextlib
import os
import random
import shutil
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.errors import ConflictError, MissingObject
from mlgitfs.meta import chunks, commitgraph, db, gcstate
from mlgitfs.model.ids import ObjectId
from tests.conftest import Cli
from tests.gchelpers import forget_reflog, random_files, segment_bytes, store_files


def _two_branches(home: Path, tmp: Path) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """main holds `keep`; side holds main plus `extra` (its own chunks)."""
    api.init(home, "ds", "dataset", "mutable")
    keep = random_files(tmp / "main", 30, 300_000, 1)
    api.import_dir(home, "ds@main", tmp / "main", "main")
    api.branch_create(home, "ds@side")
    shutil.copytree(tmp / "main", tmp / "side")
    extra = random_files(tmp / "side", 20, 600_000, 2)
    api.import_dir(home, "ds@side", tmp / "side", "side")
    return keep, extra


def _read_back(home: Path, tmp: Path, rev: str, files: dict[str, bytes]) -> None:
    dest = tmp / ("export-" + rev.replace("@", "-"))
    api.export(home, rev, dest)
    for rel, data in files.items():
        assert (dest / rel).read_bytes() == data, rel
    shutil.rmtree(dest)


def test_deleted_branch_frees_disk(home: Path, tmp_path: Path) -> None:
    keep, extra = _two_branches(home, tmp_path)
    api.branch_delete(home, "ds@side", force=True)
    store = api.open_store(home)
    kept_by_reflog = api.gc(home)
    assert kept_by_reflog.objects == 0 and kept_by_reflog.chunks == 0  # the reflog holds it
    forget_reflog(store)
    before = segment_bytes(home)
    r = api.gc(home)
    after = segment_bytes(home)
    extra_bytes = sum(len(d) for d in extra.values())
    assert r.chunks >= len(extra) and r.objects > 0
    # random data is stored raw: the disk gives back about the side branch's bytes
    assert before - after >= 0.9 * extra_bytes, (before, after, extra_bytes)
    assert r.segment_bytes_freed == r.bytes_before - r.bytes_after
    _read_back(home, tmp_path, "ds@main", keep)
    again = api.gc(home)
    assert (again.objects, again.chunks, again.segment_bytes_freed) == (0, 0, 0)


def test_swept_commits_lose_their_commit_graph_records(home: Path, tmp_path: Path) -> None:
    """The commit-graph index (records, exact changed paths) and the generation numbers of
    the commits gc sweeps go in its sweep; the kept commits' stay, and fsck is clean."""
    api.init(home, "ds", "dataset", "mutable")
    random_files(tmp_path / "src", 3, 2_000, 1)
    api.import_dir(home, "ds@main", tmp_path / "src", "main")
    api.branch_create(home, "ds@side")
    for seed in (2, 3):
        random_files(tmp_path / "src", 2, 2_000, seed)
        api.import_dir(home, "ds@side", tmp_path / "src", f"side {seed}")
    store = api.open_store(home)
    with store.env.read() as txn:
        heads = dict(db.list_refs(txn, "ds"))
        top = bytes(heads["heads/side"])
        first = bytes(store.commit(ObjectId(top)).parents[0])
        kept = bytes(heads["heads/main"])
        side = [top, first]
        for c in [*side, kept]:
            assert commitgraph.get_record(txn, c) is not None
        assert all(commitgraph.get_changed(txn, c) for c in side)  # the test means something
    api.branch_delete(home, "ds@side", force=True)
    forget_reflog(store)
    r = api.gc(home)
    assert r.objects > 0
    store = api.open_store(home)
    with store.env.read() as txn:
        for c in side:
            assert not db.has_object(txn, c)
            assert commitgraph.get_record(txn, c) is None
            assert commitgraph.get_changed(txn, c) is None
            assert db.get_generation(txn, ObjectId(c)) is None
        assert {bytes(c) for c, _ in commitgraph.records(txn)} == {kept}
    report = api.fsck(home)
    api.close_store(home)
    assert report.clean, report.damage


def test_dry_run_changes_nothing_and_predicts(home: Path, tmp_path: Path, cli: Cli) -> None:
    _two_branches(home, tmp_path)
    api.branch_delete(home, "ds@side", force=True)
    forget_reflog(api.open_store(home))
    api.close_store(home)
    files = store_files(home)
    out = cli("gc", "--dry-run")
    assert "to free" in out.stdout
    dry = api.gc(home, dry_run=True)
    api.close_store(home)
    assert store_files(home) == files  # byte for byte, and no file added
    real = api.gc(home)
    assert (real.objects, real.object_bytes) == (dry.objects, dry.object_bytes)
    assert (real.chunks, real.chunk_bytes) == (dry.chunks, dry.chunk_bytes)
    assert real.segment_bytes_freed == dry.segment_bytes_freed
    assert (real.segments_deleted, real.segments_rewritten) == (
        dry.segments_deleted,
        dry.segments_rewritten,
    )


def test_sparse_segment_is_rewritten(home: Path, tmp_path: Path) -> None:
    """One import holds both branches' chunks in one segment: gc rewrites it smaller, and
    readers keep reading through the moved locations."""
    api.init(home, "ds", "dataset", "mutable")
    random_files(tmp_path / "all", 20, 200_000, 3)
    api.import_dir(home, "ds@side", tmp_path / "all", "both")
    keep_dir = tmp_path / "keep"
    shutil.copytree(tmp_path / "all", keep_dir)
    for p in sorted(keep_dir.rglob("*.bin"))[:15]:
        p.unlink()
    keep = {str(p.relative_to(keep_dir)): p.read_bytes() for p in keep_dir.rglob("*.bin")}
    api.import_dir(home, "ds@main", keep_dir, "a quarter")  # all its chunks known already
    store = api.open_store(home)
    with store.env.read() as txn:
        segs_before = {loc[:4] for _, loc in chunks.locations(txn)}
    assert len(segs_before) == 1
    api.branch_delete(home, "ds@side", force=True)
    forget_reflog(store)
    r = api.gc(home, threshold=0.5)
    assert r.segments_rewritten == 1 and r.segments_deleted == 0
    assert r.bytes_after < 0.5 * r.bytes_before
    _read_back(home, tmp_path, "ds@main", keep)
    with store.env.read() as txn:
        assert gcstate.epoch(txn) == 1


def test_bad_threshold_is_a_usage_error(home: Path, tmp_path: Path, cli: Cli) -> None:
    api.init(home, "ds", "dataset", "mutable")
    out = cli("gc", "--threshold", "1.5", code=2)
    assert "--threshold" in out.stderr


def test_one_gc_at_a_time(home: Path, tmp_path: Path) -> None:
    import fcntl
    import os

    api.init(home, "ds", "dataset", "mutable")
    fd = os.open(home / "gc.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(ConflictError, match="another gc"):
            api.gc(home)
    finally:
        os.close(fd)


def test_expired_versions_lose_contents_keep_history(home: Path, tmp_path: Path) -> None:
    """Retention expires old versions (repo/expiry.py): gc drops the chunks only they hold,
    keeps their commits, trees and manifests (log and ls work), and fsck stays clean."""
    from mlgitfs.meta import retention
    from mlgitfs.model.retention import Policy, Rule

    api.init(home, "ds", "dataset", "mutable")
    versions = []
    for v in range(3):
        src = tmp_path / f"v{v}"
        files = random_files(src, 6, 300_000, 10 + v)
        big = random_files(src, 1, 1, 20 + v)  # a name; then a file of several chunks
        name = next(iter(big))
        files[name] = random.Random(v).randbytes(3_000_000)
        (src / name).write_bytes(files[name])
        api.import_dir(home, "ds@main", src, f"v{v}")
        versions.append(files)
    store = api.open_store(home)
    forget_reflog(store)
    with store.env.write() as txn:
        retention.set_rules(txn, "ds", (Rule("*", Policy(last=1)),))
    dry = api.gc(home, dry_run=True)
    assert len(dry.expired) == 2 and all("retention" in e for e in dry.expired)
    r = api.gc(home)
    assert r.objects == 0  # history and names stay
    assert r.chunks > 0 and r.segment_bytes_freed > 0
    assert [c.message for c in api.log(home, "ds@main")] == ["v2", "v1", "v0"]
    assert {e.path for e in api.ls(home, "ds@main~2")} >= {"d0"}
    _read_back(home, tmp_path, "ds@main", versions[2])
    report = api.fsck(home)
    assert report.clean and report.expired == 2


def test_readers_of_a_rewritten_segment(home: Path, tmp_path: Path) -> None:
    """A reader that looked a location up before gc moved the chunk reads the old file
    through its open descriptor, or looks again; its descriptor of the deleted file is
    closed when it next opens a segment, so the disk space comes back."""
    from mlgitfs.model.ids import ChunkId
    from mlgitfs.store.cache import ChunkCache

    api.init(home, "ds", "dataset", "mutable")
    random_files(tmp_path / "all", 8, 200_000, 4)
    api.import_dir(home, "ds@side", tmp_path / "all", "both")
    keep_dir = tmp_path / "keep"
    shutil.copytree(tmp_path / "all", keep_dir)
    for p in sorted(keep_dir.rglob("*.bin"))[:6]:
        p.unlink()
    api.import_dir(home, "ds@main", keep_dir, "a quarter")
    store = api.open_store(home)
    reader = ChunkCache(home / "chunks", store.env)  # another reader's descriptors
    with store.env.read() as txn:
        live = [ChunkId(e.id and bytes.fromhex(e.id)) for e in api.ls(home, "ds@main", True)
                if e.kind == "file"]  # fmt: skip
        old = {cid: reader.location(txn, cid) for cid in live}
    first = live[0]
    assert reader.read_at(first, old[first])  # opens (and keeps) the old segment
    api.branch_delete(home, "ds@side", force=True)
    forget_reflog(store)
    assert api.gc(home).segments_rewritten == 1
    assert not store.chunks.segment_path(old[first].segment).exists()
    assert reader.read_at(first, old[first])  # the open descriptor still reads it
    fresh = ChunkCache(home / "chunks", store.env)  # a reader with no descriptor open
    with pytest.raises(MissingObject):
        fresh.read_at(live[1], old[live[1]])
    for cid in live:
        assert store.read_chunk(cid)  # looks the moved location up again
    with store.env.read() as txn:
        moved = reader.location(txn, live[1])
    assert moved is not None and moved.segment != old[live[1]].segment
    reader.read_at(live[1], moved)  # opening the new segment closes the deleted one's fd
    assert not [d for d in _open_files() if d.endswith(".seg (deleted)")]
    reader.close()
    fresh.close()


def _open_files() -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
    return out
