"""Row blame from chunk lists (repo/chunkrows.py) against plain references: the rows that
differ between two versions of a many-chunk table (quoted fields with commas, quotes and
newlines cut across chunks), and row blame over generated histories (rows deleted and added
again, rows moved, renamed files, one row asked for)."""

from __future__ import annotations

import csv
import io
import json
import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgitfs import api
from mlgitfs.errors import NotFound
from mlgitfs.merge.rows import codec_for
from mlgitfs.merge.text import TextCodec
from mlgitfs.model.ids import ChunkId, ObjectId, hash_bytes
from mlgitfs.model.objects import ChunkRef, EntryKind, Manifest, TreeEntry, object_id
from mlgitfs.repo.blamerows import blame_rows
from mlgitfs.repo.chunklayout import ChunkCache, Layout
from mlgitfs.repo.chunkrows import TableVersions
from mlgitfs.repo.commits import CommitRequest, write_commit
from mlgitfs.repo.fsck import fsck
from mlgitfs.repo.trees import NewObjects, build_dir
from mlgitfs.store.cache import SegmentWriter
from mlgitfs.store.chunker import Chunker, ChunkerParams
from mlgitfs.store.facade import Store

# tiny content-defined chunks, so that a table of a few dozen rows spans many of them and a
# quoted field often straddles a boundary
TINY = Chunker(ChunkerParams(64, 256, 1024, 1))
T0 = 1_700_000_000 * 10**9

LABELS = ["cat", "dog", 'say "hi"', "a,b", "two\nlines", '"\n",x', "", 'é,"\n"']
KEYS = [f"k{i:02d}" for i in range(40)]


def _store(home: Path) -> Store:
    api.init(home, "r", "dataset", "mutable")
    return api.open_store(home)


def _csv(rows: list[tuple[str, str, str]]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["id", "label", "note"])
    w.writerows(rows)
    return out.getvalue().encode()


def _jsonl(rows: list[tuple[str, str, str]]) -> bytes:
    return "".join(json.dumps({"id": k, "label": a, "note": b}) + "\n" for k, a, b in rows).encode()


def _chunks(writer: SegmentWriter, data: bytes) -> list[ChunkRef]:
    """`data` cut into TINY chunks, added to `writer`."""
    refs = []
    for off, n in TINY.cut(data):
        piece = data[off : off + n]
        cid = ChunkId(hash_bytes(piece))
        writer.add(cid, 0, piece, n)
        refs.append(ChunkRef(cid, n))
    return refs


def _entry(writer: SegmentWriter, objs: NewObjects, name: str, data: bytes) -> TreeEntry:
    """A file entry cut into TINY chunks (a manifest when there are several)."""
    refs = _chunks(writer, data)
    if len(refs) == 1:
        return TreeEntry(name.encode(), EntryKind.FILE, 0o644, len(data), 0, bytes(refs[0].id))
    oid, raw = object_id(Manifest(tuple(refs)))
    objs.append((oid, raw))
    return TreeEntry(name.encode(), EntryKind.CHUNKED, 0o644, len(data), 0, bytes(oid))


def _tree(writer: SegmentWriter, objs: NewObjects, files: dict[str, bytes]) -> ObjectId:
    subdirs: dict[str, dict[str, bytes]] = {}
    entries = []
    for path, data in files.items():
        head, sep, rest = path.partition("/")
        if sep:
            subdirs.setdefault(head, {})[rest] = data
        else:
            entries.append(_entry(writer, objs, head, data))
    for name, sub in subdirs.items():
        ref = _tree(writer, objs, sub)
        entries.append(TreeEntry(name.encode(), EntryKind.DIR, 0o755, len(sub), 0, bytes(ref)))
    entries.sort(key=lambda e: e.name)
    return build_dir(entries, objs)


def _commit(store: Store, files: dict[str, bytes], head: ObjectId | None, n: int) -> ObjectId:
    writer = store.chunks.writer()
    objs: NewObjects = []
    tree = _tree(writer, objs, files)
    req = CommitRequest("r", "main", f"c{n}", {}, [], "ann@lab", T0 + n)
    oid, _ = write_commit(store, req, tree, (head,) if head else (), head, writer, objs)
    writer.reset()
    return oid


row = st.tuples(st.sampled_from(KEYS), st.sampled_from(LABELS), st.sampled_from(LABELS))
table = st.dictionaries(st.sampled_from(KEYS), st.tuples(st.sampled_from(LABELS), st.text(
    alphabet="ab,\"\n x", max_size=12)), max_size=40)  # fmt: skip


def _rows(t: dict[str, tuple[str, str]], seed: int) -> list[tuple[str, str, str]]:
    """The table's rows in an order fixed by `seed` (0: by key), as a file would hold them."""
    keys = sorted(t)
    if seed:
        random.Random(seed).shuffle(keys)
    return [(k, *t[k]) for k in keys]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_changed_rows_from_chunks_match_a_plain_dict_diff(fmt: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    store = _store(home)
    path = f"t.{fmt}"
    codec = codec_for(path)
    assert isinstance(codec, TextCodec)
    encode = _csv if fmt == "csv" else _jsonl

    def layout(versions: TableVersions, data: bytes) -> Layout:
        writer = store.chunks.writer()
        refs = _chunks(writer, data)
        writer.flush()
        with store.env.write() as txn:
            writer.record(txn)
        writer.reset()
        return versions.layout(refs)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(old=table, new=table, shuffle=st.sampled_from([0, 0, 0, 7]), fill=st.integers(0, 60))
    def check(
        old: dict[str, tuple[str, str]], new: dict[str, tuple[str, str]], shuffle: int, fill: int
    ) -> None:
        # rows both versions share, so that most chunks match and the resync points matter
        shared = {f"s{i:03d}": ("same", "x" * (i % 9)) for i in range(fill)}
        old, new = {**shared, **old}, {**shared, **new}
        a, b = encode(_rows(old, 0)), encode(_rows(new, shuffle))
        versions = TableVersions(ChunkCache(store), codec, path, ("id",), "utf-8")
        got = versions.changes(layout(versions, a), layout(versions, b))
        assert got is not None
        ra = {r["id"]: r for r in codec.all_rows(codec.decode(a, "a", path))}
        rb = {r["id"]: r for r in codec.all_rows(codec.decode(b, "b", path))}
        keys = ra.keys() | rb.keys()
        want = {(k,): (rb.get(k), ra.get(k)) for k in keys if ra.get(k) != rb.get(k)}
        assert got.rows == want

    try:
        check()
        assert fsck(store).clean
    finally:
        api.close_store(home)


op = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(KEYS[:12]), st.sampled_from(LABELS)),
    st.tuples(st.just("drop"), st.sampled_from(KEYS[:12]), st.just("")),
    st.tuples(st.just("move"), st.sampled_from(["t.csv", "sub/t.csv", "u.csv"]), st.just("")),
    st.tuples(st.just("shuffle"), st.just(""), st.just("")),
    st.tuples(st.just("other"), st.just(""), st.sampled_from(LABELS)),
)


Version = tuple[ObjectId, str, dict[str, str], bytes]  # commit, path, key → label, file


def _reference(history: list[Version]) -> dict[str, bytes]:
    """key → the commit that last set its row, walking the versions plainly: where the row
    differs from the version before, or where the file moved and changed at once."""
    want: dict[str, bytes] = {}
    for k in history[-1][2]:
        for i in range(len(history) - 1, -1, -1):
            c, p, t, data = history[i]
            prev = history[i - 1] if i else None
            if prev is None or (prev[1] != p and prev[3] != data) or prev[2].get(k) != t.get(k):
                want[k] = bytes(c)
                break
    return want


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    commits=st.lists(st.lists(op, min_size=1, max_size=3), min_size=1, max_size=10),
    fill=st.integers(0, 80),
    fmt=st.sampled_from(["csv", "csv", "jsonl"]),
)
def test_row_blame_over_many_chunk_versions_matches_the_reference(
    commits: list[list[tuple[str, str, str]]], fill: int, fmt: str
) -> None:
    encode = _csv if fmt == "csv" else _jsonl

    def shown(k: str) -> str:  # a key as blame shows it (JSON Lines: its JSON text)
        return k if fmt == "csv" else json.dumps(k)

    with tempfile.TemporaryDirectory(prefix="mlgitfs-chunkblame-") as tmp:
        home = Path(tmp) / "home"
        store = _store(home)
        try:
            t: dict[str, str] = {f"f{i:03d}": "filler " * (i % 5) for i in range(fill)}
            t["k00"] = "cat"
            path, other, order = f"t.{fmt}", "x", 0
            history: list[Version] = []
            head = None
            for n, ops in enumerate(commits):
                for o, a, b in ops:
                    if o == "set":
                        t = {**t, a: b}
                    elif o == "drop":
                        t = {k: v for k, v in t.items() if k != a}
                    elif o == "move":
                        path = a.replace(".csv", f".{fmt}")
                    elif o == "shuffle":
                        order += 1
                    else:
                        other = b
                rows = _rows({k: (v, "") for k, v in t.items()}, order)
                data = encode(rows)
                head = _commit(store, {path: data, "readme": other.encode()}, head, n)
                history.append((head, path, dict(t), data))
            assert head is not None
            want = _reference(history)
            parts = tuple(path.encode().split(b"/"))
            for index in (True, False):
                got = blame_rows(store, head, parts, ["id"], index)
                assert {str(x.key[0]): bytes(x.commit) for x in got.rows} == {
                    shown(k): c for k, c in want.items()
                }
                if t:
                    k = sorted(t)[len(t) // 2]
                    one = blame_rows(store, head, parts, ["id"], index, only=[[shown(k)]])
                    assert [(x.key, bytes(x.commit)) for x in one.rows] == [((shown(k),), want[k])]
            with pytest.raises(NotFound, match="no row with the key"):
                blame_rows(store, head, parts, ["id"], only=[["nope"]])
            assert fsck(store).clean
        finally:
            api.close_store(home)


# --- chunks of files that are not tables ----------------------------------------------------

byte_op = st.one_of(
    st.tuples(st.just("append"), st.integers(1, 900)),
    st.tuples(st.just("patch"), st.integers(0, 10_000)),
    st.tuples(st.just("cut"), st.integers(0, 10_000)),
    st.tuples(st.just("move"), st.sampled_from([0, 1, 2])),
    st.tuples(st.just("other"), st.integers(0, 99)),
)
NAMES = ["blob.bin", "sub/blob.bin", "x.dat"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commits=st.lists(st.lists(byte_op, min_size=1, max_size=3), min_size=1, max_size=8))
def test_chunk_blame_matches_a_reference_over_chunk_sets(
    commits: list[list[tuple[str, int]]],
) -> None:
    from mlgitfs.repo.blamechunks import blame_chunks
    from mlgitfs.repo.trees import file_chunks, resolve_path

    rnd = random.Random(len(commits))
    with tempfile.TemporaryDirectory(prefix="mlgitfs-chunkblame-") as tmp:
        home = Path(tmp) / "home"
        store = _store(home)
        try:
            data = rnd.randbytes(3000)
            path, other = NAMES[0], b"x"
            history: list[tuple[ObjectId, str, bytes, list[bytes]]] = []
            head = None
            for n, ops in enumerate(commits):
                for o, v in ops:
                    at = v % max(len(data), 1)
                    if o == "append":
                        data += rnd.randbytes(v)
                    elif o == "patch":
                        data = data[:at] + rnd.randbytes(8) + data[at + 8 :]
                    elif o == "cut":
                        data = data[:at] + data[at + 300 :]
                    elif o == "move":
                        path = NAMES[v]
                    else:
                        other = str(v).encode()
                head = _commit(store, {path: data, "readme": other}, head, n)
                e = resolve_path(store, store.commit(head).tree, tuple(path.encode().split(b"/")))
                assert e is not None
                history.append((head, path, data, [bytes(c.id) for c in file_chunks(store, e)]))
            assert head is not None
            # the reference: the newest version holding the chunk whose predecessor (at the
            # same path, or the same bytes: a plain rename) does not
            want = []
            for cid in history[-1][3]:
                for i in range(len(history) - 1, -1, -1):
                    c, p, d, ids = history[i]
                    prev = history[i - 1] if i else None
                    older = set(prev[3]) if prev and (prev[1] == p or prev[2] == d) else set()
                    if cid in ids and cid not in older:
                        want.append(bytes(c))
                        break
            e = resolve_path(store, store.commit(head).tree, tuple(path.encode().split(b"/")))
            assert e is not None
            for index in (True, False):
                got = blame_chunks(store, head, path.encode(), e, index)
                assert [bytes(x.commit) for x in got] == want
                assert [x.start for x in got] == [
                    sum(x.length for x in got[:i]) for i in range(len(got))
                ]
                assert sum(x.length for x in got) == len(data)
            assert fsck(store).clean
        finally:
            api.close_store(home)


def test_recorded_quote_parities_are_checked_by_fsck_and_made_again_by_rebuild(
    tmp_path: Path,
) -> None:
    from mlgitfs.meta import chunkquotes

    home = tmp_path / "home"
    store = _store(home)
    try:
        t = {f"k{i:03d}": (LABELS[i % len(LABELS)], "n") for i in range(60)}
        one = _commit(store, {"t.csv": _csv(_rows(t, 0))}, None, 0)
        t["k030"] = ("relabelled", "n")
        two = _commit(store, {"t.csv": _csv(_rows(t, 0))}, one, 1)
        got = blame_rows(store, two, (b"t.csv",), ["id"], only=[["k030"], ["k001"]])
        assert [bytes(x.commit) for x in got.rows] == [bytes(one), bytes(two)]
        assert got.by_chunks == 1

        with store.env.read() as txn:
            kept = chunkquotes.recorded(txn)
        assert kept and fsck(store).clean
        cid, odd = next(iter(kept.items()))
        with store.env.write() as txn:  # a wrong record, as a bug or a hand edit would leave
            chunkquotes.put_many(txn, [(cid, not odd)])
        report = fsck(store)
        assert [d.reason for d in report.damage] == [
            "recorded quote parity disagrees with the chunk"
        ]
        fsck(store, rebuild_index=True)  # every record dropped, the tables' made again
        with store.env.read() as txn:
            again = chunkquotes.recorded(txn)
        assert again[cid] == odd and kept.items() <= again.items()
        assert fsck(store).clean
    finally:
        api.close_store(home)
