"""fsspec writes: a file written to REPO@BRANCH:PATH is one commit on that branch at close
(compare-and-swap from the head read at open); a transaction is one commit per branch, or
nothing when it raises; mutability, protected branches, hooks and a writable mount's
uncommitted work refuse as they do for an import or a mount's commit, changing nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from mlgitfs import api
from mlgitfs.errors import (
    BranchProtected,
    ConflictError,
    HookRefused,
    PolicyError,
    UnknownRef,
    UnsafeOperation,
    UsageError,
)
from mlgitfs.fsspec_fs import SPILL
from mlgitfs.meta import db
from tests.conftest import Cli, write_tree
from tests.test_checks import TABLE_CHECK, csv_rows
from tests.wmount import Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason

__all__ = ["mounter"]
needs_fuse = pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason()))


def heads(home: Path, repo: str = "ds") -> dict[str, bytes]:
    store = api.open_store(home)
    with store.env.read() as txn:
        return {r: bytes(c) for r, c in db.list_refs(txn, repo)}


def messages(home: Path, rev: str = "ds@main") -> list[str]:
    return [c.message for c in api.log(home, rev)]


def make(
    tmp_path: Path, home: Path, mutability: str = "mutable", files: dict[str, str] | None = None
) -> fsspec.AbstractFileSystem:
    src = write_tree(tmp_path / "src", files or {"labels.csv": "id,label\n1,cat\n", "a/b.txt": "b"})
    api.init(home, "ds", "dataset", mutability)
    api.import_dir(home, "ds", src, "v1")
    return fsspec.filesystem("mlgitfs", home=str(home), author="Alice <alice@example.org>")


def test_a_written_file_is_one_commit_with_its_author(tmp_path: Path, home: Path, cli: Cli) -> None:
    fs = make(tmp_path, home)
    with fs.open("ds@main:new/notes.txt", "wb") as f:
        f.write(b"first ")
        f.write(b"line\n")
    assert fs.cat("ds@main/new/notes.txt") == b"first line\n"
    (entry,) = json.loads(cli("log", "ds@main", "-n", "1", "--json").stdout)
    assert entry["author"] == "Alice <alice@example.org>"
    assert entry["message"] == "write new/notes.txt"
    assert entry["id"] == fs.last_writes[0].commit.id
    assert fs.info("ds@main/new")["type"] == "directory"
    # text mode through fsspec.open, with a message of its own; append mode
    with fsspec.open("mlgitfs://ds@main/labels.csv", "w", home=str(home), message="relabel") as t:
        t.write("id,label\n1,dog\n")
    with fs.open("ds@main/labels.csv", "ab") as f:
        f.write(b"2,cat\n")
    assert fs.cat("ds@main/labels.csv") == b"id,label\n1,dog\n2,cat\n"
    assert messages(home)[:4] == ["write labels.csv", "relabel", "write new/notes.txt", "v1"]
    # past SPILL, the buffer goes to a temporary file: same bytes, chunked as an import
    big = os.urandom(SPILL * 3 + 12345)
    with fs.open("ds@main/big.bin", "wb", block_size=1 << 20) as f:
        for i in range(0, len(big), 1 << 20):
            f.write(big[i : i + (1 << 20)])
    assert fs.cat("ds@main/big.bin") == big
    assert fs.info("ds@main/big.bin")["size"] == len(big)
    # the same bytes again: nothing changed, no commit
    n = len(messages(home))
    fs.pipe("ds@main/big.bin", big)
    assert len(messages(home)) == n and not fs.last_writes[0].changed
    with pytest.raises(FileExistsError):
        fs.open("ds@main/big.bin", "xb")


def test_pyarrow_writes_and_reads_through_the_filesystem(tmp_path: Path, home: Path) -> None:
    fs = make(tmp_path, home)
    table = pa.table({"id": list(range(1000)), "label": [f"l{i % 7}" for i in range(1000)]})
    pq.write_table(table, "ds@main/data/train.parquet", filesystem=fs)
    assert pq.read_table("ds@main/data/train.parquet", filesystem=fs).equals(table)
    with fs.open("ds@main/data/train.csv", "wb") as f:
        pacsv.write_csv(table, f)
    with fs.open("ds@main/data/train.csv", "rb") as f:
        assert pacsv.read_csv(f).equals(table)
    assert messages(home)[:2] == ["write data/train.csv", "write data/train.parquet"]


def test_pandas_round_trip(tmp_path: Path, home: Path) -> None:
    """Where pandas is installed (it is not a test dependency): to_csv and to_parquet on an
    mlgitfs:// URL commit, read_csv reads back; a strict repo refuses a committed file."""
    pd = pytest.importorskip("pandas")
    make(tmp_path, home, "strict")
    so = {"home": str(home)}
    df = pd.DataFrame({"id": [1, 2], "label": ["cat", "dog"]})
    df.to_csv("mlgitfs://ds@main/new.csv", index=False, storage_options=so)
    df.to_parquet("mlgitfs://ds@main/new.parquet", storage_options=so)
    assert pd.read_csv("mlgitfs://ds@main/new.csv", storage_options=so).equals(df)
    assert pd.read_parquet("mlgitfs://ds@main/new.parquet", storage_options=so).equals(df)
    with pytest.raises(PolicyError, match="ds is strict: labels.csv is committed"):
        df.to_csv("mlgitfs://ds@main/labels.csv", index=False, storage_options=so)
    assert messages(home) == ["write new.parquet", "write new.csv", "v1"]


def test_transaction_is_one_commit_per_branch_or_nothing(tmp_path: Path, home: Path) -> None:
    fs = make(tmp_path, home)
    api.branch_create(home, "ds@dev")
    with fs.transaction:
        with fs.open("ds@main/x.txt", "wb") as f:
            f.write(b"x")
        fs.pipe("ds@main/y.txt", b"y")
        fs.rm("ds@main/a", recursive=True)
        fs.mv("ds@dev/labels.csv", "ds@dev/old/labels.csv")
        fs.pipe("ds@dev/z.txt", b"z")
        assert not fs.exists("ds@main/x.txt")  # nothing is visible before the block ends
    assert messages(home) == ["write x.txt, y.txt and remove a", "v1"]
    assert messages(home, "ds@dev") == ["write old/labels.csv, z.txt and remove labels.csv", "v1"]
    assert sorted(fs.ls("ds@main", detail=False)) == [
        "ds@main/labels.csv",
        "ds@main/x.txt",
        "ds@main/y.txt",
    ]
    assert fs.cat("ds@dev/old/labels.csv") == b"id,label\n1,cat\n"

    before = heads(home)
    with pytest.raises(RuntimeError), fs.transaction:
        fs.pipe("ds@main/lost.txt", b"lost")
        with fs.open("ds@main/big.bin", "wb") as f:
            f.write(os.urandom(SPILL + 1))  # spilled: its temporary file goes too
        raise RuntimeError("stop")
    assert heads(home) == before and not fs._intrans
    # a file whose own block raises is not committed
    with pytest.raises(RuntimeError), fs.open("ds@main/half.txt", "wb") as f:
        f.write(b"half")
        raise RuntimeError("stop")
    assert heads(home) == before and not fs.exists("ds@main/half.txt")
    leftovers = [p for p in os.listdir(os.environ.get("TMPDIR", "/tmp")) if "mlgitfs-write-" in p]
    assert leftovers == []


def test_a_branch_that_moved_since_open_is_a_conflict(tmp_path: Path, home: Path) -> None:
    fs = make(tmp_path, home)
    f = fs.open("ds@main/labels.csv", "wb")
    f.write(b"id,label\n1,mine\n")
    fs.pipe("ds@main/other.txt", b"theirs")  # someone else's commit moves main
    after = heads(home)
    log = api.reflog_show(home, "ds")
    with pytest.raises(ConflictError) as exc:
        f.close()
    assert exc.value.exit_code == 14
    assert "moved since it was read" in exc.value.message
    assert "nothing was committed" in exc.value.message
    assert heads(home) == after and api.reflog_show(home, "ds") == log
    assert fs.cat("ds@main/labels.csv") == b"id,label\n1,cat\n"
    with pytest.raises(ConflictError), fs.transaction:  # the head is read at the first open
        fs.pipe("ds@main/t1.txt", b"1")
        api.branch_create(home, "ds@tmp")
        api.import_dir(home, "ds", write_tree(tmp_path / "s2", {"q": "q"}), "moved")
    assert not fs.exists("ds@main/t1.txt")


@pytest.mark.parametrize("mutability", ["strict", "flexible"])
def test_mutability_refuses_new_content_for_committed_files(
    tmp_path: Path, home: Path, mutability: str
) -> None:
    fs = make(tmp_path, home, mutability)
    before = heads(home)
    with pytest.raises(PolicyError) as exc:
        fs.pipe("ds@main/labels.csv", b"id,label\n1,dog\n")
    assert exc.value.exit_code == 15
    assert f"ds is {mutability}: labels.csv is committed" in exc.value.message
    if mutability == "flexible":
        assert "mlgitfs unlock labels.csv` in a writable mount" in exc.value.message
    # every path is named; the new file goes nowhere
    with pytest.raises(PolicyError) as exc, fs.transaction:
        fs.pipe("ds@main/new.txt", b"new")
        fs.pipe("ds@main/labels.csv", b"other")
        fs.cp("ds@main/labels.csv", "ds@main/a/b.txt")
    assert "write refused for 2 paths" in exc.value.message
    assert "labels.csv" in exc.value.message and "a/b.txt" in exc.value.message
    assert heads(home) == before
    # adding and removing are not content changes; the same content is no change
    fs.pipe("ds@main/new.txt", b"new")
    fs.rm("ds@main/a/b.txt")
    fs.pipe("ds@main/labels.csv", b"id,label\n1,cat\n")
    assert messages(home) == ["remove a/b.txt", "write new.txt", "v1"]


def test_mutable_repo_takes_new_content(tmp_path: Path, home: Path) -> None:
    fs = make(tmp_path, home, "mutable")
    fs.pipe("ds@main/labels.csv", b"id,label\n1,dog\n")
    assert fs.cat("ds@main/labels.csv") == b"id,label\n1,dog\n"


def test_writes_go_to_branches_only(tmp_path: Path, home: Path) -> None:
    fs = make(tmp_path, home)
    api.tag_create(home, "ds@v1")
    before = heads(home)
    commit = before["heads/main"].hex()
    for path, needle in (
        ("ds@v1/x.txt", "is a tag: tags never move"),
        ("ds@tags/v1:x.txt", "names a tag"),
        ("ds@main~0:x.txt", "names a commit"),
        ("ds@main@{0}:x.txt", "names a commit"),
        (f"ds@{commit[:12]}:x.txt", "no branch"),
    ):
        with pytest.raises(UsageError) as exc:
            fs.pipe(path, b"x")
        assert needle in exc.value.message, path
    with pytest.raises(UnknownRef, match="create it first"):
        fs.pipe("ds@nobranch:x.txt", b"x")
    with pytest.raises(UsageError, match="labels.csv is a file, not a directory"):
        fs.pipe("ds@main/labels.csv/x", b"x")
    with pytest.raises(UsageError, match="it is a directory"):
        fs.pipe("ds@main:a", b"x")
    with pytest.raises(FileNotFoundError):
        fs.rm("ds@main/nope.txt")
    with pytest.raises(IsADirectoryError):
        fs.rm("ds@main/a")
    assert heads(home) == before


def test_protected_branches_and_hooks_gate_writes(tmp_path: Path, home: Path) -> None:
    rules = '[[branch]]\npattern = "release"\nprotected = true\n'
    files = {".mlgitfs/hooks.toml": TABLE_CHECK + rules, "labels/a.csv": csv_rows(10)}
    fs = make(tmp_path, home, "mutable", files)
    api.branch_create(home, "ds@release")
    before = heads(home)
    with pytest.raises(BranchProtected) as exc:
        fs.pipe("ds@release/x.txt", b"x")
    assert exc.value.exit_code == 36
    assert "a write through the Python filesystem (fsspec) is refused" in exc.value.message
    with pytest.raises(HookRefused) as refused:
        fs.pipe("ds@main/labels/a.csv", (csv_rows(10) + "10,l0,high\n").encode())
    assert "score = 'high' is not float" in refused.value.message
    assert heads(home) == before
    fs.pipe("ds@main/labels/a.csv", (csv_rows(10) + "10,l0,1.5\n").encode())
    (res,) = fs.last_writes
    assert [(h.name, h.status) for h in res.hooks] == [("labels-schema", "passed")]


@needs_fuse
def test_a_branch_with_uncommitted_mount_work_is_refused(
    tmp_path: Path, home: Path, mounter: Mounter
) -> None:
    fs = make(tmp_path, home)
    api.branch_create(home, "ds@dev")
    api.close_store(home)
    mp = mounter("ds@dev", "dev")
    (mp / "labels.csv").write_text("edited in the mount\n")
    before = heads(home)
    with pytest.raises(UnsafeOperation) as exc:
        fs.pipe("ds@dev/x.txt", b"x")
    assert exc.value.exit_code == 22 and "uncommitted changes" in exc.value.message
    assert heads(home) == before
    fs.pipe("ds@main/x.txt", b"x")  # another branch: unaffected
    mlgitfs(home, "commit", str(mp), "-m", "mount work")
    fs.pipe("ds@dev/x.txt", b"x")  # committed: the branch takes writes again
    assert messages(home, "ds@dev")[:2] == ["write x.txt", "mount work"]
    mlgitfs(home, "unmount", str(mp))
