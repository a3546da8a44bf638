"""Erase in a store with a remote (issue 16 item 5): the remote's packs still hold the erased
bytes, and a read of the erased file must not fetch them back (that would silently undo the
erase). Against file:// and SeaweedFS: push, erase locally, read through the CLI and a
read-only mount -> FileErased (exit 35; EIO with the erasure in the daemon log), and no file
of the local store holds the marker afterwards; a file not erased still reads."""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import pytest

from mlgitfs import api
from mlgitfs.errors import FileErased
from mlgitfs.meta import erasures
from mlgitfs.repo import erasuresync, remotegc
from mlgitfs.store import compress
from mlgitfs.store.facade import Store
from mlgitfs.store.transports import open_transport
from tests.conftest import Cli, write_tree
from tests.test_cli_refs import _id
from tests.test_erase import _holding, _secret
from tests.test_sync import Remote, remote
from tests.wmount import Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason

__all__ = ["mounter", "remote"]


def _daemon_logs(home: Path) -> str:
    return "\n".join(p.read_text() for p in (home / "mounts").rglob("*.log"))


def test_erased_file_is_not_fetched_back_from_a_remote(
    home: Path, cli: Cli, tmp_path: Path, remote: Remote, mounter: Mounter
) -> None:
    small_m, big_m = b"MARKER-SMALL-3b9e1d", b"MARKER-BIG-a4c27f"
    src = write_tree(tmp_path / "src", {"secret.csv": _secret(small_m, 120_000),
                                        "big.bin": _secret(big_m, 5 << 20),
                                        "notes.txt": "fine\n"})  # fmt: skip
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "v1")
    cli("remote", "add", "origin", remote.url, *remote.add_args())
    cli("push", "ds")
    head = _id(cli, "ds")
    cli("erase", "ds", "secret.csv", "big.bin", "-m", "request 7", "--yes")
    api.close_store(home)
    assert _holding(home, small_m) == [] and _holding(home, big_m) == []
    if remote.url.startswith("file:"):  # the remote keeps them until its gc (test below)
        assert _holding(Path(remote.url.removeprefix("file://")), small_m)
    store = Store.open(home)
    with store.env.read() as txn:
        assert len(erasures.erased_chunk_ids(txn)) >= 3  # secret.csv's chunk, big.bin's chunks
    api.close_store(home)

    for path in ("secret.csv", "big.bin"):
        err = cli("cat", f"ds:{path}", code=35).stderr
        assert f"ds@{head[:12]}:{path}" in err and "erasure 1" in err and "request 7" in err
    assert "erasure 1" in cli("export", "ds", str(tmp_path / "ex"), code=35).stderr
    assert cli("cat", "ds:notes.txt").stdout == "fine\n"
    cli("prefetch", "ds")  # the erased chunks are not brought back ahead either
    api.close_store(home)
    assert _holding(home, small_m) == [] and _holding(home, big_m) == []

    if fuse_skip_reason() is None:
        mp = mounter(f"ds@{head}", "ro")
        assert (mp / "notes.txt").read_text() == "fine\n"
        for path in ("secret.csv", "big.bin"):
            with pytest.raises(OSError) as caught:
                (mp / path).read_bytes()
            assert caught.value.errno == 5  # EIO
        mlgitfs(home, "unmount", str(mp))
        logs = _daemon_logs(home)
        assert "erasure 1" in logs and "big.bin" in logs and "secret.csv" in logs
        assert _holding(home, small_m) == [] and _holding(home, big_m) == []
    report = api.fsck(home)
    api.close_store(home)
    assert report.clean, report.damage
    assert report.erased == 2


def _found(data: bytes, marker: bytes) -> bool:
    """`marker` in the raw bytes, or in any zstd frame they hold, decompressed."""
    return marker in data or any(marker in f for f in compress.frames_in(data))


def _local_holding(home: Path, marker: bytes) -> list[str]:
    return [str(p.relative_to(home)) for p in home.rglob("*")
            if p.is_file() and _found(p.read_bytes(), marker)]  # fmt: skip


def _remote_holding(remote: Remote, marker: bytes) -> list[str]:
    """Every object of the remote, read whole: those holding `marker`."""
    t = remote.transport()
    try:
        return [k for k in t.list() if _found(t.get(k), marker)]
    finally:
        t.close()


def test_erase_reaches_the_remote_and_every_clone(
    home: Path, cli: Cli, tmp_path: Path, remote: Remote
) -> None:
    """Issue 16 item 5's "Done when": after erase, push and `gc --remote`, a marker written
    into the erased files is in no local file, no remote object (raw or decompressed) and
    no file of a store that cloned before the erase and fetched after it; that store's
    reads name the erasure."""
    text_m, big_m = b"MARKER-TEXT-6d02aa", b"MARKER-BIG-19fe7c"
    # compressible: stored as zstd, so a plain byte search alone would not find the marker
    text = b"".join(b"%d,%s,row\n" % (i, text_m) for i in range(20_000))
    src = write_tree(tmp_path / "src", {"secret.csv": text, "big.bin": _secret(big_m, 5 << 20),
                                        "notes.txt": "fine\n"})  # fmt: skip
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "v1")
    cli("remote", "add", "origin", remote.url, *remote.add_args())
    cli("push", "ds")
    assert _remote_holding(remote, text_m) and _remote_holding(remote, big_m)
    assert not any(text_m in remote.transport().get(k) for k in _remote_holding(remote, text_m))

    other = Cli(tmp_path / "other")  # cloned before the erase, and has read the secret
    other("clone", remote.url, "ds", *remote.add_args())
    assert other("cat", "ds:secret.csv").stdout.encode() == text
    api.close_store(other.home)
    assert _local_holding(other.home, text_m)

    head = _id(cli, "ds")
    cli("erase", "ds", "secret.csv", "big.bin", "-m", "request 9", "--yes")
    cli("push", "ds")  # the record goes up with the repo
    assert "erasures/ds" in remote.remote_keys()
    res = json.loads(cli("gc", "--remote", "origin", "--grace", "0", "--json").stdout)
    assert res["packs_repacked"] + res["packs_dead"] > 0
    api.close_store(home)
    for m in (text_m, big_m):
        assert _local_holding(home, m) == []
        assert _remote_holding(remote, m) == []
    assert cli("cat", "ds:notes.txt").stdout == "fine\n"

    other("fetch", "ds")  # learns the erasure; its cached copy goes
    for path in ("secret.csv", "big.bin"):
        err = other("cat", f"ds:{path}", code=35).stderr
        assert f"ds@{head[:12]}:{path}" in err and "request 9" in err
    assert other("cat", "ds:notes.txt").stdout == "fine\n"
    api.close_store(other.home)
    for m in (text_m, big_m):
        assert _local_holding(other.home, m) == []

    late = Cli(tmp_path / "late")  # cloned after: knows the erasure from the start
    late("clone", remote.url, "ds", *remote.add_args())
    assert "request 9" in late("cat", "ds:secret.csv", code=35).stderr
    for h in (other.home, late.home):
        report = api.fsck(h, check_remote=True)
        api.close_store(h)
        assert report.clean, report.damage


def test_erase_remote_flag_records_union_mirror_and_strict_read(
    home: Path, cli: Cli, tmp_path: Path
) -> None:
    """`erase --remote` pushes the record and runs that remote's gc; two stores' records
    both stay (union); a mirror carries them, and its own gc then drops the bytes a backup
    made before the erase kept; a damaged `erasures/REPO` is refused and changes nothing."""
    origin, backup = (tmp_path / "origin").as_uri(), (tmp_path / "backup").as_uri()
    a_m, b_m = b"MARKER-A-0e5d77", b"MARKER-B-f00d42"
    files: dict[str, bytes | str] = {"a.bin": _secret(a_m, 80_000), "b.bin": _secret(b_m, 80_000)}
    src = write_tree(tmp_path / "src", {**files, "ok.txt": "ok\n"})
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "v1")
    cli("remote", "add", "origin", origin)
    cli("push", "ds")
    cli("mirror", "origin", backup)  # a backup made before the erase: holds both markers
    other = Cli(tmp_path / "other")
    other("clone", origin, "ds")

    r = json.loads(cli("erase", "ds", "a.bin", "--yes", "--remote", "origin", "--grace", "0",
                       "--json").stdout)  # fmt: skip
    assert r["remote_gc"]["packs_repacked"] + r["remote_gc"]["packs_dead"] > 0
    origin_dir = tmp_path / "origin"
    assert _local_holding(origin_dir, a_m) == [] and _local_holding(origin_dir, b_m)
    other("erase", "ds", "b.bin", "-m", "second", "--yes")  # knows nothing of the first yet
    other("push", "ds")  # adds its record beside the first
    records = erasuresync.read_remote(open_transport(origin), "ds")[0]
    assert sorted(p for rec, _ in records for p in rec.paths) == ["a.bin", "b.bin"]
    other("fetch", "ds")
    assert len(json.loads(other("erasures", "--json").stdout)) == 2  # no duplicate of its own
    cli("fetch", "ds")
    assert "second" in cli("cat", "ds:b.bin", code=35).stderr
    cli("gc", "--remote", "origin", "--grace", "0")
    assert _local_holding(origin_dir, b_m) == []

    cli("mirror", "origin", backup)  # carries erasures/ds; the old packs stay (never deleted)
    assert _local_holding(tmp_path / "backup", a_m)
    cli("remote", "add", "backup", backup)
    cli("gc", "--remote", "backup", "--grace", "0")  # the backup's gc reads its records
    for m in (a_m, b_m):
        assert _local_holding(tmp_path / "backup", m) == []
    restored = Cli(tmp_path / "restored")
    restored("clone", backup, "ds")
    assert restored("cat", "ds:ok.txt").stdout == "ok\n"
    assert "erasure" in restored("cat", "ds:a.bin", code=35).stderr

    key = origin_dir / "erasures" / "ds"
    good = key.read_bytes()
    key.write_bytes(good[:-7])
    err = other("fetch", "ds", code=7).stderr
    assert "erasures/ds" in err and "malformed" in err
    key.write_bytes(good)
    for h in (other.home, restored.home):
        report = api.fsck(h)
        api.close_store(h)
        assert report.clean, report.damage


def test_a_push_during_the_grace_keeps_a_copy_not_erased(
    home: Path, cli: Cli, tmp_path: Path
) -> None:
    """A store that has not learnt the erasure pushes, during the remote gc's grace, a
    commit where another path holds the erased bytes: that file is not erased, and the gc
    must not delete its chunks (the remote still holds them, every ref of the remote reads
    back in that store, fsck --remote is clean)."""
    origin = (tmp_path / "origin").as_uri()
    m = b"MARKER-COPY-2b8e41"
    secret = _secret(m, 90_000)
    src = write_tree(tmp_path / "src", {"secret.csv": secret, "ok.txt": "ok\n"})
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "v1")
    cli("remote", "add", "origin", origin)
    cli("push", "ds")
    other = Cli(tmp_path / "other")
    other("clone", origin, "ds")
    other("import", "ds", str(write_tree(tmp_path / "s2", {"copy.csv": secret})), "-m", "v2")
    cli("erase", "ds", "secret.csv", "--yes")
    cli("push", "ds")
    pushed: list[str] = []

    def phase(name: str) -> None:
        if name == "grace":
            pushed.append(other("push", "ds").stdout)

    res = remotegc.gc_remote(api.open_store(home), "origin", grace=0.3, phase=phase)
    api.close_store(home)
    assert pushed and res.packs_repacked + res.packs_dead > 0
    assert _local_holding(tmp_path / "origin", m)  # copy.csv's bytes stay on the remote
    other("fetch", "ds")
    assert other("cat", "ds:copy.csv").stdout_bytes == secret
    assert len(json.loads(other("erasures", "--json").stdout)) == 1  # learnt, bytes kept
    report = api.fsck(other.home, check_remote=True)
    api.close_store(other.home)
    assert report.clean, report.damage


def test_a_file_not_erased_reads_though_a_record_names_its_bytes(
    home: Path, cli: Cli, tmp_path: Path, remote: Remote, mounter: Mounter
) -> None:
    """Reads are judged by occurrence, not by chunk. Store A erases x.bin and xbig.bin (the
    only files holding their bytes: the record's erased-chunk set names them, and the
    remote's gc deletes them), then commits the same bytes as y.bin and ybig.bin and
    pushes; the remote's gc keeps them (files not erased). Store B (this one) cloned before
    the erase and never had the bytes; it learns the record by pulling. y.bin and ybig.bin
    read byte for byte (cat, prefetch, export, mounts) though their chunks are in B's
    erased-chunk set; x.bin and xbig.bin of the erased version give FileErased (exit 35)
    before and after the same bytes came here, and EIO in a mount; `prefetch` of the
    erased version brings none of their bytes."""
    m1, m2 = b"MARKER-SHARED-SMALL-4c1f0e", b"MARKER-SHARED-BIG-8a22d3"
    small, big = _secret(m1, 90_000), _secret(m2, 5 << 20)  # one chunk; a manifest
    a = Cli(tmp_path / "a")
    src = write_tree(tmp_path / "src", {"x.bin": small, "xbig.bin": big, "ok.txt": "ok\n"})
    a("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    a("import", "ds", str(src), "-m", "v1")
    a("remote", "add", "origin", remote.url, *remote.add_args())
    a("push", "ds")
    cli("clone", remote.url, "ds", *remote.add_args())  # B: metadata only, no bytes read
    old = _id(cli, "ds")

    a("erase", "ds", "x.bin", "xbig.bin", "-m", "request 11", "--yes")
    a("push", "ds")
    a("gc", "--remote", "origin", "--grace", "0")
    assert _remote_holding(remote, m1) == [] and _remote_holding(remote, m2) == []
    two = write_tree(tmp_path / "src2", {"y.bin": small, "ybig.bin": big, "ok.txt": "ok\n"})
    a("import", "ds", str(two), "-m", "v2")  # the same bytes at other paths, a later version
    a("push", "ds")
    a("gc", "--remote", "origin", "--grace", "0")  # y.bin and ybig.bin keep them
    assert _remote_holding(remote, m1) and _remote_holding(remote, m2)

    cli("pull", "ds")  # learns the erasure; holds none of the bytes
    store = Store.open(home)
    with store.env.read() as txn:
        assert len(erasures.erased_chunk_ids(txn)) >= 3  # A's view: x.bin's, xbig.bin's chunks
    api.close_store(home)
    ids = {e["path"]: e["id"] for e in json.loads(cli("ls", "ds", "--json").stdout)}
    ids.update({e["path"]: e["id"] for e in json.loads(cli("ls", f"ds@{old}", "--json").stdout)})
    assert ids["y.bin"] == ids["x.bin"] and ids["ybig.bin"] == ids["xbig.bin"]  # same files

    cli("prefetch", f"ds@{old}")  # the erased files' bytes are not brought here
    api.close_store(home)
    assert _local_holding(home, m1) == [] and _local_holding(home, m2) == []
    assert "request 11" in cli("cat", f"ds@{old}:x.bin", code=35).stderr
    assert cli("cat", "ds:y.bin").stdout_bytes == small  # fetched, judged not erased
    fs = fsspec.filesystem("mlgitfs", home=str(home), skip_instance_cache=True)
    with pytest.raises(FileErased):
        fs.open(f"ds@{old}/x.bin", "rb")
    assert fs.cat_file(f"ds@{_id(cli, 'ds')}/y.bin") == small
    api.close_store(home)
    if fuse_skip_reason() is None:
        mp = mounter(f"ds@{_id(cli, 'ds')}", "ro")
        assert (mp / "ybig.bin").read_bytes() == big  # read-ahead fetches, judged
        mlgitfs(home, "unmount", str(mp))
    else:
        cli("prefetch", "ds")
    api.close_store(home)
    assert _local_holding(home, m1) and _local_holding(home, m2)  # y.bin's, ybig.bin's
    for path in ("x.bin", "xbig.bin"):  # the bytes are here now; the occurrence is erased
        err = cli("cat", f"ds@{old}:{path}", code=35).stderr
        assert f"ds@{old[:12]}:{path}" in err and "request 11" in err
    assert "request 11" in cli("export", f"ds@{old}", str(tmp_path / "ex1"), code=35).stderr
    cli("export", "ds", str(tmp_path / "ex2"))
    assert (tmp_path / "ex2" / "ybig.bin").read_bytes() == big
    if fuse_skip_reason() is None:
        mp = mounter(f"ds@{old}", "old")
        assert (mp / "ok.txt").read_text() == "ok\n"
        for path in ("x.bin", "xbig.bin"):
            with pytest.raises(OSError) as caught:
                (mp / path).read_bytes()
            assert caught.value.errno == 5  # EIO
        mlgitfs(home, "unmount", str(mp))
        mp = mounter("ds@main", "rw")  # a branch mount's base content: judged too
        assert (mp / "y.bin").read_bytes() == small
        mlgitfs(home, "unmount", str(mp))
        assert "request 11" in _daemon_logs(home)
    for h in (home, a.home):
        report = api.fsck(h, check_remote=True)
        api.close_store(h)
        assert report.clean, report.damage
