"""Row-level merge of tables (mlgitfs/merge/rows.py) against a plain reference, and every
conflict and error kind by itself."""

from __future__ import annotations

import csv
import io
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgitfs.errors import DuplicateKey, MissingKeyColumn, TableError, TableParseError
from mlgitfs.merge.parquet import read_rows, write_rows
from mlgitfs.merge.rows import RowConflictKind, merge_table
from tests import rowsref

# --- random tables and edits ----------------------------------------------------------------

CELL = st.one_of(
    st.sampled_from(["", "a", "b", "x,y", 'say "hi"', "two\nlines", "crlf\r\nin", "é漢", " pad "]),
    st.text(alphabet='abc,"\n é', max_size=6),
)


@st.composite
def scenario(draw: st.DrawFn, max_rows: int = 8, max_ops: int = 4) -> dict[str, object]:
    """A base table and two sides made from it by random edits (some the same on both).
    With many rows (a padded column makes them long), ours' and theirs' changes lie far
    apart and the merge reads ours only near theirs' changes."""
    ncols = draw(st.integers(1, 3))
    cols = ["id"] + [f"c{i}" for i in range(ncols)]
    nrows = draw(st.integers(0, max_rows))
    pad = "p" * 60 if max_rows > 8 else ""
    base = [{"id": str(i), **{c: draw(CELL) + pad for c in cols[1:]}} for i in range(nrows)]

    def edit(rows: list[dict[str, str]], columns: list[str], rnd: random.Random) -> tuple:
        rows = [dict(r) for r in rows]
        columns = list(columns)
        for _ in range(draw(st.integers(0, max_ops))):
            op = draw(st.sampled_from(["modify", "delete", "add", "addcol", "dropcol"]))
            if op == "modify" and rows:
                r = rows[draw(st.integers(0, len(rows) - 1))]
                c = draw(st.sampled_from(columns))
                if c != "id":
                    r[c] = draw(CELL)
            elif op == "delete" and rows:
                del rows[draw(st.integers(0, len(rows) - 1))]
            elif op == "add":
                new = {"id": str(draw(st.integers(1000, 1004)))}
                if all(r["id"] != new["id"] for r in rows):
                    rows.append({**{c: draw(CELL) for c in columns}, **new})
            elif op == "addcol":
                name = draw(st.sampled_from(["n1", "n2"]))
                if name not in columns:
                    columns.append(name)
                    for r in rows:
                        r[name] = draw(st.sampled_from(["", "v"]))
            elif op == "dropcol" and len(columns) > 2:
                name = draw(st.sampled_from(columns[1:]))
                columns.remove(name)
                for r in rows:
                    del r[name]
        return rows, columns

    rnd = random.Random(draw(st.integers(0, 1000)))
    shared_rows, shared_cols = edit(base, cols, rnd)
    if draw(st.booleans()):
        ours, ocols = edit(shared_rows, shared_cols, rnd)
    else:
        ours, ocols = edit(base, cols, rnd)
    if draw(st.booleans()):
        theirs, tcols = edit(shared_rows, shared_cols, rnd)
    else:
        theirs, tcols = edit(base, cols, rnd)
    if draw(st.booleans()):
        theirs, tcols = edit(theirs, tcols, rnd)
    return {
        "cols": cols,
        "base": base,
        "ours": (ours, ocols),
        "theirs": (theirs, tcols),
        "key": draw(st.sampled_from([["id"], []])),
        "delimiter": draw(st.sampled_from([",", ";", "\t"])),
        "newline": draw(st.sampled_from(["\n", "\r\n"])),
        "quoting": draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
    }


def to_csv(rows: list[dict[str, str]], cols: list[str], s: dict[str, object]) -> bytes:
    out = io.StringIO()
    w = csv.writer(
        out,
        delimiter=str(s["delimiter"]),
        lineterminator=str(s["newline"]),
        quoting=s["quoting"],  # type: ignore[arg-type]
    )
    w.writerow(cols)
    for r in rows:
        w.writerow([r[c] for c in cols])
    return out.getvalue().encode("utf-8")


def to_jsonl(rows: list[dict[str, str]], cols: list[str], s: dict[str, object]) -> bytes:
    lines = [json.dumps({c: r[c] for c in cols}, ensure_ascii=False) for r in rows]
    return "".join(line + str(s["newline"]) for line in lines).encode("utf-8")


def to_parquet(rows: list[dict[str, str]], cols: list[str], s: dict[str, object]) -> bytes:
    return write_rows(cols, rows)


def check(s: dict[str, object], fmt: str) -> None:
    write = {"csv": to_csv, "jsonl": to_jsonl, "parquet": to_parquet}[fmt]
    ours_rows, ocols = s["ours"]  # type: ignore[misc]
    theirs_rows, tcols = s["theirs"]  # type: ignore[misc]
    b = write(s["base"], s["cols"], s)  # type: ignore[arg-type]
    o = write(ours_rows, ocols, s)
    t = write(theirs_rows, tcols, s)
    key = s["key"]
    assert isinstance(key, list)
    if o == t or b in (t, o):  # a side that changed nothing: the other side's file
        assert merge_table(b, o, t, f"labels.{fmt}", key).data == (t if b == o and o != t else o)
        return

    def parse(data: bytes) -> rowsref.Table:
        if fmt == "csv":
            return rowsref.parse_csv(data, str(s["delimiter"]))
        if fmt == "jsonl":
            return rowsref.parse_jsonl(data)
        cols, rows = read_rows(data)
        return rowsref.Table(cols, rows)

    expected, conflicts = rowsref.merge(parse(b), parse(o), parse(t), key)
    got = merge_table(b, o, t, f"labels.{fmt}", key)
    if expected is None:
        assert got.data is None
        assert {
            (c.kind.value, c.key, c.column, c.base, c.ours, c.theirs) for c in got.conflicts
        } == {_shown(c, fmt) for c in conflicts}
        return
    assert got.conflicts == ()
    assert got.data is not None
    merged = parse(got.data)
    want_rows = expected.rows
    if fmt == "csv":  # an absent cell is written empty
        want_rows = [{c: "" if v is None else v for c, v in r.items()} for r in want_rows]
    if fmt != "jsonl":
        assert merged.columns == expected.columns
    assert merged.rows == want_rows
    if fmt == "csv" and o and o not in (b, t) and b != t:
        assert got.data.endswith(str(s["newline"]).encode())  # ours' line ending kept


def _shown(c: rowsref.Conflict, fmt: str) -> tuple[object, ...]:
    kind, key, column, b, o, t = c
    return (kind, key, column, b, o, t)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(scenario())
def test_csv_against_reference(s: dict[str, object]) -> None:
    check(s, "csv")


@SETTINGS
@given(scenario())
def test_jsonl_against_reference(s: dict[str, object]) -> None:
    check(s, "jsonl")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_parquet_against_reference(s: dict[str, object]) -> None:
    check(s, "parquet")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenario(max_rows=300, max_ops=30), st.sampled_from(["csv", "jsonl"]))
def test_long_tables_against_reference(s: dict[str, object], fmt: str) -> None:
    check(s, fmt)


# --- one case per kind ------------------------------------------------------------------------

BASE = b"id,label,score\n1,cat,0.5\n2,dog,0.7\n3,cow,0.1\n"


def test_clean_merge_of_both_sides() -> None:
    ours = b"id,label,score\n1,CAT,0.5\n2,dog,0.7\n3,cow,0.1\n4,ant,0.2\n"
    theirs = b"id,label,score\n1,cat,0.5\n2,dog,0.9\n5,bee,0.3\n4,ant,0.2\n"
    got = merge_table(BASE, ours, theirs, "l.csv", ["id"])
    assert got.conflicts == ()
    assert got.data == b"id,label,score\n1,CAT,0.5\n2,dog,0.9\n4,ant,0.2\n5,bee,0.3\n"


def test_same_change_on_both_sides_and_column_added() -> None:
    ours = b"id,label,score\n1,cat,0.5\n2,DOG,0.7\n3,cow,0.1\n"
    theirs = b"id,label,score,checked\n1,cat,0.5,y\n2,DOG,0.7,n\n3,cow,0.1,y\n"
    got = merge_table(BASE, ours, theirs, "l.csv", ["id"])
    assert got.data == b"id,label,score,checked\n1,cat,0.5,y\n2,DOG,0.7,n\n3,cow,0.1,y\n"


def test_cell_conflict_reported_by_key_and_column() -> None:
    ours = BASE.replace(b"2,dog", b"2,wolf")
    theirs = BASE.replace(b"2,dog", b"2,fox")
    got = merge_table(BASE, ours, theirs, "l.csv", ["id"])
    assert got.data is None
    [c] = got.conflicts
    assert (c.kind, c.key, c.column, c.base, c.ours, c.theirs) == (
        RowConflictKind.CELL,
        ("2",),
        "label",
        "dog",
        "wolf",
        "fox",
    )
    table = list(csv.reader(io.StringIO(got.conflicts_csv().decode("utf-8-sig"))))
    assert table == [["id", "column", "base", "ours", "theirs", "conflict"],
                     ["2", "label", "dog", "wolf", "fox", "cell"]]  # fmt: skip


def test_delete_against_change_is_a_conflict_both_ways() -> None:
    deleted = b"id,label,score\n1,cat,0.5\n3,cow,0.1\n"
    changed = BASE.replace(b"2,dog,0.7", b"2,dog,0.8")
    got = merge_table(BASE, deleted, changed, "l.csv", ["id"])
    assert [(c.kind, c.key, c.column, c.ours, c.theirs) for c in got.conflicts] == [
        (RowConflictKind.DELETE_MODIFY, ("2",), "score", None, "0.8")
    ]
    got = merge_table(BASE, changed, deleted, "l.csv", ["id"])
    assert [c.kind for c in got.conflicts] == [RowConflictKind.MODIFY_DELETE]


def test_renamed_key_column_is_a_conflict() -> None:
    ours = BASE.replace(b"id,label", b"image_id,label")
    theirs = BASE.replace(b"1,cat", b"1,lion")
    got = merge_table(BASE, ours, theirs, "l.csv", ["id"])
    [c] = got.conflicts
    assert (c.kind, c.column, c.ours, c.theirs) == (RowConflictKind.KEY_COLUMNS, "id", None, "id")


@pytest.mark.parametrize(
    ("theirs", "error"),
    [
        (BASE + b"2,dup,0.0\n", DuplicateKey),  # a row added with a key already there
        (BASE.replace(b"3,cow", b"2,cow"), DuplicateKey),  # a changed row now duplicates
        (BASE + b"4,a,1\n4,b,2\n", DuplicateKey),  # a key added twice
        (b'id,label,score\n1,"cat,0.5\n', TableParseError),  # a quote never closed
        (BASE + b"4,ant\n", TableParseError),  # too few fields
    ],
)
def test_errors_change_nothing(theirs: bytes, error: type[TableError]) -> None:
    ours = BASE.replace(b"1,cat", b"1,lion")
    with pytest.raises(error):
        merge_table(BASE, ours, theirs, "l.csv", ["id"])
    other = theirs.replace(b"cow", b"ox").replace(b"dog", b"pug")
    if other != theirs:  # ours bad where theirs changed it
        with pytest.raises(error):
            merge_table(BASE, theirs, other, "l.csv", ["id"])


def test_missing_key_column_and_unknown_format() -> None:
    theirs = BASE.replace(b"1,cat", b"1,lion")
    ours = BASE.replace(b"2,dog", b"2,cat")
    with pytest.raises(MissingKeyColumn, match="'name'"):
        merge_table(BASE, ours, theirs, "l.csv", ["name"])
    with pytest.raises(TableError, match="no table format"):
        merge_table(BASE, ours, theirs, "l.xlsx", ["id"])
    with pytest.raises(MissingKeyColumn):
        merge_table(b'{"id": 1}\n', b'{"id": 1, "a": 2}\n', b'{"a": 3}\n', "l.jsonl", ["id"])
    with pytest.raises(TableParseError):
        merge_table(b'{"id": 1}\n', b'{"id": 1, "a": 2}\n', b"[1]\n", "l.jsonl", ["id"])
    with pytest.raises(TableParseError):
        merge_table(b"PAR1", b"not parquet", b"nor this", "l.parquet", ["id"])


def test_dialect_of_ours_is_kept() -> None:
    base = '"id";"label"\r\n"1";"chat"\r\n"2";"ch\xe8vre"\r\n'.encode("latin-1")
    ours = base.replace(b'"chat"', b'"chat noir"')
    theirs = base + '"3";"b\xe9te"\r\n'.encode("latin-1")
    got = merge_table(base, ours, theirs, "l.csv", ["id"])
    assert got.data == ours + '"3";"b\xe9te"\r\n'.encode("latin-1")


def test_unchanged_rows_are_copied_byte_for_byte() -> None:
    base = b'\xef\xbb\xbfid,text\n1, spaced \n2,"multi\nline"\n3,plain'
    ours = base.replace(b"plain", b"PLAIN")
    theirs = base.replace(b"1, spaced ", b"1,tidy")
    got = merge_table(base, ours, theirs, "l.csv", ["id"])
    assert got.data == b'\xef\xbb\xbfid,text\n1,tidy\n2,"multi\nline"\n3,PLAIN'
    assert merge_table(base, ours, base, "l.csv", ["id"]).data == ours


def test_utf16_table_is_written_back_in_utf16() -> None:
    base = "id\tname\n1\tä\n".encode("utf-16")
    ours = "id\tname\n1\tä\n2\tö\n".encode("utf-16")
    theirs = "id\tname\n1\tÄ\n".encode("utf-16")
    got = merge_table(base, ours, theirs, "l.tsv", ["id"])
    assert got.data == "id\tname\n1\tÄ\n2\tö\n".encode("utf-16")


def test_parquet_keeps_ours_schema() -> None:
    base = write_rows(["id", "label"], [{"id": "1", "label": "a"}, {"id": "2", "label": "b"}])
    ours = write_rows(["id", "label"], [{"id": "1", "label": "A"}, {"id": "2", "label": "b"}])
    theirs = write_rows(
        ["id", "label"],
        [{"id": "1", "label": "a"}, {"id": "2", "label": None}, {"id": "3", "label": "c"}],
    )
    got = merge_table(base, ours, theirs, "l.parquet", ["id"])
    assert got.data is not None
    assert read_rows(got.data) == (
        ("id", "label"),
        [{"id": "1", "label": "A"}, {"id": "2", "label": None}, {"id": "3", "label": "c"}],
    )


def test_large_relabel_touches_only_changed_rows() -> None:
    """A 20,000-row table relabelled at 1% on each side: no conflicts, every change kept."""
    rnd = random.Random(7)
    labels = [str(rnd.randint(0, 9)) for _ in range(20_000)]

    def table(lab: list[str]) -> bytes:
        return ("id,label\n" + "".join(f"{i},{x}\n" for i, x in enumerate(lab))).encode()

    ours_l, theirs_l, want = list(labels), list(labels), list(labels)
    for i in rnd.sample(range(20_000), 400):
        side = rnd.choice([ours_l, theirs_l])
        side[i] = want[i] = "new" + str(i)
    got = merge_table(table(labels), table(ours_l), table(theirs_l), "l.csv", ["id"])
    assert got.data == table(want)
