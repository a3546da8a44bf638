"""Row-level diffs of tables (`diff --rows`): against a reference over key-to-row dicts for
CSV, JSONL and Parquet (hypothesis), then through the library and the CLI (text, --json,
--format csv, --stat), with a renamed table, header changes and duplicate keys."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgitfs import api
from mlgitfs.errors import DuplicateKey, MissingKeyColumn
from mlgitfs.merge.jsonl import canonical
from mlgitfs.merge.table import ABSENT, Cell
from mlgitfs.repo.rowdiff import RowsDiffed, diff_table
from tests.conftest import Cli, write_tree

Table = dict[str, dict[str, Any]]  # key → row (column → value; a missing column: no cell)

# quoted commas, quotes and newlines, unicode, empty cells
value = st.text(alphabet=st.sampled_from(list('ab,"\n é雪🙂')), max_size=6)
keys = st.lists(st.text(alphabet="0123456789xyz", min_size=1, max_size=3), unique=True)


def _csv(columns: list[str], table: Table, reverse: bool, delimiter: str = ",") -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n", delimiter=delimiter)
    w.writerow(columns)
    for k in sorted(table, reverse=reverse):
        w.writerow([table[k].get(c, "") for c in columns])
    return out.getvalue().encode()


def _jsonl(table: Table, reverse: bool) -> bytes:
    return b"".join(
        json.dumps(table[k], ensure_ascii=False).encode() + b"\n"
        for k in sorted(table, reverse=reverse)
    )


def _parquet(columns: list[str], table: Table, reverse: bool) -> bytes:
    from mlgitfs.merge.parquet import write_rows

    return write_rows(columns, [table[k] for k in sorted(table, reverse=reverse)])


def reference(
    old: Table, new: Table, common: list[str] | None, cell: Any
) -> dict[tuple[str, str], dict[str, tuple[Cell, Cell]]]:
    """(change, key) → column → (before, after), over the dicts alone."""

    def cells(a: dict[str, Any], b: dict[str, Any], cols: list[str]) -> dict[str, Any]:
        got = {c: (cell(a, c), cell(b, c)) for c in cols}
        return {c: v for c, v in got.items() if v[0] != v[1]}

    out: dict[tuple[str, str], dict[str, tuple[Cell, Cell]]] = {}
    for k, row in new.items():
        if k not in old:
            out[("added", k)] = cells({}, row, list(row))
        else:
            cols = common if common is not None else list(row) + [c for c in old[k] if c not in row]
            changed = cells(old[k], row, cols)
            if changed:
                out[("changed", k)] = changed
    for k, row in old.items():
        if k not in new:
            out[("removed", k)] = cells(row, {}, list(row))
    return out


def _got(d: RowsDiffed) -> dict[tuple[str, str], dict[str, tuple[Cell, Cell]]]:
    out = {}
    for r in d.rows:
        k = r.key[0]
        k = json.loads(k) if isinstance(k, str) and k.startswith('"') else k
        out[(r.change, str(k))] = {c.column: (c.before, c.after) for c in r.cells}
    return out


def _tables(draw: st.DrawFn) -> tuple[list[str], list[str], Table, Table]:
    old_cols = ["id", *draw(st.sampled_from([["a"], ["a", "b"], ["b", "a"], ["a", "c"]]))]
    new_cols = ["id", *draw(st.sampled_from([["a"], ["a", "b"], ["b"], ["c", "a"]]))]
    ks = draw(keys)
    old = {
        k: {"id": k, **{c: draw(value) for c in old_cols[1:]}} for k in ks if draw(st.booleans())
    }
    new: Table = {}
    for k in ks:
        if draw(st.booleans()):
            row = {"id": k}
            for c in new_cols[1:]:
                same = k in old and c in old[k] and draw(st.booleans())
                row[c] = old[k][c] if same else draw(value)
            new[k] = row
    return old_cols, new_cols, old, new


tables = st.composite(_tables)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(t=tables(), reverse=st.booleans(), fmt=st.sampled_from(["csv", "tsv", "parquet"]))
def test_fixed_header_tables_match_the_reference(
    t: tuple[list[str], list[str], Table, Table], reverse: bool, fmt: str
) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    old_cols, new_cols, old, new = t

    def write(cols: list[str], table: Table, rev: bool) -> bytes:
        if fmt == "parquet":
            return _parquet(cols, table, rev)
        return _csv(cols, table, rev, "\t" if fmt == "tsv" else ",")

    path = f"t.{fmt}"
    got = diff_table(
        path, write(old_cols, old, False), write(new_cols, new, reverse), ["id"], ("A", "B")
    )
    common = [c for c in new_cols if c in old_cols]
    want = reference(old, new, common, lambda r, c: r[c] if r and c in r else ABSENT)
    if fmt != "parquet":  # an added or removed row has every column of its header, empty or not
        want = {
            ch: {
                c: v
                for c, v in cells.items()
                if ch[0] == "changed" or v != ("", ABSENT) and v != (ABSENT, "")
            }
            for ch, cells in want.items()
        }
        got_map = {
            ch: {
                c: v
                for c, v in cells.items()
                if ch[0] == "changed" or v != ("", ABSENT) and v != (ABSENT, "")
            }
            for ch, cells in _got(got).items()
        }
    else:
        got_map = _got(got)
    assert got_map == want
    assert got.columns_added == tuple(c for c in new_cols if c not in old_cols)
    assert got.columns_removed == tuple(c for c in old_cols if c not in new_cols)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(t=tables(), reverse=st.booleans(), drop=st.booleans())
def test_jsonl_matches_the_reference(
    t: tuple[list[str], list[str], Table, Table], reverse: bool, drop: bool
) -> None:
    _, _, old, new = t
    if drop:  # rows carry their own fields: some lose one
        new = {k: {c: v for c, v in r.items() if c != "a" or len(k) % 2} for k, r in new.items()}
    got = diff_table("t.jsonl", _jsonl(old, False), _jsonl(new, reverse), ["id"], ("A", "B"))
    want = reference(old, new, None, lambda r, c: canonical(r[c]) if r and c in r else ABSENT)
    assert _got(got) == want


def test_a_table_added_or_deleted_is_every_row_and_errors_are_clear() -> None:
    new = b"id,v\n1,x\n2,y\n"
    added = diff_table("t.csv", None, new, ["id"], ("A", "B"))
    assert [(r.change, r.key) for r in added.rows] == [("added", ("1",)), ("added", ("2",))]
    gone = diff_table("t.csv", new, None, ["id"], ("A", "B"))
    assert [(r.change, r.key) for r in gone.rows] == [("removed", ("1",)), ("removed", ("2",))]
    with pytest.raises(DuplicateKey, match=r"key \(2\) twice in B \(line 3 and line 4\)"):
        diff_table("t.csv", new, b"id,v\n1,x\n2,z\n2,w\n", ["id"], ("A", "B"))
    # the added key is one B also holds unchanged
    with pytest.raises(DuplicateKey, match=r"key \(1\) twice in B"):
        diff_table("t.csv", new, b"id,v\n1,x\n2,y\n1,q\n", ["id"], ("A", "B"))
    with pytest.raises(DuplicateKey, match=r"key \(1\) twice in A"):
        diff_table("t.csv", b"id,v\n1,x\n2,y\n1,q\n", new, ["id"], ("A", "B"))
    with pytest.raises(MissingKeyColumn, match="no key column nope in A's header"):
        diff_table("t.csv", new, new + b"3,z\n", ["nope"], ("A", "B"))
    with pytest.raises(MissingKeyColumn, match="line 2 of B has no key 'id'"):
        diff_table("t.jsonl", b'{"id": 1}\n', b'{"id": 1}\n{"v": 2}\n', ["id"], ("A", "B"))


def test_diff_rows_through_the_library_and_the_cli(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(
        tmp_path / "src",
        {
            ".mlgitfs/merge.toml": '[[rule]]\npath = "*.csv"\nstrategy = "rows"\nkey = ["id"]\n',
            "labels.csv": 'id,label\n1,cat\n2,"a,b"\n3,dog\n',
            "meta.jsonl": '{"id": 1, "w": 2}\n',
            "moved.csv": "id,x\n1,2\n",
            "notes.txt": "hello\n",
        },
    )
    cli("init", "ds", "--kind", "labels", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "first")
    (src / "labels.csv").write_text('id,label,score\n1,cat,\n2,"a,""b""\nc",0.5\n4,émeu,1\n')
    (src / "meta.jsonl").write_text('{"id": 1, "w": 3}\n{"id": 2}\n')
    (src / "moved.csv").rename(src / "kept.csv")
    (src / "notes.txt").write_text("bye\n")
    cli("import", "ds", str(src), "-m", "second")
    home = cli.home

    lib = api.diff_rows(home, "ds@main~1", "ds@main", ["labels.csv"])
    (t,) = lib.tables
    assert (t.path, t.key_columns, t.columns_added, t.columns_removed) == (
        "labels.csv", ("id",), ("score",), (),
    )  # fmt: skip
    by = {(r.change, r.key): r.cells for r in t.rows}
    assert by[("changed", ("2",))] == (api.CellDiff("label", "a,b", 'a,"b"\nc'),)
    assert ("changed", ("1",)) not in by  # only its new column differs: reported as a column
    assert by[("removed", ("3",))] == (
        api.CellDiff("id", "3", None), api.CellDiff("label", "dog", None),
    )  # fmt: skip
    assert [c.after for c in by[("added", ("4",))]] == ["4", "émeu", "1"]

    out = json.loads(cli("diff", "ds@main~1", "ds@main", "--rows", "--key", "id", "--json").stdout)
    got = {t["path"]: t for t in out["tables"]}
    assert set(got) == {"labels.csv", "meta.jsonl", "kept.csv"}  # notes.txt is no table
    assert got["kept.csv"]["change"] == "renamed" and got["kept.csv"]["old_path"] == "moved.csv"
    assert got["kept.csv"]["rows"] == []
    assert (got["labels.csv"]["added"], got["labels.csv"]["removed"]) == (1, 1)
    assert got["labels.csv"]["changed"] == 1

    err = cli("diff", "ds@main~1", "ds@main", "meta.jsonl", "--rows", code=2).stderr
    assert "meta.jsonl: name the key columns with --key COL" in err
    out = json.loads(
        cli("diff", "ds@main~1", "ds@main", "meta.jsonl", "--rows", "--key", "id", "--json").stdout
    )
    rows = {r["key"][0]: r for r in out["tables"][0]["rows"]}
    assert rows["1"]["cells"] == [{"column": "w", "before": "2", "after": "3"}]
    assert rows["2"]["change"] == "added"

    text = cli("diff", "ds@main~1", "ds@main", "labels.csv", "--rows").stdout.splitlines()
    assert text[0] == "M  labels.csv: 1 added, 1 removed, 1 changed"
    assert text[1] == "   columns +score"
    assert "~  2" in text and "     label: 'a,b' -> 'a,\"b\"\\nc'" in text
    assert "-  3  id='3', label='dog'" in text
    stat = cli("diff", "ds@main~1", "ds@main", "labels.csv", "--rows", "--stat").stdout
    assert stat.splitlines() == text[:2]

    raw = cli("diff", "ds@main~1", "ds@main", "labels.csv", "--rows", "--format", "csv").stdout
    assert raw.startswith("\ufeff")
    sheet = list(csv.reader(io.StringIO(raw[1:], newline="")))
    assert sheet[0] == ["table", "key", "change", "column", "before", "after"]
    assert ["labels.csv", "2", "changed", "label", "a,b", 'a,"b"\nc'] in sheet
    assert ["labels.csv", "3", "removed", "label", "dog", ""] in sheet

    dup = "id,label\n1,cat\n1,dog\n"
    (src / "labels.csv").write_text(dup)
    cli("import", "ds", str(src), "-m", "dup")
    err = cli("diff", "ds@main~1", "ds@main", "labels.csv", "--rows", code=32).stderr
    assert "labels.csv: key (1) twice in ds@main" in err
    err = cli("diff", "ds@main~1", "ds@main", "--rows", "--key", "nope", code=33).stderr
    assert "no key column nope" in err
    assert (
        "--key and --format go with --rows" in cli("diff", "ds", "ds", "--key", "id", code=2).stderr
    )


def test_a_table_renamed_then_changed_is_diffed_against_its_old_path(
    cli: Cli, tmp_path: Path
) -> None:
    pytest.importorskip("pyarrow")
    from mlgitfs.merge.parquet import write_rows

    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "labels.csv").write_text('id,label\n1,cat\n2,"x,\ny"\n')
    (src / "d" / "p.parquet").write_bytes(write_rows(["id", "v"], [{"id": "1", "v": "a"}]))
    cli("init", "ds", "--kind", "labels", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "first")
    (src / "d" / "labels.csv").rename(src / "d" / "train.csv")  # an exact rename ...
    (src / "d" / "p.parquet").rename(src / "d" / "q.parquet")
    cli("import", "ds", str(src), "-m", "rename")
    (src / "d" / "train.csv").write_text('id,label\n1,dog\n2,"x,\ny"\n3,ü\n')  # ... then a change
    q = [{"id": "1", "v": "b"}, {"id": "2", "v": None}]
    (src / "d" / "q.parquet").write_bytes(write_rows(["id", "v"], q))
    cli("import", "ds", str(src), "-m", "relabel")

    got = api.diff_rows(cli.home, "ds@main~2", "ds@main", ["d/train.csv"], ["id"])
    (t,) = got.tables
    assert (t.path, t.change, t.old_path) == ("d/train.csv", "renamed", "d/labels.csv")
    assert {(r.change, r.key): r.cells for r in t.rows} == {
        ("changed", ("1",)): (api.CellDiff("label", "cat", "dog"),),
        ("added", ("3",)): (api.CellDiff("id", None, "3"), api.CellDiff("label", None, "ü")),
    }
    # a sub-directory diff, and the old path as the PATH
    sub = api.diff_rows(cli.home, "ds@main~2:d", "ds@main:d", ["labels.csv"], ["id"])
    assert [(x.path, x.old_path, x.changed, x.added) for x in sub.tables] == [
        ("train.csv", "labels.csv", 1, 1)
    ]
    out = json.loads(cli("diff", "ds@main~2", "ds@main", "--rows", "--key", "id", "--json").stdout)
    pq = {x["path"]: x for x in out["tables"]}["d/q.parquet"]
    assert (pq["change"], pq["old_path"]) == ("renamed", "d/p.parquet")
    rows = {r["key"][0]: r for r in pq["rows"]}
    assert rows["1"]["cells"] == [{"column": "v", "before": "a", "after": "b"}]
    assert rows["2"]["change"] == "added"
    text = cli("diff", "ds@main~2", "ds@main", "d", "--rows", "--key", "id", "--stat").stdout
    assert "R  d/train.csv (from d/labels.csv): 1 added, 0 removed, 1 changed" in text
    # only the exact rename between main~2 and main~1: no row changes
    one = api.diff_rows(cli.home, "ds@main~2", "ds@main~1", None, ["id"])
    assert [(x.path, x.change, x.rows) for x in one.tables] == [
        ("d/q.parquet", "renamed", ()),
        ("d/train.csv", "renamed", ()),
    ]


def test_a_compound_key() -> None:
    old = b"img,crop,label\na,1,cat\na,2,dog\nb,1,cow\n"
    new = b"img,crop,label\na,1,cat\na,2,emu\nb,2,cow\n"
    got = diff_table("t.csv", old, new, ["img", "crop"], ("A", "B"))
    assert [
        (r.change, r.key, [(c.column, c.before, c.after) for c in r.cells]) for r in got.rows
    ] == [
        ("changed", ("a", "2"), [("label", "dog", "emu")]),
        (
            "added",
            ("b", "2"),
            [("img", ABSENT, "b"), ("crop", ABSENT, "2"), ("label", ABSENT, "cow")],
        ),
        (
            "removed",
            ("b", "1"),
            [("img", "b", ABSENT), ("crop", "1", ABSENT), ("label", "cow", ABSENT)],
        ),
    ]
