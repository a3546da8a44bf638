"""Remote gc (issue 16 item 4) against file:// and SeaweedFS: dead packs of deleted branches
go and the bytes freed are reported, sparse packs are repacked, every remaining ref clones
from a fresh store byte for byte and fscks clean (a clone made before the gc too, reading
through its stale pack locations), `--dry-run` changes nothing, a second gc is refused
while one holds the lease, retention is applied as the remote's rules say."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mlgitfs import api
from mlgitfs.meta.remotes import RemoteRecord
from mlgitfs.repo import push as push_mod
from mlgitfs.repo import remotegcstate
from mlgitfs.repo.remotegc import bytes_on_remote
from mlgitfs.store.facade import Store
from mlgitfs.store.remote import RemoteTransport
from mlgitfs.store.transports import open_transport
from tests.conftest import Cli
from tests.gchelpers import random_files
from tests.test_sync import Remote, remote
from tests.wmount import Mounter, mounter
from testsupport.mounts import fuse_skip_reason

__all__ = ["mounter", "remote"]

MARK = b"SCRATCH-ONLY-7c1f0e"
PACK = str(96 << 10)  # small packs: several per branch, so repacks and dead packs both happen


def remote_files(r: Remote) -> dict[str, bytes]:
    t = r.transport()
    try:
        return {k: t.get(k) for k in t.list() if not k.startswith("tmp/")}
    finally:
        t.close()


def build(cli: Cli, tmp_path: Path, r: Remote) -> tuple[Path, Path]:
    """ds@main (80% of `all`), ds@side (all, pushed first: main's chunks share its packs),
    ds@scratch (data of its own, with a marker). Pushed, then side and scratch deleted on
    the remote. Returns the directories main and side were imported from."""
    all_dir, main_dir, scratch = tmp_path / "all", tmp_path / "main", tmp_path / "scratch"
    files = random_files(all_dir, 40, 30_000, seed=1)
    for i, (rel, data) in enumerate(sorted(files.items())):
        if i % 5:
            (main_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (main_dir / rel).write_bytes(data)
    random_files(scratch, 12, 30_000, seed=2)
    (scratch / "marker.txt").write_bytes(MARK * 100)
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(main_dir), "-m", "main")
    cli("branch", "ds@side", "ds@main")
    cli("import", "ds@side", str(all_dir), "-m", "all")
    cli("branch", "ds@scratch", "ds@main")
    cli("import", "ds@scratch", str(scratch), "-m", "scratch")
    cli("remote", "add", "origin", r.url, *r.add_args())
    cli("push", "ds@side")
    cli("push", "ds@scratch")
    cli("push", "ds@main")
    cli("push", "--delete", "ds@side", "origin", "--force")
    cli("push", "--delete", "ds@scratch", "origin", "--force")
    return main_dir, all_dir


def clone_check(tmp_path: Path, r: Remote, name: str, expect: dict[str, Path]) -> None:
    """A fresh store clones the remote, reads every ref's files byte for byte, fscks clean."""
    fresh = Cli(tmp_path / name)
    fresh("clone", r.url, "ds", *r.add_args())
    for ref, src in expect.items():
        out = tmp_path / f"{name}-{ref}"
        fresh("export", f"ds@{ref}", str(out))
        assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == {
            p.relative_to(src): p.read_bytes() for p in src.rglob("*") if p.is_file()
        }
    report = api.fsck(fresh.home, check_remote=True)
    api.close_store(fresh.home)
    assert report.clean, report.damage


def test_remote_gc_reclaims_and_keeps_every_ref(
    home: Path, cli: Cli, tmp_path: Path, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGITFS_PACK_TARGET", PACK)
    main_dir, _ = build(cli, tmp_path, remote)
    early = Cli(tmp_path / "early")  # cloned before the gc: its pack locations go stale
    early("clone", remote.url, "ds", *remote.add_args())

    before = remote_files(remote)
    dry = json.loads(cli("gc", "--remote", "origin", "--dry-run", "--json").stdout)
    assert remote_files(remote) == before  # --dry-run changes nothing
    assert dry["packs_dead"] > 0 and dry["packs_repacked"] > 0 and dry["bytes_freed"] > 0

    t = remote.transport()
    size_before = bytes_on_remote(t)
    res = json.loads(cli("gc", "--remote", "origin", "--grace", "0.2s", "--json").stdout)
    size_after = bytes_on_remote(t)
    t.close()
    assert res["packs_dead"] == dry["packs_dead"] and res["packs_repacked"] > 0
    assert res["packs_written"] > 0 and res["bytes_freed"] > 0
    assert res["bytes_after"] == res["bytes_before"] - res["bytes_freed"]
    assert size_before - size_after >= res["bytes_freed"] * 0.9  # locators are not counted
    after = remote_files(remote)
    assert not [k for k in after if k.startswith("gc/") and k != remotegcstate.EXPIRED_KEY]
    if remote.url.startswith("file:"):  # the scratch branch's bytes left the remote
        assert not [k for k, v in after.items() if MARK in v]
    # a second gc finds nothing more to do
    again = json.loads(cli("gc", "--remote", "origin", "--grace", "0", "--json").stdout)
    assert again["packs_dead"] == 0 and again["packs_repacked"] == 0

    clone_check(tmp_path, remote, "fresh", {"main": main_dir})
    out = tmp_path / "early-main"  # reads through locations of deleted packs
    early("export", "ds@main", str(out))
    assert sorted(p.read_bytes() for p in out.rglob("*") if p.is_file()) == sorted(
        p.read_bytes() for p in main_dir.rglob("*") if p.is_file()
    )
    early("fsck")
    cli("push", "ds@main")  # the writer's stale view: refreshed, "up to date"
    cli("fsck")


def test_second_gc_is_refused_while_one_holds_the_lease(
    home: Path, cli: Cli, tmp_path: Path, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGITFS_PACK_TARGET", PACK)
    build(cli, tmp_path, remote)
    before = remote_files(remote)
    done: list[str] = []
    started = threading.Event()

    def first() -> None:
        res = api.gc_remote(home, "origin", grace="3s")
        done.append(res.gc_id)

    worker = threading.Thread(target=first)
    worker.start()
    t = remote.transport()
    try:
        for _ in range(400):  # until the first one holds the lease
            if remotegcstate.lease_holder(t) is not None:
                started.set()
                break
            threading.Event().wait(0.02)
        assert started.is_set()
        err = cli("gc", "--remote", "origin", "--grace", "0", code=14).stderr
        assert "another gc holds the remote's lease" in err and "nothing was changed" in err
    finally:
        worker.join()
        t.close()
    assert done
    assert remote_files(remote) != before  # the first one did its work
    assert remotegcstate.lease_holder(remote.transport()) is None


def test_retention_on_the_remote_lets_old_versions_go(
    home: Path, cli: Cli, tmp_path: Path, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGITFS_PACK_TARGET", PACK)
    v1 = tmp_path / "v1"
    random_files(v1, 10, 30_000, seed=5)
    (v1 / "old.txt").write_bytes(MARK * 50)
    v2 = tmp_path / "v2"
    random_files(v2, 10, 30_000, seed=6)
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(v1), "-m", "v1")
    cli("remote", "add", "origin", remote.url, *remote.add_args())
    cli("push", "ds")
    cli("import", "ds", str(v2), "-m", "v2")
    cli("retention", "set", "ds", "--keep-last", "1")
    cli("push", "ds")  # publishes retention/ds
    res = json.loads(cli("gc", "--remote", "origin", "--grace", "0", "--json").stdout)
    assert len(res["expired"]) == 1 and "keep-last 1" in res["expired"][0]
    assert res["packs_dead"] > 0
    if remote.url.startswith("file:"):
        assert not [k for k, v in remote_files(remote).items() if MARK in v]
    clone_check(tmp_path, remote, "fresh", {"main": v2})
    fresh = Cli(tmp_path / "fresh")
    assert len(json.loads(fresh("log", "ds", "--json").stdout)) == 2  # the history stays
    # rules cleared after the gc: v1's contents are gone, so it stays expired (no refusal)
    cli("retention", "set", "ds", "--clear")
    cli("push", "ds")
    again = json.loads(cli("gc", "--remote", "origin", "--grace", "0", "--json").stdout)
    assert again["expired"] == [] and again["packs_dead"] == 0
    # pushing v1's tree again (a revert) uploads its chunks: the walk does not stop at the
    # expired tree the remote keeps for its names
    cli("import", "ds", str(v1), "-m", "back to v1")
    cli("push", "ds")
    clone_check(tmp_path, remote, "again", {"main": v1})


def test_a_mount_reads_the_right_bytes_across_a_remote_gc(
    home: Path, tmp_path: Path, remote: Remote, mounter: Mounter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A read-only mount of a clone (`home`) streams from the remote while another machine's
    gc repacks and deletes the packs it reads: files read during the grace come from the old
    packs, files read after the delete through the copies (the daemon's locations are stale:
    it finds the copies by reading the indexes again)."""
    if (why := fuse_skip_reason()) is not None:
        pytest.skip(why)
    monkeypatch.setenv("MLGITFS_PACK_TARGET", PACK)
    writer = Cli(tmp_path / "writer")
    main_dir, _ = build(writer, tmp_path, remote)
    Cli(home)("clone", remote.url, "ds", *remote.add_args())
    mp = mounter("ds@main", "ro")
    files = sorted(p.relative_to(main_dir) for p in main_dir.rglob("*") if p.is_file())
    got: dict[Path, bytes] = {}
    ran: list[api.RemoteGcResult] = []
    gc = threading.Thread(target=lambda: ran.append(api.gc_remote(writer.home, "origin",
                                                                  grace="1s")))  # fmt: skip
    gc.start()
    try:
        # during the gc, one directory (a first read fetches its directory's files ahead)
        for rel in [f for f in files if f.parts[0] == "d0"]:
            got[rel] = (mp / rel).read_bytes()
    finally:
        gc.join()
    assert ran and ran[0].packs_repacked > 0
    for rel in [f for f in files if f.parts[0] != "d0"]:  # after it: their packs are gone
        got[rel] = (mp / rel).read_bytes()
    assert got == {rel: (main_dir / rel).read_bytes() for rel in files}
    api.close_store(writer.home)


class _GcDuringPush:
    """A transport double for the pusher: its first chunk pack upload waits until a gc
    running meanwhile has published its condemned list (the gc's grace then runs)."""

    def __init__(self, inner: RemoteTransport, start_gc: Callable[[], None]) -> None:
        self.inner, self.start_gc, self.fired = inner, start_gc, False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def put(self, key: str, data: bytes) -> None:
        if not self.fired and key.startswith("packs/") and key.endswith(".pack"):
            self.fired = True
            self.start_gc()
        self.inner.put(key, data)


def test_a_push_that_began_before_the_condemn_uploads_what_it_reused(
    home: Path, cli: Cli, tmp_path: Path, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The push reads `gc/` (nothing condemned) and plans to reuse the deleted branch's
    chunks; a gc condemns their packs while the push uploads; the push lists `gc/` again
    before its CAS and uploads them again, so the gc revives nothing and deletes them."""
    monkeypatch.setenv("MLGITFS_PACK_TARGET", PACK)
    _, all_dir = build(cli, tmp_path, remote)
    src = tmp_path / "v"
    shutil.copytree(all_dir, src)  # side's files: garbage the gc condemns
    random_files(src, 3, 20_000, seed=9)
    other = Cli(tmp_path / "other")
    other("clone", remote.url, "ds", *remote.add_args())
    other("import", "ds", str(src), "-m", "v")
    api.close_store(other.home)
    ran: list[api.RemoteGcResult] = []
    gc = threading.Thread(target=lambda: ran.append(api.gc_remote(home, "origin", grace="2s")))
    watcher = remote.transport()

    def start_gc() -> None:
        gc.start()
        for _ in range(1500):
            if any(k.endswith(".condemned") for k in watcher.list("gc/")):
                return
            time.sleep(0.02)
        raise AssertionError("the gc never condemned anything")

    def factory(rec: RemoteRecord) -> RemoteTransport:
        return _GcDuringPush(open_transport(rec.url, rec.endpoint_url), start_gc)  # type: ignore[return-value]

    store = Store.open(other.home, transport_factory=factory)
    try:
        out = push_mod.push(store, "ds", "main", pack_target=int(PACK))
    finally:
        store.close()
        gc.join()
        watcher.close()
    assert [u.status for u in out.updates] == ["updated"]
    assert ran and ran[0].packs_revived == 0 and ran[0].packs_dead + ran[0].packs_repacked > 0
    clone_check(tmp_path, remote, "fresh", {"main": src})
