"""Built-in checks of .mlgitfs/hooks.toml on good and bad content: max-size, paths, table
schemas (CSV, JSON Lines, Parquet) on the changed rows only, images; cached verdicts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.errors import HookRefused
from mlgitfs.meta import db
from tests.conftest import Cli, write_tree

TABLE_CHECK = """
[[check]]
name = "labels-schema"
events = ["pre-commit"]
type = "table"
path = ["labels/*.csv", "labels/*.jsonl", "labels/*.parquet"]
columns = { id = "int", label = "str", score = "float" }
key = ["id"]
"""


def csv_rows(n: int, start: int = 0) -> str:
    return "id,label,score\n" + "".join(f"{i},l{i % 5},{i / 10}\n" for i in range(start, n))


def head(home: Path) -> bytes | None:
    store = api.open_store(home)
    with store.env.read() as txn:
        return db.get_ref(txn, "ds", "heads/main")


def gated(cli: Cli, tmp_path: Path, toml: str, files: dict[str, bytes | str]) -> Path:
    src = write_tree(tmp_path / "src", {".mlgitfs/hooks.toml": toml, **files})
    # mutable: these tests import changed tables again (mutability: test_import_policy.py)
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "v1")
    return src


def refused(cli: Cli, home: Path, src: Path, *needles: str) -> str:
    before = head(home)
    res = cli("import", "ds", str(src), "-m", "bad", code=34)
    assert head(home) == before
    assert "pre-commit check 'labels-schema' failed" in res.stderr or "check '" in res.stderr
    for n in needles:
        assert n in res.stderr, res.stderr
    return res.stderr


def test_csv_schema_good_and_bad(cli: Cli, tmp_path: Path, home: Path) -> None:
    src = gated(cli, tmp_path, TABLE_CHECK, {"labels/a.csv": csv_rows(1000)})
    table = src / "labels/a.csv"
    good = csv_rows(1000).replace("\n500,l0,50.0\n", "\n500,l9,50.5\n") + "1000,new,1.5\n"
    table.write_text(good)
    res = cli("import", "ds", str(src), "-m", "good")
    assert "pre-commit check labels-schema: passed" in res.stderr
    # A wrong type, an empty key, a key that an unchanged row holds: each named.
    bad = good.replace("\n7,l2,0.7\n", "\n7,l2,high\n").replace("\n8,l3,0.8\n", "\n,l3,0.8\n")
    bad += "12,again,0.1\n"
    table.write_text(bad)
    err = refused(
        cli, home, src,
        "labels/a.csv line 9: score = 'high' is not float",
        "labels/a.csv line 10: empty key column 'id'",
        "key (id) = (12) is not unique",
    )  # fmt: skip
    assert "line 2:" not in err  # only changed rows are reported
    # A missing column refuses at the header.
    table.write_text("id,label\n1,a\n")
    refused(cli, home, src, "labels/a.csv: no column score")


def test_changed_rows_only(cli: Cli, tmp_path: Path, home: Path) -> None:
    """A row that broke the schema before the check existed is not blamed on a change."""
    old = csv_rows(50).replace("\n3,l3,0.3\n", "\n3,l3,bad\n")
    src = gated(cli, tmp_path, "", {"labels/a.csv": old})
    (src / ".mlgitfs/hooks.toml").write_text(TABLE_CHECK)
    cli("import", "ds", str(src), "-m", "add the check")  # not gated: the head has none
    (src / "labels/a.csv").write_text(old + "50,l0,5.0\n")
    cli("import", "ds", str(src), "-m", "append a good row")
    (src / "labels/b.csv").write_text(old)  # a new table: every row is a change
    refused(cli, home, src, "labels/b.csv line 5: score = 'bad' is not float")


def test_jsonl_schema(cli: Cli, tmp_path: Path, home: Path) -> None:
    rows = [{"id": i, "label": f"l{i}", "score": i / 2} for i in range(100)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    src = gated(cli, tmp_path, TABLE_CHECK, {"labels/a.jsonl": text})
    (src / "labels/a.jsonl").write_text(
        text + json.dumps({"id": 100, "label": "x", "score": 3}) + "\n"
    )
    cli("import", "ds", str(src), "-m", "good: an int is a float")
    bad = text + json.dumps({"id": "101", "label": "x", "score": 1.0}) + "\n"
    bad += json.dumps({"id": 5, "label": "dup", "score": 1.0}) + "\n"
    bad += json.dumps({"id": 102, "score": 1.0}) + "\n"
    (src / "labels/a.jsonl").write_text(bad)
    refused(
        cli, home, src,
        "id = '\"101\"' is not int", "key (id) = (5) is not unique", "no field 'label'",
    )  # fmt: skip


def test_parquet_schema(cli: Cli, tmp_path: Path, home: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")

    def write_rows(cols: list[str], rows: list[dict[str, object]]) -> bytes:
        buf = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(rows), buf)
        return bytes(buf.getvalue().to_pybytes())

    cols = ["id", "label", "score"]
    rows = [{"id": i, "label": f"l{i}", "score": i / 2} for i in range(200)]
    src = gated(cli, tmp_path, TABLE_CHECK, {"labels/a.parquet": write_rows(cols, rows)})
    more = [*rows, {"id": 200, "label": "x", "score": 1.0}]
    (src / "labels/a.parquet").write_bytes(write_rows(cols, more))
    cli("import", "ds", str(src), "-m", "good")
    bad = [*more, {"id": 3, "label": "dup", "score": 1.0}, {"id": None, "label": "y", "score": 2.0}]
    (src / "labels/a.parquet").write_bytes(write_rows(cols, bad))
    refused(cli, home, src, "key (id) = (3) is not unique", "empty key column 'id'")
    strings = [{"id": str(r["id"]), "label": r["label"], "score": r["score"]} for r in more]
    (src / "labels/a.parquet").write_bytes(write_rows(cols, strings))
    refused(cli, home, src, "id = '0' is not int")  # Parquet's types are its own: no parsing


def test_max_size_and_paths(cli: Cli, tmp_path: Path, home: Path) -> None:
    toml = """
[[check]]
name = "small"
type = "max-size"
size = "1K"
paths = ["data/**"]

[[check]]
name = "layout"
type = "paths"
allow = ["data/**", "labels/*.csv", ".mlgitfs/*"]
forbid = ["**/*.tmp"]
"""
    src = gated(cli, tmp_path, toml, {"data/a.bin": b"x" * 10})
    (src / "data/b.bin").write_bytes(b"y" * 1024)
    cli("import", "ds", str(src), "-m", "exactly the limit")
    (src / "data/c.bin").write_bytes(b"z" * 1025)
    res = cli("import", "ds", str(src), "-m", "too big", code=34)
    assert "check 'small' failed" in res.stderr and "data/c.bin: 1025 bytes" in res.stderr
    (src / "data/c.bin").unlink()
    (src / "notes.md").write_text("stray")
    res = cli("import", "ds", str(src), "-m", "stray", code=34)
    assert "notes.md: matches no allowed glob" in res.stderr
    (src / "notes.md").unlink()
    (src / "data/x.tmp").write_text("t")
    res = cli("import", "ds", str(src), "-m", "tmp", code=34)
    assert "data/x.tmp: matches a forbidden glob" in res.stderr


def test_images(cli: Cli, tmp_path: Path, home: Path) -> None:
    toml = '[[check]]\nname = "images"\ntype = "image"\npaths = ["img/*.png"]\n'
    src = gated(cli, tmp_path, toml, {"img/a.png": b"not yet"})
    (src / "img/b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    try:
        from PIL import Image
    except ImportError:
        res = cli("import", "ds", str(src), "-m", "no pillow")
        assert "skipped: Pillow is not installed (1 image(s) unchecked)" in res.stderr
        return
    res = cli("import", "ds", str(src), "-m", "broken", code=34)
    assert "img/b.png: does not decode" in res.stderr
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    (src / "img/b.png").write_bytes(buf.getvalue())
    cli("import", "ds", str(src), "-m", "good")


def test_check_verdicts_are_cached(cli: Cli, tmp_path: Path, home: Path) -> None:
    src = gated(cli, tmp_path, TABLE_CHECK, {"labels/a.csv": csv_rows(100)})
    (src / "labels/a.csv").write_text(csv_rows(100) + "100,x,nope\n")
    first = refused(cli, home, src, "is not float")
    assert "cached" not in first
    second = refused(cli, home, src, "is not float")
    assert "(cached result)" in second
    with pytest.raises(HookRefused):
        api.import_dir(home, "ds", src, "again")


def test_bad_hooks_file_cannot_be_committed(cli: Cli, tmp_path: Path, home: Path) -> None:
    """A hooks file that does not parse would stop every later commit: it is refused as the
    candidate's, --no-verify or not, and nothing is committed."""
    src = gated(cli, tmp_path, "", {"a": "1"})
    before = head(home)
    for toml, needle in [
        ('[[check]]\ntype = "nope"\n', "type must be one of"),
        ('[[check]]\ntype = "table"\npath = "*.csv"\ncolumns = {a = "date"}\n', "columns maps"),
        ('[[check]]\ntype = "max-size"\nsize = "lots"\n', "check 'check-1'"),
        ('[[check]]\ntype = "paths"\n', "names allow or forbid"),
        ('[[branch]]\npattern = "main"\nallow_skip = "no"\n', "allow_skip is true or false"),
        ('[[hook]]\nname = "x"\nevents = ["pre-comit"]\ncommand = "true"\n', "pre-comit"),
        ("[[hook]\n", "not valid TOML"),
    ]:
        (src / ".mlgitfs/hooks.toml").write_text(toml)
        res = cli("import", "ds", str(src), "-m", "rules", "--no-verify", code=2)
        assert needle in res.stderr and ".mlgitfs/hooks.toml" in res.stderr, res.stderr
        assert head(home) == before
