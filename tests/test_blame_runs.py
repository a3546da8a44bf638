"""Row blame's cheap steps: manifests read from their encoded bytes (model/manifestraw.py)
against `decode`, and quote parities recorded when a CSV or TSV file's chunks are stored
(import, a path write) against the counted ones, with blame's answers equal to a plain
reference whichever way the parities came."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mlgitfs import api
from mlgitfs.merge.rows import codec_for
from mlgitfs.meta import chunkquotes
from mlgitfs.model import manifestraw
from mlgitfs.model.decode import decode
from mlgitfs.model.ids import ChunkId, ObjectId, hash_bytes
from mlgitfs.model.objects import ChunkRef, Manifest, object_id
from mlgitfs.repo.blamerows import blame_rows, entry_bytes
from mlgitfs.repo.fsck import fsck
from mlgitfs.repo.history import walk_commits
from mlgitfs.repo.pathcommit import PathEdit
from mlgitfs.repo.refs import resolve
from mlgitfs.repo.trees import file_chunks, resolve_path
from mlgitfs.store.facade import Store

lengths = st.one_of(
    st.integers(1, 300), st.integers(65_536, 3 << 20), st.sampled_from([127, 128, 255, 256])
)


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(lengths, min_size=2, max_size=40),
    flip=st.integers(0, 10_000),
    to=st.integers(0, 255),
    seed=st.integers(0, 1000),
)
def test_a_raw_manifest_reads_exactly_what_decode_reads(
    sizes: list[int], flip: int, to: int, seed: int
) -> None:
    rnd = random.Random(seed)
    refs = [ChunkRef(ChunkId(rnd.randbytes(32)), n) for n in sizes]
    if seed % 3 == 0:
        refs[-1] = refs[0]  # a chunk listed twice
    oid, data = object_id(Manifest(tuple(refs)))
    got = manifestraw.parse(data, bytes(oid))
    assert got is not None
    assert [(got.chunk_id(i), got.length(i)) for i in range(got.n)] == [
        (bytes(r.id), r.length) for r in refs
    ]
    assert got.starts[-1] == sum(r.length for r in refs) == got.size
    i = rnd.randrange(len(refs))
    j = rnd.randrange(i, len(refs)) + 1
    at = got.find(got.entries(i, j))
    assert at is not None and at <= i
    assert [bytes(r.id) for r in refs[at : at + j - i]] == [bytes(r.id) for r in refs[i:j]]
    assert manifestraw.parse(data, hash_bytes(b"another")) is None
    # any damage: refused, or read as decode reads it
    bad = bytearray(data)
    bad[flip % len(bad)] = to
    bad_id = hash_bytes(bytes(bad))
    raw = manifestraw.parse(bytes(bad), bad_id)
    if raw is not None:
        m = decode(bytes(bad), bad_id)
        assert isinstance(m, Manifest)
        assert [(bytes(c.id), c.length) for c in m.chunks] == [
            (raw.chunk_id(i), raw.length(i)) for i in range(raw.n)
        ]


def _table(labels: dict[int, str]) -> bytes:
    """A CSV with quoted fields (quotes, commas, newlines) of about 120 bytes a row."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["id", "label", "note"])
    for i, label in labels.items():
        note = f'say "hi", {i}\nsecond line' if i % 7 == 0 else f"plain note {i:06d} " * 4
        w.writerow([f"r{i:06d}", label, note])
    return out.getvalue().encode()


def _table_chunks(store: Store, head: ObjectId, names: list[str]) -> dict[str, set[bytes]]:
    out = {}
    for name in names:
        e = resolve_path(store, store.commit(head).tree, (name.encode(),))
        assert e is not None
        out[name] = {bytes(c.id) for c in file_chunks(store, e)}
    return out


def _reference(store: Store, head: ObjectId) -> dict[str, bytes]:
    """key → the commit that last set its row: each version decoded whole, compared with
    the one before (a linear history)."""
    codec = codec_for("labels.csv")
    versions = []
    for oid, c in walk_commits(store, [head]):
        e = resolve_path(store, c.tree, (b"labels.csv",))
        assert e is not None
        rows = codec.all_rows(codec.decode(entry_bytes(store, e), "v", "labels.csv"))
        versions.append((bytes(oid), {str(r["id"]): r for r in rows}))
    want = {}
    for k in versions[0][1]:
        for n, (oid, rows) in enumerate(versions):
            older = versions[n + 1][1] if n + 1 < len(versions) else {}
            if older.get(k) != rows[k]:
                want[k] = oid
                break
    return want


def _blame(store: Store, head: ObjectId, keys: list[str]) -> tuple[dict[str, bytes], int]:
    """Every row's commit, and each of `keys` alone (checked equal); versions by runs."""
    every = blame_rows(store, head, (b"labels.csv",), ["id"])
    got = {str(r.key[0]): bytes(r.commit) for r in every.rows}
    runs = 0
    for k in keys:
        one = blame_rows(store, head, (b"labels.csv",), ["id"], only=[[k]])
        assert [(str(r.key[0]), bytes(r.commit)) for r in one.rows] == [(k, got[k])]
        runs += one.by_runs
    return got, runs


def test_parities_recorded_when_stored_give_blame_the_reference_answers(tmp_path: Path) -> None:
    home = tmp_path / "store"
    api.init(home, "r", "dataset", "mutable")
    rnd = random.Random(18)
    labels = {i: rnd.choice(["cat", "dog", 'a "b"', "x,y"]) for i in range(30_000)}
    src = tmp_path / "src"
    src.mkdir()
    blob = rnd.randbytes(700_000)
    (src / "blob.bin").write_bytes(blob)
    (src / "notes.tsv").write_bytes(b'id\tnote\n1\t"odd\n')
    for n in range(6):
        if n:
            for i in rnd.sample(sorted(labels), 2):
                labels[i] = f'relabelled "{n}"' if i % 2 else f"relabelled {n}"
            labels[len(labels) + 100] = "new"
            del labels[rnd.choice(sorted(labels))]
        (src / "labels.csv").write_bytes(_table(labels))
        if n == 5:  # a path write (fsspec's, `write_paths`) rather than an import
            target = api.write_target(home, "r@main")
            api.write_paths(home, target, [PathEdit("labels.csv", _table(labels))], "v5")
        else:
            api.import_dir(home, "r", src, f"v{n}")
    store = api.open_store(home)
    try:
        head = resolve(store, "r@main").commit_id
        with store.env.read() as txn:
            kept = chunkquotes.recorded(txn)
        table_ids: set[bytes] = set()
        for oid, _ in walk_commits(store, [head]):
            chunks = _table_chunks(store, oid, ["labels.csv", "notes.tsv", "blob.bin"])
            table_ids |= chunks["labels.csv"] | chunks["notes.tsv"]
            assert not chunks["blob.bin"] & kept.keys()  # not a table: nothing recorded
        assert len(table_ids) > 4  # the CSV is several content-defined chunks
        # every table chunk's parity is in the store, and is the one its bytes have
        assert kept == {c: chunkquotes.odd(store.read_chunk(ChunkId(c))) for c in table_ids}
        assert fsck(store).clean

        want = _reference(store, head)
        keys = [f"r{i:06d}" for i in sorted(labels)[:: len(labels) // 5]]
        recorded, runs = _blame(store, head, keys)
        assert recorded == want
        assert runs > 0  # versions passed over from their encoded manifests alone
        with store.env.read() as txn:
            assert chunkquotes.recorded(txn) == kept  # blame had nothing left to count

        with store.env.write() as txn:  # as a store from before, or a cloned one: counted
            chunkquotes.clear(txn)
        counted, _ = _blame(store, head, keys)
        assert counted == want
        assert fsck(store).clean

        report = fsck(store, rebuild_index=True)  # made again from the tables' chunks
        assert report.clean
        with store.env.read() as txn:
            assert chunkquotes.recorded(txn) == kept
    finally:
        api.close_store(home)
