"""The tree merge against a plain reference over path → content dictionaries (tests/mergeref.py),
on pairs of branches made by random edits; and the cases the guide promises, one by one."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mlgitfs import api
from mlgitfs.model.ids import ObjectId
from mlgitfs.repo.commits import CommitRequest, write_commit
from mlgitfs.repo.merge import Rule, Strategy, merge_trees
from mlgitfs.repo.mergeedit import PendingReader
from mlgitfs.repo.trees import NewObjects
from mlgitfs.store.facade import Store
from tests.mergeref import Flat, Value, build, flatten, is_dir, parents, reference_merge, under

NAMES = ["a", "b", "c", "d"]
CONTENTS = [b"one", b"two", b"three", b"four", b"five"]
MODES = [0o644, 0o755, 0o600]
TARGETS = [b"a", b"../b", b"c/d"]
F = 0o644


def _commit_trees(store: Store, flats: list[Flat]) -> list[ObjectId]:
    """Each tree as the commit of its own branch (so fsck sees every object)."""
    trees = []
    for i, flat in enumerate(flats):
        writer = store.chunks.writer()
        out: NewObjects = []
        tree = build(store, writer, flat, out)
        req = CommitRequest("r", f"t{i}", "tree", {}, [])
        with store.env.read() as txn:
            from mlgitfs.meta import db

            head = db.get_ref(txn, "r", f"heads/t{i}")
        write_commit(store, req, tree, (head,) if head else (), head, writer, out)
        writer.reset()
        trees.append(tree)
    return trees


def _check(store: Store, base: Flat, ours: Flat, theirs: Flat, events: bool = False) -> None:
    b, o, t = _commit_trees(store, [base, ours, theirs])
    got = merge_trees(store, b, o, t)
    want, want_conflicts = reference_merge(base, ours, theirs)
    assert {(c.path, c.kind.value) for c in got.conflicts} == want_conflicts
    if events:  # hypothesis statistics: how often each case was met
        event("conflicted" if want_conflicts else "clean")
        if got.renames:
            event("a rename followed")
    if not want_conflicts:
        assert flatten(store, PendingReader(store, got.new_objects), got.tree) == want


# --- random edits --------------------------------------------------------------------------


def _paths(draw: st.DrawFn) -> str:
    depth = draw(st.integers(1, 3))
    return "/".join(draw(st.sampled_from(NAMES)) for _ in range(depth))


def _can_put(flat: Flat, path: str) -> bool:
    return path not in flat and not any(a in flat and not is_dir(flat[a]) for a in parents(path))


def _put(flat: Flat, path: str, value: Value) -> None:
    for a in parents(path):
        flat.setdefault(a, ("dir", 0o755))
    flat[path] = value


def _remove(flat: Flat, path: str) -> dict[str, Value]:
    gone = {p: v for p, v in flat.items() if p == path or under(p, path)}
    for p in gone:
        del flat[p]
    return gone


@st.composite
def edits(draw: st.DrawFn, start: Flat, n: int) -> Flat:
    flat = dict(start)
    for _ in range(n):
        op = draw(
            st.sampled_from(
                ["add", "modify", "modify", "delete", "rename", "rename", "mode", "symlink"]
            )
        )
        existing = sorted(flat)
        if op == "add" or not existing:
            path = _paths(draw)
            if _can_put(flat, path):
                if draw(st.booleans()):
                    _put(flat, path, ("file", draw(st.sampled_from(CONTENTS)), 0o644))
                else:
                    _put(flat, path, ("dir", 0o755))
            continue
        path = draw(st.sampled_from(existing))
        v = flat[path]
        if op == "modify" and v[0] == "file":
            flat[path] = ("file", draw(st.sampled_from(CONTENTS)), v[2])  # type: ignore[misc]
        elif op == "mode" and v[0] in ("file", "dir"):
            mode = draw(st.sampled_from(MODES))
            flat[path] = (v[0], v[1], mode) if v[0] == "file" else ("dir", mode)  # type: ignore[misc]
        elif op == "symlink" and v[0] != "dir":
            flat[path] = ("symlink", draw(st.sampled_from(TARGETS)), 0o777)
        elif op == "delete":
            _remove(flat, path)
        elif op == "rename":
            _rename(flat, path, _paths(draw))
    return flat


def _rename(flat: Flat, path: str, dst: str) -> bool:
    if dst == path or under(dst, path) or not _can_put(flat, dst):
        return False
    for p, val in _remove(flat, path).items():
        _put(flat, dst + p[len(path) :], val)
    return True


@st.composite
def triples(draw: st.DrawFn) -> tuple[Flat, Flat, Flat]:
    seed: Flat = {"a": ("dir", 0o755), "a/b": ("file", b"one", F), "c": ("file", b"two", F)}
    base = draw(edits(seed, draw(st.integers(2, 10))))
    ours, theirs = dict(base), dict(base)
    files = sorted(p for p, v in base.items() if v[0] == "file")
    if files and draw(st.booleans()):
        # the case renames exist for: one side moves a file (or a directory holding it),
        # the other edits the file where it was
        f = draw(st.sampled_from(files))
        base[f] = ours[f] = theirs[f] = ("file", b"unique", base[f][2])  # type: ignore[misc]
        moved = draw(st.sampled_from([f, *parents(f)]))
        dst = draw(st.sampled_from(["z", "z/y", *[p for p in base if is_dir(base[p])]]))
        if not _rename(ours, moved, dst) and not _rename(ours, moved, dst + "/z"):
            _rename(ours, moved, "z")
        v = theirs[f]
        theirs[f] = ("file", draw(st.sampled_from(CONTENTS)), v[2])  # type: ignore[misc]
        if draw(st.booleans()):
            ours, theirs = theirs, ours
    ours = draw(edits(ours, draw(st.integers(0, 5))))
    theirs = draw(edits(theirs, draw(st.integers(0, 5))))
    return base, ours, theirs


@pytest.fixture
def store(home: Path) -> Store:
    api.init(home, "r", "dataset", "mutable")
    return api.open_store(home)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(trees=triples())
def test_merge_matches_reference(store: Store, trees: tuple[Flat, Flat, Flat]) -> None:
    _check(store, *trees, events=True)


# --- the promised cases, by hand ------------------------------------------------------------


def test_rename_on_one_side_edit_on_the_other(store: Store) -> None:
    base: Flat = {"d": ("dir", 0o755), "d/x": ("file", b"v1", F), "e": ("dir", 0o755)}
    ours: Flat = {"d": ("dir", 0o755), "e": ("dir", 0o755), "e/y": ("file", b"v1", F)}
    theirs: Flat = {"d": ("dir", 0o755), "d/x": ("file", b"v2", F), "e": ("dir", 0o755)}
    b, o, t = _commit_trees(store, [base, ours, theirs])
    got = merge_trees(store, b, o, t)
    assert not got.conflicts and got.renames == {"d/x": "e/y"}
    assert flatten(store, PendingReader(store, got.new_objects), got.tree) == {
        "d": ("dir", 0o755), "e": ("dir", 0o755), "e/y": ("file", b"v2", F)
    }  # fmt: skip


def test_directory_moved_on_one_side_edited_on_the_other(store: Store) -> None:
    files = {f"img/{i}.jpg": ("file", f"img{i}".encode(), F) for i in range(5)}
    base: Flat = {"img": ("dir", 0o755), **files}  # type: ignore[dict-item]
    ours: Flat = {"pics": ("dir", 0o755)}
    ours.update({p.replace("img/", "pics/"): v for p, v in files.items()})  # type: ignore[misc]
    theirs = dict(base)
    theirs["img/3.jpg"] = ("file", b"edited", F)
    _check(store, base, ours, theirs)
    b, o, t = _commit_trees(store, [base, ours, theirs])
    merged = flatten(
        store, PendingReader(store, (m := merge_trees(store, b, o, t)).new_objects), m.tree
    )
    assert merged["pics/3.jpg"] == ("file", b"edited", F) and "img" not in merged


def test_conflicts_and_strategies(store: Store) -> None:
    base: Flat = {
        "a": ("file", b"base", F),
        "b": ("file", b"base", F),
        "l": ("symlink", b"x", 0o777),
    }
    ours: Flat = {"a": ("file", b"ours", F), "l": ("symlink", b"y", 0o777)}
    theirs: Flat = {
        "a": ("file", b"theirs", F),
        "b": ("file", b"changed", F),
        "l": ("symlink", b"z", 0o777),
    }
    b, o, t = _commit_trees(store, [base, ours, theirs])
    got = merge_trees(store, b, o, t)
    kinds = {c.path: c.kind.value for c in got.conflicts}
    assert kinds == {"a": "modify/modify", "b": "modify/delete", "l": "symlink"}
    a = next(c for c in got.conflicts if c.path == "a")
    assert a.base and a.ours and a.theirs and (a.base.size, a.ours.size, a.theirs.size) == (4, 4, 6)
    for strategy, want in ((Strategy.OURS, ours), (Strategy.THEIRS, theirs)):
        m = merge_trees(store, b, o, t, lambda _p, s=strategy: Rule(s))
        assert not m.conflicts
        assert flatten(store, PendingReader(store, m.new_objects), m.tree) == want
    union = merge_trees(store, b, o, t, lambda p: Rule(Strategy.UNION) if p == "b" else None)
    assert {c.path for c in union.conflicts} == {"a", "l"}
