"""Bundles: a repo's whole history and contents in one file (cold storage), and back.

A bundle holds what a push of every branch and tag to an empty remote would upload, found by
the push planner (repo/push.Plan, told of no remote): the chunks, then the objects children
before parents, then the retention rule set and the refs. The reflog, checkouts and
remote-tracking refs stay behind. The file format and its atomic write are in
store/bundlefile.py.

Restoring checks the whole file first (bundlefile.verify), then every chunk and object
against its id as it is read, writes the chunks (pinned: no remote holds them) and records
them with the objects, the repo, its rules and its refs in one LMDB transaction: a restore
that fails or is killed leaves no repo (its segment files go, or fsck's orphan sweep finds
them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from mlgitfs.errors import AlreadyExists, BundleDamaged, CorruptObject, MissingObject
from mlgitfs.meta import db, retention
from mlgitfs.meta.db import Mutability, RepoKind, RepoRecord
from mlgitfs.model.ids import ID_LEN, ChunkId, ObjectId, hash_bytes, short_hex
from mlgitfs.model.names import check_repo_name
from mlgitfs.model.retention import RuleSet
from mlgitfs.repo import retentionsync
from mlgitfs.repo.push import Plan, stored_chunk
from mlgitfs.store import bundlefile, compress, packs
from mlgitfs.store.bundlefile import CHUNK, OBJECT, REF, REPO, RULES
from mlgitfs.store.facade import Store

NO_REMOTE = ""  # no remote has this name: the plan takes everything


@dataclass(slots=True)
class BundleStats:
    repo: str = ""
    refs: int = 0
    objects: int = 0
    chunks: int = 0
    bytes: int = 0
    seconds: float = 0.0


def write(store: Store, repo: str, path: Path) -> BundleStats:
    """Write REPO's branches, tags, history, contents and rules to `path`, atomically."""
    t0 = time.perf_counter()
    with store.env.read() as txn:
        rec = db.get_repo(txn, repo)
        refs = [(r, o) for r, o in db.list_refs(txn, repo) if r.startswith(("heads/", "tags/"))]
        rules = retention.get_ruleset(txn, repo)
    plan = Plan(store, NO_REMOTE)
    try:
        plan.commits([bytes(o) for _, o in refs])
    except MissingObject as exc:
        raise MissingObject(
            exc.object_id,
            f"{exc.reason}: {repo} cannot be bundled (contents that gc let go, erased or "
            "expired, are not bundled yet: docs/lifecycle.md)",
        ) from exc
    out = BundleStats(repo, len(refs), len(plan.meta), len(plan.chunks))
    w = bundlefile.BundleWriter(path)
    try:
        w.record(REPO, repo.encode(), packs.render_repo(rec.kind.value, rec.mutability.value,
                                                        rec.categories))  # fmt: skip
        for cid, loc in plan.chunks:
            _, codec, stored, raw_len = stored_chunk(store, cid, loc)
            w.record(CHUNK, cid, bundlefile.encode_chunk(codec, raw_len, bytes(stored)))
        for oid, data in plan.meta:  # children before parents, as a push uploads them
            w.record(OBJECT, oid, data)
        if rules is not None:
            w.record(RULES, b"", rules.encode())
        for ref, oid in refs:  # last: each names objects written above
            w.record(REF, ref.encode(), bytes(oid))
        w.commit()
    except BaseException:
        w.abort()
        raise
    out.bytes = w.size
    out.seconds = time.perf_counter() - t0
    return out


def restore(
    store: Store, path: Path, local_name: str | None = None
) -> tuple[RepoRecord, BundleStats]:
    """Make a repo of the bundle at `path` (named `local_name`, default the bundled repo's)."""
    t0 = time.perf_counter()
    name = str(path)
    bundlefile.verify(path)
    writer = store.chunks.writer()
    objects: list[tuple[ObjectId, bytes]] = []
    refs: dict[str, ObjectId] = {}
    rules: RuleSet | None = None
    record: tuple[str, str, str, tuple[str, ...]] | None = None
    out = BundleStats(bytes=path.stat().st_size)
    try:
        for kind, key, data in bundlefile.records(path):
            if kind == REPO:
                kind_, mut, cats = packs.parse_repo(data, name)
                record = (key.decode("utf-8", "replace"), kind_, mut, cats)
            elif kind == CHUNK:
                codec, raw_len, stored = bundlefile.decode_chunk(data, name)
                try:
                    raw = compress.decompress(codec, stored, raw_len, f"chunk {short_hex(key)}")
                except CorruptObject as exc:
                    raise BundleDamaged(name, exc.message) from exc
                if len(raw) != raw_len or hash_bytes(raw) != key:
                    raise BundleDamaged(name, f"chunk {short_hex(key)} does not hash to its id")
                writer.add(ChunkId(key), codec, stored, raw_len)
                out.chunks += 1
            elif kind == OBJECT:
                if len(key) != ID_LEN or hash_bytes(data) != key:
                    raise BundleDamaged(name, f"object {short_hex(key)} does not hash to its id")
                objects.append((ObjectId(key), data))
            elif kind == RULES:
                rules = RuleSet.decode(data, name)
            elif kind == REF:
                ref = key.decode("utf-8", "replace")
                if not ref.startswith(("heads/", "tags/")) or len(data) != ID_LEN:
                    raise BundleDamaged(name, f"a ref record {ref!r} that is not a branch or tag")
                refs[ref] = ObjectId(data)
        if record is None:
            raise BundleDamaged(name, "it holds no repo record")
        repo, kind_, mut, cats = record
        local = check_repo_name(local_name or repo)
        known = {oid for oid, _ in objects}
        for ref, oid in refs.items():
            if oid not in known and not store.has_object(oid):
                raise BundleDamaged(name, f"{ref} names {short_hex(oid)}, which it does not hold")
        try:
            rec = RepoRecord(local, RepoKind(kind_), Mutability(mut), cats, time.time_ns())
        except ValueError as exc:
            raise BundleDamaged(name, "unknown repo kind or mutability") from exc
        writer.flush()  # chunks durable before LMDB names them
        with store.env.write() as txn:  # one transaction: the repo is whole or absent
            if db.has_repo(txn, local):
                raise AlreadyExists(f"repo {local!r} already exists in the store at {store.home}")
            writer.record(txn)
            store.put_objects(txn, objects)
            db.create_repo(txn, rec)
            retentionsync.adopt(txn, local, rules)
            for ref, oid in refs.items():
                db.set_ref(txn, local, ref, oid, None, f"clone {path.name}")
        writer.reset()
    except BaseException:
        writer.discard()
        raise
    out.repo, out.refs, out.objects = local, len(refs), len(objects)
    out.seconds = time.perf_counter() - t0
    return rec, out
