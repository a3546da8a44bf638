"""log's filters and the commit-graph index, against a plain reference over generated
histories (merges included): a full walk, full trees flattened and compared, no index."""

from __future__ import annotations

import heapq
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgitfs import api
from mlgitfs.meta import commitgraph
from mlgitfs.meta.commitgraph import GraphRecord
from mlgitfs.model import bloom
from mlgitfs.model.ids import ChunkId, ObjectId, hash_bytes
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.repo import history
from mlgitfs.repo.commits import CommitRequest, write_commit
from mlgitfs.repo.fsck import fsck
from mlgitfs.repo.trees import NewObjects, build_dir, walk
from mlgitfs.store.cache import SegmentWriter
from mlgitfs.store.facade import Store

Files = dict[str, tuple[bytes, int, int]]  # path → (content, mode, mtime_ns)
T0 = 1_700_000_000 * 10**9
DAY = 86_400 * 10**9
PATHS = ["a", "a/b", "d/x", "d/y", "d/e/z", "d/e/w", "f"]
AUTHORS = ["ann@lab", "bob@lab", "cy@farm"]
WORDS = ["fix", "labels", "relabel", "add", "images", "drop"]


def build_tree(store: Store, files: Mapping[str, tuple[bytes, int, int]], writer: SegmentWriter,
               objs: NewObjects) -> ObjectId:  # fmt: skip
    """The tree of `files` (chunks added to `writer`, objects to `objs`)."""

    def level(items: dict[str, tuple[bytes, int, int]]) -> ObjectId:
        subdirs: dict[str, dict[str, tuple[bytes, int, int]]] = {}
        entries: list[TreeEntry] = []
        for path, (data, mode, mtime) in items.items():
            head, sep, rest = path.partition("/")
            if sep:
                subdirs.setdefault(head, {})[rest] = (data, mode, mtime)
                continue
            cid = ChunkId(hash_bytes(data))
            writer.add(cid, 0, data, len(data))
            entries.append(TreeEntry(head.encode(), EntryKind.FILE, mode, len(data), mtime, cid))
        for name, sub in subdirs.items():
            ref = level(sub)
            entries.append(TreeEntry(name.encode(), EntryKind.DIR, 0o755, len(sub), 0, ref))
        entries.sort(key=lambda e: e.name)
        return build_dir(entries, objs)

    return level(dict(files))


def apply(files: Files, path: str, value: tuple[bytes, int, int] | None) -> Files:
    """`files` with `path` set (a file in the way of a directory, or below, goes) or removed."""
    out = {
        p: v for p, v in files.items() if p != path and not p.startswith(path + "/")
        and not path.startswith(p + "/")
    }  # fmt: skip
    if value is not None:
        out[path] = value
    return out


@dataclass
class Made:
    oid: ObjectId
    files: Files
    parents: tuple[int, ...]
    time_ns: int
    author: str
    message: str
    meta: dict[str, str]
    inputs: tuple[ObjectId, ...]


step = st.tuples(
    st.integers(0, 100),  # first parent (an index into what exists; 0..n-1)
    st.one_of(st.none(), st.integers(0, 100)),  # second parent: a merge
    st.lists(
        st.tuples(
            st.sampled_from(PATHS),
            st.one_of(
                st.none(),
                st.tuples(st.sampled_from([b"1", b"2", b"3"]), st.sampled_from([0o644, 0o755])),
            ),
            st.integers(0, 3),  # mtime: alone, never a change
        ),
        max_size=3,
    ),
    st.integers(-2, 5),  # days after the first parent (clock skew included)
    st.sampled_from(AUTHORS),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
    st.dictionaries(st.sampled_from(["split", "stage"]), st.sampled_from(["a", "b"]), max_size=2),
    st.lists(st.integers(0, 2), max_size=2, unique=True),  # inputs: source commits
)


def make_history(store: Store, steps: list[tuple]) -> tuple[list[Made], list[ObjectId]]:  # type: ignore[type-arg]
    """A source repo of three commits (each made from the one before), and the history."""
    sources: list[ObjectId] = []
    for i in range(3):
        writer = store.chunks.writer()
        objs: NewObjects = []
        tree = build_tree(store, {"s": (str(i).encode(), 0o644, 0)}, writer, objs)
        ins = [("src", sources[-1])] if sources else []
        req = CommitRequest("src", f"s{i}", f"source {i}", {}, ins, "src@lab", T0)
        sources.append(write_commit(store, req, tree, (), None, writer, objs)[0])
        writer.reset()
    made: list[Made] = []
    for n, (p1, p2, changes, days, author, words, meta, ins) in enumerate(steps):
        if made:
            first = p1 % len(made)
            parents: tuple[int, ...] = (first,)
            if p2 is not None and p2 % len(made) != first:
                parents = (first, p2 % len(made))
            files = dict(made[first].files)
            t = made[first].time_ns + days * DAY
        else:
            parents, files, t = (), {}, T0
        for path, value, mtime in changes:
            files = apply(files, path, None if value is None else (value[0], value[1], mtime))
        writer = store.chunks.writer()
        objs = []
        tree = build_tree(store, files, writer, objs)
        message = " ".join(words)
        inputs = sorted({("src", sources[i]) for i in ins})
        req = CommitRequest("r", f"b{n}", message, meta, inputs, author, max(t, 0))
        oid, _ = write_commit(
            store, req, tree, tuple(made[p].oid for p in parents), None, writer, objs
        )
        writer.reset()
        made.append(Made(oid, files, parents, max(t, 0), author, message, meta,
                         tuple(c for _, c in inputs)))  # fmt: skip
    return made, sources


# --- the reference ------------------------------------------------------------------------


def flat(store: Store, tree: ObjectId) -> dict[str, tuple[int, bytes, int]]:
    """Every path of a tree → (kind, content, mode); a directory's content is not compared."""
    out = {}
    for path, e in walk(store, tree):
        out[path.decode()] = (int(e.kind), b"" if e.is_dir else e.ref, e.mode)
    return out


def ref_touched(store: Store, made: list[Made], i: int, path: str) -> bool:
    m = made[i]
    new = flat(store, store.commit(m.oid).tree)
    old = flat(store, store.commit(made[m.parents[0]].oid).tree) if m.parents else {}
    return any(
        (q == path or q.startswith(path + "/")) and old.get(q) != new.get(q)
        for q in set(old) | set(new)
    )


def ref_reach(made: list[Made], heads: list[int]) -> set[int]:
    seen, todo = set(heads), list(heads)
    while todo:
        for p in made[todo.pop()].parents:
            if p not in seen:
                seen.add(p)
                todo.append(p)
    return seen


def ref_order(made: list[Made], head: int, keep: set[int]) -> list[int]:
    """Newest first (ties by id) from `head`: the order log promises."""
    heap, seen, out = [(-made[head].time_ns, bytes(made[head].oid), head)], {head}, []
    while heap:
        _, _, i = heapq.heappop(heap)
        out.append(i)
        for p in made[i].parents:
            if p not in seen:
                seen.add(p)
                heapq.heappush(heap, (-made[p].time_ns, bytes(made[p].oid), p))
    return [i for i in out if i in keep]


def ref_made_from(store: Store, inputs: tuple[ObjectId, ...]) -> set[bytes]:
    out: set[bytes] = set()
    todo = [bytes(i) for i in inputs]
    while todo:
        i = todo.pop()
        if i not in out:
            out.add(i)
            todo.extend(bytes(c) for _, c in store.commit(ObjectId(i)).inputs)
    return out


@dataclass(frozen=True)
class Q:
    head: int
    base: int | None
    paths: tuple[str, ...]
    grep: str | None
    author: str | None
    since_days: int | None
    until_days: int | None
    meta: tuple[tuple[str, str], ...]
    source: int | None
    limit: int | None


def reference(store: Store, made: list[Made], sources: list[ObjectId], q: Q) -> list[bytes]:
    keep = ref_reach(made, [q.head])
    if q.base is not None:
        keep -= ref_reach(made, [q.base])
    out = []
    for i in ref_order(made, q.head, keep):
        m = made[i]
        if q.since_days is not None and m.time_ns < T0 + q.since_days * DAY:
            continue
        if q.until_days is not None and m.time_ns > T0 + q.until_days * DAY:
            continue
        if q.grep is not None and not re.search(q.grep, m.message):
            continue
        if q.author is not None and not re.search(q.author, m.author):
            continue
        if any(m.meta.get(k) != v for k, v in q.meta):
            continue
        if q.source is not None and bytes(sources[q.source]) not in ref_made_from(store, m.inputs):
            continue
        if q.paths and not any(ref_touched(store, made, i, p) for p in q.paths):
            continue
        out.append(bytes(m.oid))
    return out if q.limit is None else out[: q.limit]


def ours(store: Store, made: list[Made], sources: list[ObjectId], q: Q, index: bool) -> list[bytes]:
    query = history.LogQuery(
        paths=tuple(tuple(p.encode().split(b"/")) for p in q.paths),
        grep=None if q.grep is None else re.compile(q.grep),
        author=None if q.author is None else re.compile(q.author),
        since_ns=None if q.since_days is None else T0 + q.since_days * DAY,
        until_ns=None if q.until_days is None else T0 + q.until_days * DAY,
        meta=q.meta,
        inputs=() if q.source is None else (sources[q.source],),
        exclude=() if q.base is None else (made[q.base].oid,),
        limit=q.limit,
        use_index=index,
    )
    return [bytes(o) for o, _ in history.log(store, [made[q.head].oid], query)]


queries = st.builds(
    Q,
    head=st.integers(0, 100),
    base=st.one_of(st.none(), st.integers(0, 100)),
    paths=st.lists(st.sampled_from([*PATHS, "d", "d/e", "zz"]), max_size=2).map(tuple),
    grep=st.one_of(st.none(), st.sampled_from(["fix", "^add", "label"])),
    author=st.one_of(st.none(), st.sampled_from(["ann", "lab$", "farm"])),
    since_days=st.one_of(st.none(), st.integers(-1, 8)),
    until_days=st.one_of(st.none(), st.integers(0, 12)),
    meta=st.lists(
        st.tuples(st.sampled_from(["split", "stage"]), st.sampled_from(["a", "b"])), max_size=1
    ).map(tuple),
    source=st.one_of(st.none(), st.integers(0, 2)),
    limit=st.one_of(st.none(), st.integers(1, 4)),
)


def _store(home: Path) -> Store:
    api.init(home, "r", "dataset", "mutable")
    api.init(home, "src", "dataset", "mutable")
    return api.open_store(home)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=1, max_size=12), qs=st.lists(queries, min_size=1, max_size=6))
def test_log_filters_match_the_reference(steps: list[tuple], qs: list[Q]) -> None:  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory(prefix="mlgitfs-logindex-") as tmp:
        home = Path(tmp) / "home"
        store = _store(home)
        try:
            made, sources = make_history(store, steps)
            for q in qs:
                n = len(made)
                q = Q(q.head % n, None if q.base is None else q.base % n, q.paths, q.grep,
                      q.author, q.since_days, q.until_days, q.meta, q.source, q.limit)  # fmt: skip
                want = reference(store, made, sources, q)
                assert ours(store, made, sources, q, index=True) == want, q
                assert ours(store, made, sources, q, index=False) == want, q
            assert fsck(store).clean
        finally:
            api.close_store(home)


# --- the index itself -----------------------------------------------------------------------


def _linear(store: Store, versions: list[Files]) -> list[ObjectId]:
    out: list[ObjectId] = []
    for n, files in enumerate(versions):
        writer = store.chunks.writer()
        objs: NewObjects = []
        tree = build_tree(store, files, writer, objs)
        req = CommitRequest("r", "main", f"v{n}", {}, [], "ann@lab", T0 + n * DAY)
        oid, _ = write_commit(
            store, req, tree, tuple(out[-1:]), out[-1] if out else None, writer, objs
        )
        writer.reset()
        out.append(oid)
    return out


def _paths_log(store: Store, head: ObjectId, path: str, index: bool = True) -> list[ObjectId]:
    q = history.LogQuery(paths=(tuple(path.encode().split(b"/")),), use_index=index)
    return [o for o, _ in history.log(store, [head], q)]


def test_records_hold_every_changed_path_and_its_directories(home: Path) -> None:
    store = _store(home)
    v1: Files = {"img/a/1.jpg": (b"1", 0o644, 0), "img/b/2.jpg": (b"2", 0o644, 0)}
    v2 = {**v1, "img/b/2.jpg": (b"2'", 0o644, 0), "labels.csv": (b"x", 0o644, 0)}
    v3 = {**v2, "img/a/1.jpg": (b"1", 0o644, 5)}  # an mtime alone: not a change
    ids = _linear(store, [v1, v2, v3])
    with store.env.read() as txn:
        recs = [commitgraph.get_record(txn, o) for o in ids]
    assert all(r is not None and r.paths is not None for r in recs)
    r1, r2, r3 = (r.paths for r in recs if r is not None)
    assert r1 is not None and r2 is not None and r3 is not None
    for key in [b"img", b"img/a", b"img/a/1.jpg", b"img/b", b"img/b/2.jpg"]:
        assert bloom.may_contain(r1, bloom.path_hash(key))
    for key in [b"img", b"img/b", b"img/b/2.jpg", b"labels.csv"]:
        assert bloom.may_contain(r2, bloom.path_hash(key))
    assert r3 == bytes(1)  # nothing changed: one zero byte
    assert _paths_log(store, ids[2], "img/a") == [ids[0]]
    assert _paths_log(store, ids[2], "img") == [ids[1], ids[0]]
    assert _paths_log(store, ids[2], "labels.csv") == [ids[1]]
    assert fsck(store).clean
    api.close_store(home)


def test_a_commit_over_the_key_limit_is_marked_every_path_maybe(home: Path) -> None:
    store = _store(home)
    many: Files = {f"d{i % 7}/f{i}": (b"%d" % i, 0o644, 0) for i in range(bloom.MAX_KEYS)}
    ids = _linear(store, [many, {**many, "x": (b"x", 0o644, 0)}])
    with store.env.read() as txn:
        big, small = (commitgraph.get_record(txn, o) for o in ids)
    assert big is not None and big.paths is None  # 4096 files and 7 directories
    assert small is not None and small.paths is not None and len(small.paths) == 2
    assert _paths_log(store, ids[1], "d3/f10") == [ids[0]]
    assert _paths_log(store, ids[1], "x") == [ids[1]]
    api.close_store(home)


def test_fsck_finds_a_wrong_record_and_the_rebuilt_index_answers_like_a_full_walk(
    home: Path,
) -> None:
    store = _store(home)
    versions: list[Files] = [{"a/x": (b"0", 0o644, 0)}]
    for n in range(1, 12):
        files = dict(versions[-1])
        files[f"{'ab'[n % 2]}/f{n % 4}"] = (b"%d" % n, 0o644, 0)
        versions.append(files)
    ids = _linear(store, versions)
    paths = ["a", "b", "a/x", "b/f1", "a/f2", "nowhere"]
    want = {p: _paths_log(store, ids[-1], p, index=False) for p in paths}
    assert {p: _paths_log(store, ids[-1], p) for p in paths} == want
    # A record that says "nothing changed" would hide a commit: fsck names it.
    with store.env.write() as txn:
        good = commitgraph.get_record(txn, ids[5])
        assert good is not None
        commitgraph.put_record(txn, ids[5], GraphRecord(good.time_ns, good.parents, good.tree,
                                                        bytes(1)))  # fmt: skip
    report = fsck(store)
    assert [d.object for d in report.damage] == [bytes(ids[5]).hex()[:12]]
    assert "commit-graph record" in report.damage[0].reason
    # Records dropped (a store from before the index) are not damage; rebuilt, all answer.
    with store.env.write() as txn:
        commitgraph.clear(txn)
        commitgraph.put_record(txn, ids[5], GraphRecord(good.time_ns, good.parents, good.tree,
                                                        bytes(1)))  # fmt: skip
    assert not fsck(store).clean
    rebuilt = fsck(store, rebuild_index=True)
    assert rebuilt.index_rebuilt == len(ids) and rebuilt.clean
    with store.env.read() as txn:
        assert sum(1 for _ in commitgraph.records(txn)) == len(ids)
    assert {p: _paths_log(store, ids[-1], p) for p in paths} == want
    assert fsck(store).clean
    api.close_store(home)
