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
    top = {i["name"]: i for i in json.loads(cli("blame", "ds", "--json").stdout)}
    assert top["labels.csv"]["commit"] == log["labels"]
    assert top["img"]["commit"] == log["rename and change"] and top["img"]["kind"] == "dir"
    img = {i["name"]: i for i in json.loads(cli("blame", "ds:img", "--json").stdout)}
    assert img["c.jpg"]["commit"] == log["first"] and img["c.jpg"]["path"] == "img/a.jpg"
    assert img["b.jpg"]["commit"] == log["rename and change"]
    text = cli("blame", "ds:img").stdout.splitlines()
    assert text[1].startswith(log["first"][:12]) and text[1].endswith("c.jpg  (was img/a.jpg)")
    assert "not implemented" in cli("blame", "ds:labels.csv", code=2).stderr
    cli("blame", "ds:nothing", code=4)
