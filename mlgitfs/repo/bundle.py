"""Bundles: a repo's whole history and contents in one file (cold storage), and back.

A bundle holds what a push of every branch and tag to an empty remote would upload, found by
the push planner (repo/pushplan.Plan, told of no remote): the chunks, then the objects children
before parents, then the retention rule set and the refs. The reflog, checkouts and
remote-tracking refs stay behind. The file format and its atomic write are in
store/bundlefile.py.

Contents gc let go travel as their records, not as an error: the expiry record of each
expired commit of the history, the repo's erasure records, and the ids of the absent chunks
only erased files held. A restore records them, so reads there name the rule or the erasure
as they do here, and fsck counts them as expired or erased, not missing. The signed
statements of the history's commits (docs/governance.md) travel too; a restore checks the
signature of each one a key of the ring made, as a fetch does (`SignatureInvalid`, nothing
restored).

Restoring checks the whole file first (bundlefile.verify), then every chunk and object
against its id as it is read, writes the chunks (pinned: no remote holds them) and records
them with the objects, the repo, its rules and its refs in one LMDB transaction: a restore
that fails or is killed leaves no repo (its segment files go, or fsck's orphan sweep finds
them).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mlgitfs.errors import AlreadyExists, BundleDamaged, CorruptObject
from mlgitfs.meta import db, erasures, retention, statements
from mlgitfs.meta.db import Mutability, RepoKind, RepoRecord
from mlgitfs.meta.erasures import ErasureRecord
from mlgitfs.model import statement
from mlgitfs.model.ids import ID_LEN, ChunkId, ObjectId, hash_bytes, short_hex
from mlgitfs.model.names import check_repo_name
from mlgitfs.model.retention import ExpiryRecord, RuleSet
from mlgitfs.model.statement import Statement
from mlgitfs.repo import retentionsync
from mlgitfs.repo.keyring import Keyring
from mlgitfs.repo.pushplan import Plan, stored_chunk
from mlgitfs.repo.verify import check_signature, trusted_keys
from mlgitfs.store import bundlefile, compress, packs
from mlgitfs.store.bundlefile import (
    CHUNK,
    ERASED,
    ERASURE,
    EXPIRED,
    OBJECT,
    REF,
    REPO,
    RULES,
    STATEMENT,
)
from mlgitfs.store.facade import Store

NO_REMOTE = ""  # no remote has this name: the plan takes everything
T = TypeVar("T")


def _object_id(key: bytes, name: str) -> ObjectId:
    if len(key) != ID_LEN:
        raise BundleDamaged(name, "a record whose key is not an id")
    return ObjectId(key)


def _decoded(decode: Callable[[bytes, str], T], data: bytes, name: str) -> T:
    try:
        return decode(data, name)
    except CorruptObject as exc:
        raise BundleDamaged(name, exc.message) from exc


def _erasure(data: bytes, name: str) -> ErasureRecord:
    return ErasureRecord.decode(0, data)


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
        expired = {bytes(o): r for o, r in retention.list_expired(txn)}
        erased = erasures.erased_chunk_ids(txn)
        records = [r for r in erasures.list_all(txn) if r.repo == repo]

    def let_go(commit: bytes | None, cid: bytes) -> bool:
        return cid in erased or (commit is not None and commit in expired)

    plan = Plan(store, NO_REMOTE, let_go=let_go)
    plan.commits([bytes(o) for _, o in refs])
    history = {oid for oid, _ in plan.meta}
    gone_expired = sorted(c for c in expired if c in history)
    gone_erased = sorted(c for c in set(plan.gone) if c in erased)
    let_go_records = bool(gone_expired or gone_erased or records)
    with store.env.read() as txn:  # the commits' signatures (and attestations) go along
        signed = [
            statement.decode(data, f"a statement of {short_hex(c)}")
            for c, data in statements.every(txn)
            if c in history
        ]  # one scan of the statements: far fewer than the history's objects
    out = BundleStats(repo, len(refs), len(plan.meta), len(plan.chunks))
    # the oldest version that holds what is in it: older readers still restore such a bundle
    version = bundlefile.SIGNED if signed else bundlefile.VERSION if let_go_records else 1
    w = bundlefile.BundleWriter(path, version)
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
        for oid in gone_expired:
            w.record(EXPIRED, oid, expired[oid].encode())
        for er in records:
            w.record(ERASURE, b"", er.encode())
        for cid in gone_erased:
            w.record(ERASED, cid, b"")
        for st in signed:
            w.record(STATEMENT, st.id, st.encode())
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
    expired: list[tuple[ObjectId, ExpiryRecord]] = []
    erasure_records: list[ErasureRecord] = []
    erased: set[bytes] = set()
    signed: list[Statement] = []
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
            elif kind == EXPIRED:
                expired.append((_object_id(key, name), _decoded(ExpiryRecord.decode, data, name)))
            elif kind == ERASURE:
                erasure_records.append(_decoded(_erasure, data, name))
            elif kind == ERASED:
                erased.add(_object_id(key, name))
            elif kind == STATEMENT:
                st = _decoded(statement.decode, data, name)
                if st.id != key:
                    raise BundleDamaged(name, f"statement {short_hex(key)} does not hash to its id")
                signed.append(st)
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
        trusted = trusted_keys(Keyring(store.home))
        for st in signed:  # as a fetch does: a known signer's signature must hold
            if st.signer in trusted:
                check_signature(st, trusted, f"{st.kind} statement {short_hex(st.id)} in {name}")
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
            for oid, why in expired:
                retention.record_expired(txn, oid, why)
            for er in erasure_records:  # numbered after the store's own records
                erasures.add(txn, dataclasses.replace(er, repo=local))
            if erased:
                erasures.set_erased_chunks(txn, set(erasures.erased_chunk_ids(txn)) | erased)
            statements.put_many(txn, signed)
            for ref, oid in refs.items():
                db.set_ref(txn, local, ref, oid, None, f"clone {path.name}")
        writer.reset()
    except BaseException:
        writer.discard()
        raise
    out.repo, out.refs, out.objects = local, len(refs), len(objects)
    out.seconds = time.perf_counter() - t0
    return rec, out
