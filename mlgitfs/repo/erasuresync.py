"""Erasure records travelling with a repo: `erasures/REPO` on a remote, merged by union.

The key holds a list of erasure records (meta/erasures.py), each with the chunks that only
erased files held in the store that wrote it. Push adds the local records of the repo that
the remote lacks, by compare-and-swap on the key's ETag (a lost race re-reads and merges
again); nothing is ever taken out, so two pushers' records both stay. Fetch, pull and
clone add the remote's records the store lacks, and their chunks to the store's
erased-chunk set, so the fetcher refuses them at once (before any gc of this store ran)
and reads name the erasure (FileErased). The key is written after the refs of a push and
read after the refs of a fetch: a record names versions, it keeps nothing alive.

Remote gc reads these records as its own (repo/remotegcmark.py): the chunks only erased
files hold are dead there, and the packs holding them are rewritten without them.

A record is the same record wherever it goes: its identity is its encoding without the
store's sequence number and with the repo name left out (a clone may name the repo
differently; the record takes the local name).
"""

from __future__ import annotations

import dataclasses

from mlgitfs.errors import CorruptObject, PreconditionFailed
from mlgitfs.meta import erasures
from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.meta.erasures import ErasureRecord
from mlgitfs.model import codec
from mlgitfs.model.ids import ID_LEN
from mlgitfs.model.names import check_repo_name
from mlgitfs.repo import erase
from mlgitfs.store import packs
from mlgitfs.store.facade import Store
from mlgitfs.store.remote import RemoteTransport

RETRIES = 5
CAP = 256 << 20
Entry = tuple[ErasureRecord, frozenset[bytes]]  # a record, the chunks only erased files held


def key(remote_repo: str) -> str:
    return f"erasures/{check_repo_name(remote_repo)}"


def identity(rec: ErasureRecord) -> bytes:
    return dataclasses.replace(rec, seq=0, repo="").encode()


def encode(entries: list[Entry]) -> bytes:
    items = sorted([identity(r), sorted(c)] for r, c in entries)
    return codec.pack([1, items])


def decode(data: bytes, where: str) -> list[Entry]:
    """Every record of the key, each checked field by field before anything is built from
    it (CorruptObject naming the key otherwise)."""
    try:
        version, items = codec.unpack(data, where)
        _want(version == 1 and isinstance(items, list), "not a version 1 list")
        out: list[Entry] = []
        for i, item in enumerate(items):
            _want(isinstance(item, list) and len(item) == 2, "not [record, chunks]")
            body, cids = item
            _want(isinstance(body, bytes) and _is_ids(cids), "not [record, chunks]")
            _check_record(codec.unpack(body, where))
            out.append((ErasureRecord.decode(i + 1, body), frozenset(cids)))
    except (TypeError, ValueError, CorruptObject) as exc:
        raise CorruptObject(where, f"malformed list of erasure records ({exc})") from exc
    return out


def _want(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(what)


def _is_ids(xs: object) -> bool:
    return isinstance(xs, list) and all(isinstance(x, bytes) and len(x) == ID_LEN for x in xs)


def _check_record(fields: object) -> None:
    """The fields of ErasureRecord.encode, as a push writes them (no repo name: a record on
    a remote is the repo's, whatever the stores call it)."""
    if not isinstance(fields, list) or len(fields) != 8:
        raise ValueError("a record has 8 fields")
    v, t, who, why, repo, paths, files, commits = fields
    _want(v == 1 and isinstance(t, int) and isinstance(who, str) and isinstance(why, str),
          "record version, time, who or why")  # fmt: skip
    _want(repo == "" and isinstance(paths, list) and all(isinstance(p, str) for p in paths),
          "record repo or paths")  # fmt: skip
    _want(isinstance(files, list) and len(files) > 0, "a record names files")
    for f in files:
        _want(isinstance(f, list) and len(f) == 2 and isinstance(f[0], bytes), "record file")
        _want(_is_ids([f[1]]), "record file id")
    _want(_is_ids(commits), "record commits")


def read_remote(t: RemoteTransport, remote_repo: str) -> tuple[list[Entry], str | None]:
    """The remote's records of `remote_repo` with the key's ETag (([], None) without)."""
    k = key(remote_repo)
    got = packs.get_capped_with_etag(t, k, CAP)
    if got is None:
        return [], None
    return decode(got[0], k), got[1]


def local_entries(txn: ReadTxn, repo: str) -> list[Entry]:
    """The store's records of `repo`, each with its chunks the store holds as erased."""
    erased = erasures.erased_chunk_ids(txn)
    out = []
    for rec in erasures.list_all(txn):
        if rec.repo == repo:
            mine = erase.erased_chunks(txn, [rec], set()) & erased
            out.append((dataclasses.replace(rec, seq=0, repo=""), frozenset(mine)))
    return out


def publish_repo(store: Store, t: RemoteTransport, repo: str, remote_repo: str) -> int:
    """Push's step: the store's records of `repo` the remote lacks go up."""
    with store.env.read() as txn:
        mine = local_entries(txn, repo)
    return publish(mine, t, remote_repo)


def publish(txn_entries: list[Entry], t: RemoteTransport, remote_repo: str) -> int:
    """Add the records the remote lacks (union, by CAS); how many were added."""
    if not txn_entries:
        return 0
    k = key(remote_repo)
    for _ in range(RETRIES):
        theirs, etag = read_remote(t, remote_repo)
        have = {identity(r) for r, _ in theirs}
        new = [(r, c) for r, c in txn_entries if identity(r) not in have]
        if not new:
            return 0
        data = encode(theirs + new)
        try:
            if etag is None:
                t.put_if_absent(k, data)
            else:
                t.put_if_match(k, data, etag)
            return len(new)
        except PreconditionFailed:
            continue  # another push added records meanwhile: merge with theirs again
    raise PreconditionFailed(f"{t.describe()}: {k} kept changing; push again")


def adopt(txn: WriteTxn, repo: str, theirs: list[Entry]) -> list[ErasureRecord]:
    """Record the remote's records the store lacks, under the local repo name, and add
    their chunks to the erased-chunk set; the records added."""
    have = {identity(r) for r in erasures.list_all(txn)}
    added: list[ErasureRecord] = []
    chunks: set[bytes] = set()
    for rec, cids in theirs:
        if identity(rec) in have:
            continue
        have.add(identity(rec))
        added.append(erasures.add(txn, dataclasses.replace(rec, repo=repo)))
        chunks |= cids
    if chunks:
        erasures.set_erased_chunks(txn, set(erasures.erased_chunk_ids(txn)) | chunks)
    return added
