"""Erase: remove the contents of named files from the versions of a repo, keeping history.

`erase` records the erasure (meta/erasures.py) and runs gc with threshold 1 (repo/gc.py):
gc's mark does not keep an erased occurrence's chunks live, so the sweep drops them from
LMDB and the segment step rewrites every segment file that held one, so the bytes leave
the disk. Commit, tree and manifest objects stay (ids, names and sizes do not change).
Bytes that a file not erased also holds (another path, another repo, a later version, a
checkout's overlay) stay: `keepers` finds those by a walk that knows each entry's path.

Without `all_versions`, the contents erased are those the paths have in the named version
(REPO, or REPO@REF), wherever they appear at those paths in the repo's history; with it,
every content the paths ever had. Either way from every version the repo's refs, reflog
and checkouts reach at the time of the erase.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

from mlgitfs.errors import CorruptObject, FileErased, PathNotFound, UsageError
from mlgitfs.meta import checkouts, db, erasures
from mlgitfs.meta.env import ReadTxn
from mlgitfs.meta.erasures import ErasureRecord
from mlgitfs.model.actor import default_actor
from mlgitfs.model.decode import decode
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.objects import Commit, EntryKind, KindT, Manifest, Object, TreeEntry
from mlgitfs.repo import refs
from mlgitfs.repo.trees import DirView, resolve_path, walk
from mlgitfs.store.facade import Store

FILE_KINDS = (EntryKind.FILE, EntryKind.CHUNKED)


@dataclass(frozen=True, slots=True)
class ErasePlan:
    record: ErasureRecord
    versions: int


Load = Callable[[bytes], bytes | None]  # an object's bytes by id, None when not at hand


class _Reader:
    """Objects read by `load` (the ObjectReader trees.walk needs)."""

    def __init__(self, load: Load) -> None:
        self.load = load

    def get_object(self, oid: ObjectId) -> Object:
        data = self.load(oid)
        if data is None:
            raise CorruptObject(short_hex(oid), "missing")
        return decode(data, oid)

    def get(self, oid: ObjectId, kind: type[KindT]) -> KindT:
        obj = self.get_object(oid)
        if not isinstance(obj, kind):
            raise CorruptObject(short_hex(oid), f"expected a {kind.__name__}")
        return obj


class _TxnReader(_Reader):
    """Objects read through one LMDB transaction."""

    def __init__(self, txn: ReadTxn) -> None:
        super().__init__(lambda oid: db.get_object_bytes(txn, ObjectId(oid)))


def repo_commits(txn: ReadTxn, repo: str) -> set[bytes]:
    """Every commit the repo's refs, live reflog entries and checkouts reach (local ones)."""
    stack = [bytes(oid) for _, oid in db.list_refs(txn, repo)]
    stack += list(db.reflog_commits(txn, repo))
    stack += [bytes(c.base) for r, _, c in checkouts.list_checkouts(txn) if r == repo]
    seen: set[bytes] = set()
    while stack:
        oid = stack.pop()
        if oid in seen:
            continue
        data = db.get_object_bytes(txn, ObjectId(oid))
        if data is None:
            continue  # beyond a partial fetch: not here to erase
        obj = decode(data, oid)
        if isinstance(obj, Commit):
            seen.add(oid)
            stack.extend(bytes(p) for p in obj.parents)
    return seen


def _files_at(reader: _TxnReader, tree: ObjectId, path: bytes) -> list[tuple[bytes, bytes]]:
    """(path, file id) of the file at `path`, or of every file below the directory."""
    try:
        entry = resolve_path(reader, tree, path.split(b"/")) if path else None
    except PathNotFound:
        return []
    if entry is not None and entry.kind in FILE_KINDS:
        return [(path, bytes(entry.ref))]
    if entry is not None and entry.kind is not EntryKind.DIR:
        return []
    ref = tree if entry is None else ObjectId(entry.ref)
    prefix = path + b"/" if path else b""
    return [(p, bytes(e.ref)) for p, e in walk(reader, ref, prefix) if e.kind in FILE_KINDS]


def plan(store: Store, revspec: str, paths: list[str], all_versions: bool, why: str) -> ErasePlan:
    """The erasure record for `paths` of `revspec`'s repo (nothing written)."""
    if not paths:
        raise UsageError("name at least one PATH to erase")
    r = refs.resolve(store, revspec)
    if r.spec.path:
        raise UsageError(f"give the repo (or REPO@REF) and the paths apart, not {revspec}")
    wanted = [p.strip("/").encode() for p in paths]
    with store.env.read() as txn:
        commits = repo_commits(txn, r.repo)
        reader = _TxnReader(txn)
        head: set[tuple[bytes, bytes]] = set()
        for p in wanted:
            found = _files_at(reader, r.commit.tree, p)
            if not found and not all_versions:
                raise PathNotFound(f"{r.repo}@{short_hex(r.commit_id)} has no file {p.decode()}")
            head.update(found)
        files = set(head)
        if all_versions:
            for c in commits:
                tree = reader.get(ObjectId(c), Commit).tree
                for p in wanted:
                    files.update(_files_at(reader, tree, p))
            if not files:
                raise PathNotFound(f"no version of {r.repo} has {', '.join(paths)}")
    rec = ErasureRecord(0, time.time_ns(), default_actor(), why, r.repo,
                        tuple(p.decode() for p in wanted), frozenset(files),
                        frozenset(commits))  # fmt: skip
    return ErasePlan(rec, len(commits))


def keepers(
    txn: ReadTxn,
    records: list[ErasureRecord],
    commits: Iterable[bytes],
    expired: frozenset[bytes],
    entries: Iterable[TreeEntry],
) -> list[TreeEntry]:
    """Entries of erased file ids that some occurrence *not* erased still needs: found in
    the trees of `commits` and their history (not expired ones: their contents go anyway)
    with each entry's path, and in the loose overlay `entries` (path unknown: kept)."""
    load = partial(_txn_load, txn)
    return keepers_by(load, records, commits, expired, entries)


def _txn_load(txn: ReadTxn, oid: bytes) -> bytes | None:
    return db.get_object_bytes(txn, ObjectId(oid))


def keepers_by(
    load: Load,
    records: list[ErasureRecord],
    commits: Iterable[bytes],
    expired: frozenset[bytes],
    entries: Iterable[TreeEntry] = (),
) -> list[TreeEntry]:
    """`keepers` with objects read by `load` (remote gc reads a remote's packs)."""
    ids = frozenset().union(*(r.file_ids for r in records))
    out: dict[bytes, TreeEntry] = {e.ref: e for e in entries if e.ref in ids}
    reader = _Reader(load)
    erased_in: dict[bytes, frozenset[tuple[bytes, bytes]]] = {}
    for r in records:
        for c in r.commits:
            erased_in[c] = erased_in.get(c, frozenset()) | r.files
    seen_commits: set[bytes] = set()
    seen_trees: set[tuple[bytes, bytes, frozenset[tuple[bytes, bytes]]]] = set()
    stack = [bytes(c) for c in commits]
    while stack:
        oid = stack.pop()
        if oid in seen_commits:
            continue
        seen_commits.add(oid)
        data = load(oid)
        if data is None:
            continue
        commit = decode(data, oid)
        if not isinstance(commit, Commit):
            continue
        stack.extend(bytes(p) for p in commit.parents)
        stack.extend(bytes(i) for _, i in commit.inputs)
        if oid in expired:
            continue
        here = erased_in.get(oid, frozenset())
        dirs = [(bytes(commit.tree), b"")]
        while dirs:
            tree, prefix = dirs.pop()
            if (tree, prefix, here) in seen_trees:
                continue
            seen_trees.add((tree, prefix, here))
            for e in DirView(reader, ObjectId(tree)).entries():
                path = prefix + e.name
                if e.kind is EntryKind.DIR:
                    dirs.append((bytes(e.ref), path + b"/"))
                elif e.ref in ids and (path, bytes(e.ref)) not in here:
                    out[bytes(e.ref)] = e
    return list(out.values())


def erased_chunks(txn: ReadTxn, records: list[ErasureRecord], live: set[bytes]) -> set[bytes]:
    """The chunks of the erased file ids (a manifest's chunks, or the id itself: a one-chunk
    file) that no file not erased holds (`live`: gc's final mark). Local or not: a chunk a
    remote still holds must not come back either."""
    return erased_chunks_by(partial(_txn_load, txn), records, live)


def erased_chunks_by(load: Load, records: list[ErasureRecord], live: set[bytes]) -> set[bytes]:
    """`erased_chunks` with manifests read by `load`."""
    out: set[bytes] = set()
    for fid in frozenset().union(*(r.file_ids for r in records)):
        data = load(fid)
        obj = None if data is None else decode(data, fid)
        if isinstance(obj, Manifest):
            out.update(bytes(c.id) for c in obj.chunks)
        else:
            out.add(fid)
    return out - live


def describe(rec: ErasureRecord) -> str:
    when = dt.datetime.fromtimestamp(rec.time_ns // 1_000_000_000, dt.UTC)
    why = f" ({rec.why})" if rec.why else ""
    return (f"erasure {rec.seq} by {rec.who} on {when:%Y-%m-%d %H:%M} UTC{why} of "
            f"{rec.repo}: {', '.join(rec.paths)}")  # fmt: skip


def erased_error(
    store: Store,
    repo: str,
    commit: ObjectId,
    path: bytes | None = None,
    file_id: bytes | None = None,
) -> FileErased | None:
    """The error a read of an erased file of `commit` (at `path`, with `file_id`, if known)
    gives; None when no erasure covers it."""
    with store.env.read() as txn:
        rec = erasures.find(txn, bytes(commit), path, file_id)
    return None if rec is None else file_erased(rec, repo, commit, path)


def file_erased(rec: ErasureRecord, repo: str, commit: bytes, path: bytes | None) -> FileErased:
    """FileErased naming `rec`, for the file at `path` (None: some file) of `commit`."""
    what = f"{repo}@{short_hex(commit)}" + (f":{path.decode(errors='replace')}" if path else "")
    return FileErased(what, f"{what}: contents erased by {describe(rec)}; its history, "
                      "names and sizes remain")  # fmt: skip
