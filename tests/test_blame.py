"""Blame of a directory against a reference over generated histories (merges, renames), and
through the CLI."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgitfs import api
from mlgitfs.model.objects import EntryKind
from mlgitfs.repo.blame import blame_dir
from mlgitfs.repo.fsck import fsck
from mlgitfs.store.facade import Store
from tests.conftest import Cli, write_tree
from tests.test_logindex import (
    Made,
    _store,
    make_history,
    ref_order,
    ref_reach,
    ref_touched,
    step,
)


def _flat(store: Store, made: Made) -> dict[str, tuple[int, bytes]]:
    """path → (kind, content id) of every entry of a commit's tree."""
    from mlgitfs.repo.trees import walk

    return {p.decode(): (int(e.kind), e.ref) for p, e in walk(store, store.commit(made.oid).tree)}


def _content(v: tuple[int, bytes]) -> tuple[int, bytes] | None:
    kind, ref = v
    if kind == EntryKind.DIR:
        return None
    return (1 if kind in (EntryKind.FILE, EntryKind.CHUNKED) else kind, ref)


def _gone(other: dict[str, tuple[int, bytes]], q: str) -> bool:
    """`q` is no file or symlink on the other side (absent, or a directory there)."""
    return q not in other or other[q][0] == EntryKind.DIR


def reference_blame(
    store: Store, made: list[Made], head: int, dir_path: str
) -> dict[str, tuple[bytes, str]]:
    """name → (commit id, path then), by a plain walk over flattened trees."""
    flats = [_flat(store, m) for m in made]
    order = ref_order(made, head, ref_reach(made, [head]))
    prefix = dir_path + "/" if dir_path else ""
    names = [
        p[len(prefix) :]
        for p in flats[head]
        if p.startswith(prefix) and "/" not in p[len(prefix) :]
    ]
    out = {}
    for name in names:
        p = prefix + name
        for i in order:
            m = made[i]
            old = flats[m.parents[0]] if m.parents else {}
            new = flats[i]
            if not ref_touched(store, made, i, p):
                continue
            if p not in old and _content(new[p]) is not None and m.parents:
                key = _content(new[p])
                gone = [q for q, v in old.items() if _content(v) == key and _gone(new, q)]
                came = [q for q, v in new.items() if _content(v) == key and _gone(old, q)]
                if len(gone) == 1 and len(came) == 1:
                    p = gone[0]
                    continue
            out[name] = (bytes(m.oid), p)
            break
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(step, min_size=1, max_size=12),
    heads=st.lists(st.integers(0, 100), min_size=1, max_size=3),
    where=st.sampled_from(["", "d", "d/e", "a"]),
)
def test_blame_matches_the_reference(steps: list[tuple], heads: list[int], where: str) -> None:  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory(prefix="mlgitfs-blame-") as tmp:
        home = Path(tmp) / "home"
        store = _store(home)
        try:
            made, _ = make_history(store, steps)
            for h in heads:
                head = h % len(made)
                flat = _flat(store, made[head])
                if where and flat.get(where, (0, b""))[0] != EntryKind.DIR:
                    continue
                want = reference_blame(store, made, head, where)
                parts = tuple(where.encode().split(b"/")) if where else ()
                for index in (True, False):
                    got = {
                        x.entry.name.decode(): (bytes(x.commit), x.path.decode())
                        for x in blame_dir(store, made[head].oid, parts, use_index=index)
                    }
                    assert got == want
            assert fsck(store).clean
        finally:
            api.close_store(home)


def test_blame_through_the_cli_follows_a_rename(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(tmp_path / "src", {"img/a.jpg": b"a", "img/b.jpg": b"b", "labels.csv": "x\n"})
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "first")
    (src / "labels.csv").write_text("x\n1\n")
    cli("import", "ds", str(src), "-m", "labels")
    (src / "img" / "a.jpg").rename(src / "img" / "c.jpg")  # an exact rename
    (src / "img" / "b.jpg").write_bytes(b"b2")
    cli("import", "ds", str(src), "-m", "rename and change")
    log = {c["message"]: c["id"] for c in json.loads(cli("log", "ds", "--json").stdout)}
    top = {i["name"]: i for i in json.loads(cli("blame", "ds", "--json").stdout)["entries"]}
    assert top["labels.csv"]["commit"] == log["labels"]
    assert top["img"]["commit"] == log["rename and change"] and top["img"]["kind"] == "dir"
    img = {i["name"]: i for i in json.loads(cli("blame", "ds:img", "--json").stdout)["entries"]}
    assert img["c.jpg"]["commit"] == log["first"] and img["c.jpg"]["path"] == "img/a.jpg"
    assert img["b.jpg"]["commit"] == log["rename and change"]
    text = cli("blame", "ds:img").stdout.splitlines()
    assert text[1].startswith(log["first"][:12]) and text[1].endswith("c.jpg  (was img/a.jpg)")
    assert "--key COL" in cli("blame", "ds:labels.csv", code=2).stderr
    cli("blame", "ds:nothing", code=4)


# --- rows -----------------------------------------------------------------------------------

KEYS = ["1", "2", "3", "4", "5"]
LABELS = ["cat", "dog", 'say "hi"', "a,b", "two\nlines"]  # quoted CSV fields included

row_op = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(KEYS), st.sampled_from(LABELS)),
    st.tuples(st.just("drop"), st.sampled_from(KEYS), st.just("")),
    st.tuples(st.just("move"), st.sampled_from(["t.csv", "sub/t.csv", "u.csv"]), st.just("")),
    st.tuples(st.just("other"), st.just(""), st.sampled_from(LABELS)),
)


def _csv(table: dict[str, str]) -> bytes:
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["id", "label"])
    for k in sorted(table):
        w.writerow([k, table[k]])
    return out.getvalue().encode()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commits=st.lists(st.lists(row_op, min_size=1, max_size=3), min_size=1, max_size=10))
def test_row_blame_matches_a_reference_over_key_to_row_dicts(
    commits: list[list[tuple[str, str, str]]],
) -> None:
    from mlgitfs.repo.blamerows import blame_rows
    from mlgitfs.repo.commits import CommitRequest, write_commit
    from mlgitfs.repo.trees import NewObjects
    from tests.test_logindex import T0, build_tree

    with tempfile.TemporaryDirectory(prefix="mlgitfs-rowblame-") as tmp:
        home = Path(tmp) / "home"
        store = _store(home)
        try:
            table: dict[str, str] = {"1": "cat"}
            path, other = "t.csv", "x"
            history: list[tuple[bytes, str, dict[str, str]]] = []  # (commit, path, table)
            head = None
            for n, ops in enumerate(commits):
                for op, a, b in ops:
                    if op == "set":
                        table = {**table, a: b}
                    elif op == "drop":
                        table = {k: v for k, v in table.items() if k != a}
                    elif op == "move":
                        path = a
                    else:
                        other = b
                files = {path: (_csv(table), 0o644, 0), "readme": (other.encode(), 0o644, 0)}
                writer = store.chunks.writer()
                objs: NewObjects = []
                tree = build_tree(store, files, writer, objs)
                req = CommitRequest("r", "main", f"c{n}", {}, [], "ann@lab", T0 + n)
                parents = (head,) if head else ()
                head, _ = write_commit(store, req, tree, parents, head, writer, objs)
                writer.reset()
                history.append((bytes(head), path, dict(table)))
            assert head is not None
            # the reference: walk back; a row is set where it differs from the version
            # before, and every row is set where the file moved and changed at once
            want: dict[str, bytes] = {}
            for k in history[-1][2]:
                for i in range(len(history) - 1, -1, -1):
                    c, p, t = history[i]
                    prev = history[i - 1] if i else None
                    if prev is None:
                        want[k] = c
                        break
                    moved_and_changed = prev[1] != p and prev[2] != t
                    if moved_and_changed or prev[2].get(k) != t.get(k):
                        want[k] = c
                        break
            want_cells: dict[tuple[str, str], bytes] = {}
            for k in history[-1][2]:
                for col in ("id", "label"):
                    for i in range(len(history) - 1, -1, -1):
                        c, p, t = history[i]
                        prev = history[i - 1] if i else None
                        if prev is None or (prev[1] != p and prev[2] != t):
                            want_cells[(k, col)] = c
                            break
                        a, b = t.get(k), prev[2].get(k)
                        if (a is None or b is None) and a != b or col == "label" and a != b:
                            want_cells[(k, col)] = c
                            break
            for index in (True, False):
                parts = tuple(path.encode().split(b"/"))
                got = blame_rows(store, head, parts, ["id"], index, cells=True)
                assert {str(x.key[0]): bytes(x.commit) for x in got.rows} == want
                assert [str(x.key[0]) for x in got.rows] == sorted(history[-1][2])
                cells = {(str(x.key[0]), col): bytes(c) for x in got.rows for col, c, _ in x.cells}
                assert cells == want_cells
            assert fsck(store).clean
        finally:
            api.close_store(home)


def test_row_blame_through_the_cli_with_the_rules_key(cli: Cli, tmp_path: Path) -> None:
    src = write_tree(
        tmp_path / "src",
        {
            ".mlgitfs/merge.toml": '[[rule]]\npath = "*.csv"\nstrategy = "rows"\nkey = ["id"]\n',
            "labels.csv": 'id,label\n1,cat\n2,"a,b"\n',
        },
    )
    cli("init", "ds", "--kind", "labels", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "first")
    (src / "labels.csv").write_text('id,label\n1,cat\n2,"a,""b"""\n3,dog\n')
    cli("import", "ds", str(src), "-m", "relabel 2, add 3")
    (src / "labels.csv").rename(src / "train.csv")
    cli("import", "ds", str(src), "-m", "rename")
    log = {c["message"]: c["id"] for c in json.loads(cli("log", "ds", "--json").stdout)}
    out = json.loads(cli("blame", "ds:train.csv", "--json").stdout)
    assert out["kind"] == "rows" and out["key_columns"] == ["id"]
    got = {tuple(r["key"]): (r["commit"], r["path"]) for r in out["rows"]}
    assert got == {
        ("1",): (log["first"], "labels.csv"),
        ("2",): (log["relabel 2, add 3"], "labels.csv"),
        ("3",): (log["relabel 2, add 3"], "labels.csv"),
    }
    text = cli("blame", "ds:train.csv", "--key", "id").stdout.splitlines()
    assert text[0].startswith(log["first"][:12]) and text[0].endswith("  1  (was in labels.csv)")
    cells = json.loads(cli("blame", "ds:train.csv", "--cells", "--json").stdout)["rows"]
    two = {c["column"]: c["commit"] for c in cells[1]["cells"]}
    assert two == {"id": log["first"], "label": log["relabel 2, add 3"]}
    assert "--cells: ds is a directory" in cli("blame", "ds", "--cells", code=2).stderr
    assert "no key column nope" in cli("blame", "ds:train.csv", "--key", "nope", code=33).stderr
    assert "name a table file" in cli("blame", "ds", "--key", "id", code=2).stderr
    rules = json.loads(cli("blame", "ds:.mlgitfs/merge.toml", "--json").stdout)
    assert rules["kind"] == "chunks" and rules["chunks"][0]["commit"] == log["first"]
    assert (
        "no table format" in cli("blame", "ds:.mlgitfs/merge.toml", "--key", "id", code=30).stderr
    )
    one = json.loads(cli("blame", "ds:train.csv", "--row", "2", "--json").stdout)["rows"]
    assert [(r["key"], r["commit"]) for r in one] == [(["2"], log["relabel 2, add 3"])]
    assert "no row with the key (9)" in cli("blame", "ds:train.csv", "--row", "9", code=3).stderr


def test_row_blame_with_the_key_text_in_another_column_first(cli: Cli, tmp_path: Path) -> None:
    """--row reads the blamed version only up to the record holding the key's text; when
    that text is another column's (a look-alike before the row), the row is still found."""
    src = write_tree(tmp_path / "src", {"t.csv": "id,label\n1,2\n2,cat\n3,x\n"})
    cli("init", "ds", "--kind", "labels", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "first")
    (src / "t.csv").write_text("id,label\n1,2\n2,dog\n3,x\n")
    cli("import", "ds", str(src), "-m", "relabel 2")
    log = {c["message"]: c["id"] for c in json.loads(cli("log", "ds", "--json").stdout)}
    for row, want in (("2", "relabel 2"), ("1", "first"), ("3", "first")):
        out = cli("blame", "ds:t.csv", "--key", "id", "--row", row, "--json").stdout
        got = json.loads(out)["rows"]
        assert [(r["key"], r["commit"]) for r in got] == [([row], log[want])]
    assert (
        "no row with the key (4)"
        in cli("blame", "ds:t.csv", "--key", "id", "--row", "4", code=3).stderr
    )


def test_chunk_blame_through_the_cli(cli: Cli, tmp_path: Path) -> None:
    import random

    rnd = random.Random(5)
    first = rnd.randbytes(3 << 20)
    src = write_tree(tmp_path / "src", {"blob.bin": first, "labels.csv": "id\n1\n"})
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "first")
    second = first[: 2 << 20] + rnd.randbytes(4096) + first[(2 << 20) + 4096 :]
    (src / "blob.bin").write_bytes(second)  # one stretch in the middle changed
    cli("import", "ds", str(src), "-m", "patch")
    log = {c["message"]: c["id"] for c in json.loads(cli("log", "ds", "--json").stdout)}
    out = json.loads(cli("blame", "ds:blob.bin", "--json").stdout)
    assert out["kind"] == "chunks" and out["path"] == "blob.bin"
    spans = [(c["start"], c["end"], c["commit"]) for c in out["chunks"]]
    assert spans[0][0] == 0 and spans[-1][1] == len(second)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False))
    patched = {c for s, e, c in spans if s < (2 << 20) + 4096 and e > 2 << 20}
    assert patched == {log["patch"]}  # the chunks around the change are new, the rest not
    assert spans[0][2] == log["first"] and spans[-1][2] == log["first"]
    text = cli("blame", "ds:blob.bin").stdout.splitlines()
    assert text[0].startswith(log["first"][:12]) and f"0-{spans[0][1]}" in text[0]
    table = json.loads(cli("blame", "ds:labels.csv", "--chunks", "--json").stdout)
    assert [c["commit"] for c in table["chunks"]] == [log["first"]]
    assert "--chunks" in cli("blame", "ds:labels.csv", "--chunks", "--key", "id", code=2).stderr
