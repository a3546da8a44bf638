"""Erase (issue 16 item 5, the local store): a marker written into an erased file is in no
file of the store afterwards (segments, chunk cache, LMDB), read as raw bytes; the same bytes
held by a file not erased stay; reading the erased file names the erasure (exit 35; EIO in a
mount, the erasure in the daemon log); fsck is clean and counts the erased files.

The markers sit in random bytes: zstd cannot compress such a block, so it stores it raw and
the marker is searchable in the segment files as written (the test first finds each marker
there, so an absence afterwards means something)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.errors import FileErased
from mlgitfs.meta import erasures
from mlgitfs.meta.erasures import ErasureRecord
from mlgitfs.repo import erase as erase_mod
from mlgitfs.repo.erasegate import ErasureGate
from mlgitfs.store.facade import Store
from tests.conftest import Cli, write_tree
from tests.test_cli_refs import _id
from tests.wmount import Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason

__all__ = ["mounter"]


def _holding(home: Path, marker: bytes) -> list[str]:
    """The store's files whose raw bytes contain `marker`."""
    out = []
    for d, _, names in os.walk(home):
        for n in names:
            p = Path(d) / n
            if p.is_file() and marker in p.read_bytes():
                out.append(str(p.relative_to(home)))
    return out


def _secret(marker: bytes, size: int) -> bytes:
    half = size // 2
    return os.urandom(half) + marker + os.urandom(size - half)


def test_erase_removes_the_bytes_keeps_shared_ones_and_names_itself(
    home: Path, cli: Cli, tmp_path: Path, mounter: Mounter
) -> None:
    old_m, new_m, kept_m = b"MARKER-OLD-7f3a9c", b"MARKER-NEW-51be20", b"MARKER-KEPT-c0ffee"
    kept = _secret(kept_m, 200_000)
    src = write_tree(tmp_path / "src", {"secret.csv": _secret(old_m, 150_000),
                                        "keep.csv": kept, "notes.txt": "fine\n"})  # fmt: skip
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "v1")
    big = _secret(new_m, 5 << 20)  # chunked: a manifest and several chunks
    (src / "secret.csv").write_bytes(big)
    cli("import", "ds", str(src), "-m", "v2")
    cli("init", "other", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "other", str(write_tree(tmp_path / "o", {"twin.csv": kept})), "-m", "o")
    for m in (old_m, new_m, kept_m):
        assert _holding(home, m), f"{m!r} not findable before the erase: the test means nothing"
    head, first = _id(cli, "ds"), _id(cli, "ds~1")

    # default: the head's contents of the paths, from every version that holds them there
    out = cli("erase", "ds", "secret.csv", "keep.csv", "-m", "GDPR request 42", "--yes",
              "--json").stdout  # fmt: skip
    res = json.loads(out)
    assert res["erasure"] == 1 and res["why"] == "GDPR request 42" and res["versions"] == 2
    assert sorted(p for p, _ in res["files"]) == ["keep.csv", "secret.csv"]
    api.close_store(home)
    assert _holding(home, new_m) == []
    assert _holding(home, old_m), "v1's secret.csv was not erased (not the head's content)"
    assert _holding(home, kept_m), "other:twin.csv holds keep.csv's bytes: they stay"
    err = cli("cat", "ds:secret.csv", code=35).stderr
    assert f"ds@{head[:12]}:secret.csv" in err and "erasure 1" in err
    assert "GDPR request 42" in err and "secret.csv, keep.csv" in err
    assert cli("cat", "ds~1:secret.csv").stdout_bytes[:150_000].count(old_m) == 1
    assert cli("cat", "other:twin.csv").stdout_bytes == kept
    # judged by occurrence: erased, though its bytes stay here (another file's too)
    assert "erasure 1" in cli("cat", "ds:keep.csv", code=35).stderr
    assert cli("cat", "ds:notes.txt").stdout == "fine\n"
    assert "erasure 1" in cli("export", "ds", str(tmp_path / "ex"), code=35).stderr
    assert _id(cli, "ds") == head and _id(cli, "ds~1") == first  # history unchanged
    sizes = {e["path"]: e["size"] for e in json.loads(cli("ls", "ds", "--json").stdout)}
    assert sizes["secret.csv"] == len(big)

    # --all-versions: every content the path ever had
    cli("erase", "ds", "secret.csv", "--all-versions", "-m", "all of it", "--yes")
    api.close_store(home)
    assert _holding(home, old_m) == [] and _holding(home, new_m) == []
    assert "erasure 2" in cli("cat", "ds~1:secret.csv", code=35).stderr
    listed = json.loads(cli("erasures", "--json").stdout)
    assert [(r["erasure"], r["why"]) for r in listed] == [(1, "GDPR request 42"), (2, "all of it")]

    report = api.fsck(home)
    api.close_store(home)
    assert report.clean, report.damage
    assert report.erasures == 2 and report.erased == 2  # ds:secret.csv (v2), ds~1:secret.csv
    assert "2 erased files (2 erasures): clean" in cli("fsck").stderr
    cli("gc")  # a later gc keeps what it must and finds nothing more to remove
    assert cli("cat", "other:twin.csv").stdout_bytes == kept
    assert _holding(home, kept_m)

    if fuse_skip_reason() is not None:
        return
    api.close_store(home)
    mp = mounter(f"ds@{head}", "erased")
    assert (mp / "notes.txt").read_text() == "fine\n"
    with pytest.raises(OSError) as caught:
        (mp / "secret.csv").read_bytes()
    assert caught.value.errno == 5  # EIO
    mlgitfs(home, "unmount", str(mp))
    logs = [p.read_text() for p in (home / "mounts").rglob("*.log")]
    assert any("erasure 1" in t and "secret.csv" in t for t in logs)


def test_erase_refuses_bad_input_and_changes_nothing(home: Path, cli: Cli, tmp_path: Path) -> None:
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(write_tree(tmp_path / "s", {"a.txt": "a\n"})), "-m", "v1")
    assert "no file nope.txt" in cli("erase", "ds", "nope.txt", "--yes", code=4).stderr
    cli("erase", "ds", "a.txt", code=1, input=b"n\n")  # declined at the question
    cli("erase", "nosuch", "a.txt", "--yes", code=3)
    assert "apart" in cli("erase", "ds:a.txt", "a.txt", "--yes", code=2).stderr
    assert json.loads(cli("erasures", "--json").stdout) == []
    assert cli("cat", "ds:a.txt").stdout == "a\n"


def test_erase_killed_after_its_record_is_finished_by_gc(
    home: Path, cli: Cli, tmp_path: Path
) -> None:
    """Killed between the record and its gc (the record written, no gc run): the record
    stands, fsck counts the file as erased only once its bytes are gone, and `gc --threshold 1`
    removes them; the same bytes at another path of the same repo, added later, stay."""
    marker, twin_m = b"MARKER-KILLED-9d1e", b"MARKER-TWIN-77aa01"
    secret, twin = _secret(marker, 120_000), _secret(twin_m, 90_000)
    src = write_tree(tmp_path / "src", {"a/secret.bin": secret, "twin.bin": twin})
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "v1")
    store = Store.open(home)
    plan = erase_mod.plan(store, "ds", ["a", "twin.bin"], all_versions=False, why="test")
    with store.env.write() as txn:
        erasures.add(txn, plan.record)  # what a kill right after step 1 leaves
    api.close_store(home)
    (src / "copy.bin").write_bytes(twin)  # same bytes, a path not erased, a later commit
    (src / "a" / "secret.bin").unlink()
    cli("import", "ds", str(src), "-m", "v2")
    assert _holding(home, marker)
    report = api.fsck(home)
    api.close_store(home)
    assert report.clean and report.erasures == 1 and report.erased == 0  # bytes still here
    cli("gc", "--threshold", "1")
    api.close_store(home)
    assert _holding(home, marker) == []
    assert _holding(home, twin_m), "ds:copy.bin (v2) holds twin.bin's bytes: they stay"
    assert cli("cat", "ds:copy.bin").stdout_bytes == twin
    assert "erasure 1" in cli("cat", "ds~1:a/secret.bin", code=35).stderr
    report = api.fsck(home)
    api.close_store(home)
    assert report.clean and report.erased == 1  # ds~1:a/secret.bin


def test_writable_mount_names_the_erasure(
    home: Path, cli: Cli, tmp_path: Path, mounter: Mounter
) -> None:
    """A read of an erased file in a writable mount is EIO with the erasure in the daemon log,
    as in a read-only mount; the mount's other files read and write as usual."""
    if (why := fuse_skip_reason()) is not None:
        pytest.skip(why)
    marker = b"MARKER-WRITABLE-5e61"
    src = write_tree(tmp_path / "src", {"d/secret.bin": _secret(marker, 80_000), "ok.txt": "ok\n"})
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "v1")
    cli("erase", "ds", "d", "-m", "licence withdrawn", "--yes")
    api.close_store(home)
    mp = mounter("ds@main", "rw")
    assert (mp / "ok.txt").read_text() == "ok\n"
    with pytest.raises(OSError) as caught:
        (mp / "d" / "secret.bin").read_bytes()
    assert caught.value.errno == 5  # EIO
    (mp / "new.txt").write_text("new\n")
    assert (mp / "new.txt").read_text() == "new\n"
    mlgitfs(home, "unmount", str(mp))
    logs = "\n".join(p.read_text() for p in (home / "mounts").rglob("*.log"))
    line = next(t for t in logs.splitlines() if "erasure 1" in t)
    assert "d/secret.bin" in line and "licence withdrawn" in line
    assert _holding(home, marker) == []


def test_the_gate_judges_a_read_by_occurrence(tmp_path: Path) -> None:
    """An erased occurrence is (commit, path, file id): the same file id at another path,
    or in a version the record does not name, is not erased; a path not known (a branch
    mount's file of unknown origin) errs toward erased. The gate sees a record added after
    it was made (another process's fetch) at its next judgement."""
    cli = Cli(tmp_path / "s")
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    store = Store.open(cli.home)
    gate = ErasureGate(store.env)
    c1, c2, fid, other = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32, b"\x04" * 32
    assert gate.erasure(c1, b"d/a.bin", fid) is None  # no record: nothing erased
    rec = ErasureRecord(0, 1_700_000_000 * 10**9, "ann@host", "request 5", "ds", ("d",),
                        frozenset({(b"d/a.bin", fid)}), frozenset({c1}))  # fmt: skip
    with store.env.write() as txn:
        erasures.add(txn, rec)
    found = gate.erasure(c1, b"d/a.bin", fid)
    assert found is not None and found.seq == 1 and found.why == "request 5"
    assert gate.erasure(c2, b"d/a.bin", fid) is None  # a version the record does not name
    assert gate.erasure(c1, b"e/a.bin", fid) is None  # the same bytes at another path
    assert gate.erasure(c1, b"d/a.bin", other) is None  # other contents at that path
    assert gate.erasure(c1, None, fid) is not None and gate.erasure(c1, None, other) is None
    with pytest.raises(FileErased) as caught:
        gate.check("ds", c1, b"d/a.bin", fid)
    assert caught.value.exit_code == 35
    assert f"ds@{c1.hex()[:12]}:d/a.bin" in caught.value.message
    assert "erasure 1 by ann@host" in caught.value.message
    gate.check("ds", c2, b"d/a.bin", fid)  # not erased: nothing raised
    api.close_store(cli.home)
