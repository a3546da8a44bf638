"""`mlgitfs merge` with a `rows` rule, end to end: a labels CSV and a Parquet table merged
row by row; a cell changed two ways is a conflict named by key and column; a table that
breaks the rules is a clear error that changes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.merge.parquet import read_rows, write_rows
from tests.conftest import Cli, write_tree
from tests.test_cli_merge import cat, commit_on

RULES = (
    '[[rule]]\npath = "labels/*.csv"\nstrategy = "rows"\nkey = ["image_id"]\n\n'
    '[[rule]]\npath = "*.parquet"\nstrategy = "rows"\nkey = ["id"]\n'
)
LABELS = "image_id,label,note\n" + "".join(f'img{i:03d},cat,"a, b"\n' for i in range(200))


@pytest.fixture
def ds(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(
        tmp_path / "base",
        {".mlgitfs/merge.toml": RULES, "labels/train.csv": LABELS, "README": "r\n"},
    )
    table = write_rows(["id", "label"], [{"id": str(i), "label": "x"} for i in range(5)])
    (src / "scores.parquet").write_bytes(table)
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "base")
    cli("branch", "ds@b", "ds@main")


def test_rows_merge_by_key_then_a_cell_conflict(cli: Cli, ds: None, tmp_path: Path) -> None:
    ours = LABELS.replace("img003,cat", "img003,dog").replace("img150,cat", "img150,owl")
    theirs = LABELS.replace("img010,cat", "img010,cow") + "img999,emu,\n"
    theirs = theirs.replace('img100,cat,"a, b"\n', "")
    commit_on(cli, tmp_path, "main", {"labels/train.csv": ours})
    commit_on(cli, tmp_path, "b", {"labels/train.csv": theirs})
    out = json.loads(cli("merge", "ds@b", "--into", "ds@main", "--json").stdout)
    assert out["status"] == "merged"
    want = (
        LABELS.replace("img003,cat", "img003,dog")
        .replace("img150,cat", "img150,owl")
        .replace("img010,cat", "img010,cow")
        .replace('img100,cat,"a, b"\n', "")
        + "img999,emu,\n"
    )
    assert cat(cli, "ds@main:labels/train.csv") == want.encode()
    assert len(api.log(cli.home, "ds@main", limit=1)[0].parents) == 2

    # the same cell changed two ways on two new branches: a conflict by key and column
    cli("branch", "ds@c", "ds@main")
    commit_on(cli, tmp_path, "main", {"labels/train.csv": want.replace("img007,cat", "img007,elk")})
    commit_on(cli, tmp_path, "c", {"labels/train.csv": want.replace("img007,cat", "img007,yak")})
    head = api.show(cli.home, "ds@main").id
    res = cli("merge", "ds@c", "--into", "ds@main", "--json", code=23)
    [conflict] = json.loads(res.stdout)["conflicts"]
    assert conflict["path"] == "labels/train.csv" and conflict["kind"] == "rows"
    assert "key img007, column 'label': base 'cat', ours 'elk', theirs 'yak'" in conflict["detail"]
    assert api.show(cli.home, "ds@main").id == head
    text = cli("merge", "ds@c", "--into", "ds@main", code=23)
    assert "img007" in text.stdout + text.stderr


def test_parquet_rows_merge(cli: Cli, ds: None, tmp_path: Path) -> None:
    rows = [{"id": str(i), "label": "x"} for i in range(5)]
    mine = [dict(r, label="m") if r["id"] == "1" else r for r in rows]
    other = [dict(r, label="t") if r["id"] == "3" else r for r in rows]
    other.append({"id": "9", "label": "n"})
    commit_on(cli, tmp_path, "main", {"scores.parquet": write_rows(["id", "label"], mine)})
    commit_on(cli, tmp_path, "b", {"scores.parquet": write_rows(["id", "label"], other)})
    cli("merge", "ds@b", "--into", "ds@main")
    _, got = read_rows(cat(cli, "ds@main:scores.parquet"))
    assert [(r["id"], r["label"]) for r in got] == [
        ("0", "x"), ("1", "m"), ("2", "x"), ("3", "t"), ("4", "x"), ("9", "n")
    ]  # fmt: skip


def test_duplicate_key_is_an_error_that_changes_nothing(cli: Cli, ds: None, tmp_path: Path) -> None:
    commit_on(cli, tmp_path, "main", {"labels/train.csv": LABELS.replace("img001,cat", "img001,x")})
    commit_on(cli, tmp_path, "b", {"labels/train.csv": LABELS + 'img002,dog,""\n'})
    head = api.show(cli.home, "ds@main").id
    res = cli("merge", "ds@b", "--into", "ds@main", code=32)
    assert "img002" in res.stderr and "twice in theirs" in res.stderr
    assert api.show(cli.home, "ds@main").id == head


def test_merge_table_on_files(cli: Cli, tmp_path: Path) -> None:
    """`mlgitfs merge-table` on plain files: a clean merge written with -o; conflicts listed,
    written as a table with --conflicts, exit 23 and no output."""
    base = tmp_path / "base.csv"
    ours = tmp_path / "ours.csv"
    theirs = tmp_path / "theirs.csv"
    base.write_text("id;label\r\n1;cat\r\n2;dog\r\n")
    ours.write_text("id;label\r\n1;lion\r\n2;dog\r\n")
    theirs.write_text("id;label\r\n1;cat\r\n2;wolf\r\n3;emu\r\n")
    out = tmp_path / "merged.csv"
    r = json.loads(
        cli(
            "merge-table", str(base), str(ours), str(theirs), "-k", "id", "-o", str(out), "--json"
        ).stdout
    )
    assert r["merged"] and r["rows_changed"] == 2
    assert out.read_bytes() == b"id;label\r\n1;lion\r\n2;wolf\r\n3;emu\r\n"
    theirs.write_text("id;label\r\n1;tiger\r\n2;dog\r\n")
    table = tmp_path / "conflicts.csv"
    out.unlink()
    res = cli(
        "merge-table", str(base), str(ours), str(theirs), "-k", "id", "-o", str(out),
        "--conflicts", str(table), code=23,
    )  # fmt: skip
    assert "key 1, column 'label': base 'cat', ours 'lion', theirs 'tiger'" in res.stdout
    assert not out.exists()
    assert table.read_bytes().decode("utf-8-sig").splitlines() == [
        "id,column,base,ours,theirs,conflict",
        "1,label,cat,lion,tiger,cell",
    ]
    cli("merge-table", str(base), str(ours), str(tmp_path / "none.csv"), "-k", "id", code=9)


def test_merge_table_as_git_merge_driver(tmp_path: Path) -> None:
    """Real git with `mlgitfs merge-table` as the merge driver of a labels CSV: edits of
    neighbouring rows on two branches (a line conflict for git's own merge) merge by key."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    exe = Path(sys.executable).parent / "mlgitfs"
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}
    repo = tmp_path / "repo"
    repo.mkdir()

    def g(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        who = ["-c", "user.name=t", "-c", "user.email=t@t"]
        return subprocess.run(
            [git, *who, *args], cwd=repo, env=env, text=True, capture_output=True, check=check
        )

    g("init", "-q", "-b", "main")
    g("config", "merge.rows.driver", f"{exe} -q merge-table %O %A %B -k id -o %A --name %P")
    (repo / ".gitattributes").write_text("*.csv merge=rows\n")
    rows = [f"{i},cat\n" for i in range(6)]
    (repo / "labels.csv").write_text("id,label\n" + "".join(rows))
    g("add", ".")
    g("commit", "-q", "-m", "base")
    g("checkout", "-q", "-b", "other")
    (repo / "labels.csv").write_text("id,label\n" + "".join(rows).replace("3,cat", "3,dog"))
    g("commit", "-q", "-am", "other")
    g("checkout", "-q", "main")
    (repo / "labels.csv").write_text("id,label\n" + "".join(rows).replace("2,cat", "2,owl"))
    g("commit", "-q", "-am", "main")
    merged = g("merge", "-q", "--no-edit", "other", check=False)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert (repo / "labels.csv").read_text() == "id,label\n" + "".join(rows).replace(
        "2,cat", "2,owl"
    ).replace("3,cat", "3,dog")
