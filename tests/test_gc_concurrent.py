"""gc in a loop beside imports and writable-mount commits (docs/design.md, "gc"): what is
written during a gc is never collected; a commit that reused something a gc swept is
refused (ConflictError) and retried, never broken; afterwards fsck is clean and every
acknowledged commit exports byte for byte."""

from __future__ import annotations

import os
import random
import shutil
import threading
from pathlib import Path

from mlgitfs import api
from mlgitfs.errors import ConflictError
from tests.gchelpers import random_files
from tests.test_gc_kill import _Worker
from tests.wmount import Mounter, mounter, snapshot

__all__ = ["mounter"]
ROUNDS = int(os.environ.get("MLGITFS_GC_ROUNDS", "8"))
REFUSED: list[str] = []  # commits refused for racing a sweep (then retried)


def _retry(what: str, fn):  # type: ignore[no-untyped-def]
    """Run `fn` until no gc races it (a refused commit changed nothing)."""
    for _ in range(10):
        try:
            return fn()
        except ConflictError as exc:
            assert "gc removed" in exc.message, exc.message
            REFUSED.append(what)
    raise AssertionError(f"{what}: refused 10 times")


def test_gc_beside_imports_and_mount_commits(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    api.init(home, "ds", "dataset", "mutable")
    api.config(home, "reflog-expiry", "0")  # deleted branches are garbage at once
    random_files(tmp_path / "seed", 10, 50_000, 0)
    api.import_dir(home, "ds@main", tmp_path / "seed", "seed")
    api.branch_create(home, "ds@w")
    mp = mounter("ds@w")
    acked: dict[str, dict[str, bytes]] = {}  # commit id -> its files
    stop = threading.Event()
    gcs = [0]
    errors: list[BaseException] = []

    worker = _Worker(home)  # started (python and mlgitfs imported) before the work begins

    def gc_loop() -> None:
        try:
            while not stop.is_set():
                worker.start()
                assert worker.wait() == 0
                gcs[0] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            worker.close()

    def mount_commits() -> None:
        try:
            rnd = random.Random(2)
            for j in range(ROUNDS):
                (mp / f"m{j}.bin").write_bytes(rnd.randbytes(rnd.randint(1, 400_000)))
                if j % 3 == 2:
                    (mp / f"m{j - 2}.bin").unlink()
                files = {k: v[2] for k, v in snapshot(mp).items() if v[0] == "file"}
                r = _retry("mount commit", lambda j=j: api.commit(home, mp, f"m{j}"))
                assert r.commit is not None
                acked[r.commit.id] = files
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=gc_loop), threading.Thread(target=mount_commits)]
    for t in threads:
        t.start()
    try:
        rnd = random.Random(1)
        for i in range(ROUNDS):
            src = tmp_path / f"src{i}"
            files = random_files(src, 12, 300_000, 100 + i)
            # a branch that becomes garbage at once...
            api.branch_create(home, f"ds@tmp{i}")
            api.import_dir(home, f"ds@tmp{i}", src, f"tmp {i}")
            api.branch_delete(home, f"ds@tmp{i}", force=True)
            # ...and the same bytes imported again where they stay: the import finds the
            # chunks in the store while a gc may be sweeping them
            again = tmp_path / f"again{i}"
            shutil.copytree(src, again)
            if rnd.random() < 0.5:
                next(iter(again.rglob("*.bin"))).write_bytes(b"changed")
                files = {str(p.relative_to(again)): p.read_bytes() for p in again.rglob("*.bin")}
            r = _retry(
                "import", lambda a=again, i=i: api.import_dir(home, "ds@main", a, f"main {i}")
            )
            acked[r.commit.id] = files
    finally:
        for t in threads[1:]:
            t.join()
        stop.set()
        threads[0].join()
    assert not errors, errors
    assert gcs[0] >= 2, f"only {gcs[0]} gcs ran during the work"
    api.gc(home)
    report = api.fsck(home)
    assert report.clean, report.damage
    for cid, files in acked.items():
        dest = tmp_path / f"x{cid[:12]}"
        api.export(home, f"ds@{cid}", dest)
        got = {str(p.relative_to(dest)): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
        assert got == files, cid
        shutil.rmtree(dest)
    assert len(acked) == 2 * ROUNDS
    print(f"{gcs[0]} gcs, {len(REFUSED)} commits refused and retried")


def test_overlay_restored_from_a_deleted_branch_stays(
    home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    """A file restored into a writable mount from another branch is a base-backed inode of
    the overlay (no copy): gc keeps its content after that branch is deleted."""
    api.init(home, "ds", "dataset", "mutable")
    api.config(home, "reflog-expiry", "0")
    random_files(tmp_path / "seed", 3, 10_000, 0)
    api.import_dir(home, "ds@main", tmp_path / "seed", "seed")
    api.branch_create(home, "ds@side")
    shutil.copytree(tmp_path / "seed", tmp_path / "side")
    extra = random_files(tmp_path / "side", 4, 500_000, 7)
    api.import_dir(home, "ds@side", tmp_path / "side", "side")
    mp = mounter("ds@main")
    path = next(iter(extra))
    api.restore(home, [mp / path], "ds@side")
    api.branch_delete(home, "ds@side", force=True)
    r = api.gc(home)
    assert r.objects > 0  # the side commit and its trees went; the restored file did not
    assert (mp / path).read_bytes() == extra[path]
    c = api.commit(home, mp, "restored")
    assert c.commit is not None
    dest = tmp_path / "out"
    api.export(home, f"ds@{c.commit.id}", dest)
    assert (dest / path).read_bytes() == extra[path]


def test_a_mounted_commit_no_ref_keeps_survives_gc(
    home: Path, tmp_path: Path, mounter: Mounter
) -> None:
    """A read-only mount of a commit whose branch was deleted keeps serving it: live mounts'
    commits are roots."""
    api.init(home, "ds", "dataset", "mutable")
    api.config(home, "reflog-expiry", "0")
    random_files(tmp_path / "seed", 3, 10_000, 0)
    api.import_dir(home, "ds@main", tmp_path / "seed", "seed")
    api.branch_create(home, "ds@side")
    files = random_files(tmp_path / "side", 4, 400_000, 9)
    r = api.import_dir(home, "ds@side", tmp_path / "side", "side")
    mp = mounter(f"ds@{r.commit.id}", "ro")
    api.branch_delete(home, "ds@side", force=True)
    kept = api.gc(home)
    assert kept.chunks == 0
    for rel, data in files.items():
        assert (mp / rel).read_bytes() == data
