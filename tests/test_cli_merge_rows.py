"""`mlgitfs merge` with a `rows` rule, end to end: a labels CSV and a Parquet table merged
row by row; a cell changed two ways is a conflict named by key and column; a table that
breaks the rules is a clear error that changes nothing."""

from __future__ import annotations

import json
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
