"""The commit graph: several parents, generations, ancestry, merge bases, the staged view."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgitfs import api
from mlgitfs.errors import ConflictError, PolicyError
from mlgitfs.meta import db
from mlgitfs.model.ids import ChunkId, ObjectId, hash_bytes
from mlgitfs.model.objects import EntryKind, Tree, TreeEntry
from mlgitfs.repo import graph
from mlgitfs.repo.commits import CommitRequest, write_commit
from mlgitfs.repo.staged import StagedView
from mlgitfs.repo.trees import NewObjects, build_dir
from mlgitfs.store.facade import Store


def _store(home: Path) -> Store:
    api.init(home, "r", "dataset", "mutable")
    return api.open_store(home)


def _commit(
    store: Store, branch: str, parents: tuple[ObjectId, ...], expected: ObjectId | None, msg: str
) -> ObjectId:
    objs: NewObjects = []
    tree = build_dir([], objs)
    writer = store.chunks.writer()
    req = CommitRequest("r", branch, msg, {}, [])
    cid, _ = write_commit(store, req, tree, parents, expected, writer, objs)
    writer.reset()
    return cid


def _dag(store: Store, shape: list[list[int]]) -> list[ObjectId]:
    """Commits whose parents are the earlier commits named by index; each on its own branch."""
    out: list[ObjectId] = []
    for i, parents in enumerate(shape):
        out.append(_commit(store, f"b{i}", tuple(out[p] for p in parents), None, f"c{i}"))
    return out


def _ancestors(shape: list[list[int]], i: int) -> set[int]:
    seen, todo = {i}, [i]
    while todo:
        for p in shape[todo.pop()]:
            if p not in seen:
                seen.add(p)
                todo.append(p)
    return seen


def test_two_parents_and_generations(home: Path) -> None:
    store = _store(home)
    a = _commit(store, "main", (), None, "root")
    b = _commit(store, "main", (a,), a, "b")
    c = _commit(store, "side", (a,), None, "c")
    m = _commit(store, "main", (b, c), b, "merge")
    assert store.commit(m).parents == (b, c)
    with store.env.read() as txn:
        assert [db.get_generation(txn, x) for x in (a, b, c, m)] == [1, 2, 2, 3]
    assert graph.is_ancestor(store, c, m) and graph.is_ancestor(store, a, m)
    assert not graph.is_ancestor(store, m, c) and not graph.is_ancestor(store, b, c)
    assert graph.merge_base(store, b, c) == a
    assert graph.merge_base(store, m, c) == c
    # the expected head is compared, whatever the parents
    with pytest.raises(ConflictError):
        _commit(store, "main", (m,), b, "stale")


def test_generations_computed_for_commits_without_them(home: Path) -> None:
    """A store from before generations (or a fetched commit): computed on first need."""
    store = _store(home)
    ids = _dag(store, [[], [0], [1], [1], [2, 3]])
    with store.env.write() as txn:
        txn.clear("generations")
    assert graph.generation(store, ids[4]) == 4
    with store.env.read() as txn:
        assert [db.get_generation(txn, x) for x in ids] == [1, 2, 3, 3, 4]


def test_criss_cross_picks_one_base_deterministically(home: Path) -> None:
    store = _store(home)
    # 0 -> 1, 0 -> 2; 3 = merge(1, 2); 4 = merge(2, 1): bases of 3 and 4 are 1 and 2
    ids = _dag(store, [[], [0], [0], [1, 2], [2, 1]])
    bases = graph.merge_bases(store, ids[3], ids[4])
    assert set(bases) == {ids[1], ids[2]}
    assert bases == sorted(bases)  # equal generations: lowest id first
    assert graph.merge_base(store, ids[3], ids[4]) == bases[0]
    assert graph.merge_bases(store, ids[4], ids[3]) == bases


def test_unrelated_histories_have_no_base(home: Path) -> None:
    store = _store(home)
    ids = _dag(store, [[], []])
    assert graph.merge_base(store, ids[0], ids[1]) is None


@st.composite
def dags(draw: st.DrawFn) -> list[list[int]]:
    n = draw(st.integers(2, 14))
    shape: list[list[int]] = []
    for i in range(n):
        if i == 0:
            shape.append([])
            continue
        k = draw(st.integers(0, min(i, 2)))
        shape.append(sorted(set(draw(st.lists(st.integers(0, i - 1), min_size=k, max_size=k)))))
    return shape


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(shape=dags(), data=st.data())
def test_merge_bases_match_brute_force(
    tmp_path_factory: pytest.TempPathFactory, shape: list[list[int]], data: st.DataObject
) -> None:
    home = tmp_path_factory.mktemp("g") / "store"
    store = _store(home)
    try:
        ids = _dag(store, shape)
        a = data.draw(st.integers(0, len(ids) - 1))
        b = data.draw(st.integers(0, len(ids) - 1))
        common = _ancestors(shape, a) & _ancestors(shape, b)
        best = {c for c in common if not any(c in _ancestors(shape, x) - {x} for x in common)}
        assert set(graph.merge_bases(store, ids[a], ids[b])) == {ids[c] for c in best}
        for x in range(len(ids)):
            assert graph.is_ancestor(store, ids[x], ids[a]) == (x in _ancestors(shape, a))
    finally:
        api.close_store(home)


def test_validator_reads_the_staged_commit_and_can_refuse(home: Path) -> None:
    store = _store(home)
    data = b"staged bytes"
    cid = ChunkId(hash_bytes(data))
    writer = store.chunks.writer()
    writer.add(cid, 0, data, len(data))
    objs: NewObjects = []
    entry = TreeEntry(b"f", EntryKind.FILE, 0o644, len(data), 0, bytes(cid))
    tree = build_dir([entry], objs)
    seen: list[bytes] = []

    def refuse(view: StagedView) -> None:
        t = view.get(view.commit.tree, Tree)
        assert view.is_new(view.commit.tree) and view.is_new(view.commit_id)
        seen.append(view.read_chunk(ChunkId(t.entries[0].ref)))
        raise PolicyError("not today")

    req = CommitRequest("r", "main", "m", {}, [])
    with pytest.raises(PolicyError):
        write_commit(store, req, tree, (), None, writer, objs, validate=refuse)
    writer.discard()
    assert seen == [data]
    with store.env.read() as txn:
        assert db.get_ref(txn, "r", "heads/main") is None
        assert not txn.has("objects", bytes(tree))
        assert not txn.has("chunks", bytes(cid))


def test_fsck_reports_a_wrong_generation(home: Path) -> None:
    store = _store(home)
    ids = _dag(store, [[], [0]])
    with store.env.write() as txn:
        db.put_generation(txn, ids[1], 7)
    report = api.fsck(home)
    assert [d.reason for d in report.damage] == ["generation number 7 recorded, 2 by its parents"]
    with store.env.write() as txn:  # derived data: dropped, it is computed again
        txn.delete("generations", bytes(ids[1]))
    assert graph.generation(store, ids[1]) == 2 and api.fsck(home).clean
