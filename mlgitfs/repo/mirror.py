"""Mirror: copy one remote into another (a backup), incrementally and resumably.

Everything of FROM is copied but its scratch and gc records (``tmp/``, ``gc/``): packs with
their locators, commit lists and indexes, statement packs, repo records, retention rules,
expiry and erasure records, refs. Packs are immutable and named by the BLAKE3 of their bytes,
so "copied" is "TO has the index" (a statement pack: "TO has it"), and a second run copies
only packs that are new. The order makes a kill at any instant harmless and a rerun finish the job:

1. FROM's refs are read (the *snapshot*) before its packs are listed. A push writes its packs
   and their indexes before it moves a ref, so every pack a snapshot ref needs is listed.
2. Each missing pack is copied pack first, then its locator and commit list, then its index
   (the push order: an index never names a pack TO lacks). Bytes are verified before they
   are written: the pack against its id, the index against its trailer and the pack's size.
3. The other records (repos/, retention/, ...) are copied where TO's bytes differ.
4. The snapshot's refs are written last, so TO never has a ref naming what it lacks.

A mirror never deletes a pack. Refs and records that FROM no longer has stay on TO unless
``prune`` is asked for: a backup should not lose a branch because someone deleted it at the
source. TO is a copy: pushing to it directly while mirrors run into it is not supported.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from mlgitfs.errors import CorruptObject, PreconditionFailed, RemoteError, RemoteKeyMissing
from mlgitfs.model.ids import from_hex, hash_bytes
from mlgitfs.progress import announce
from mlgitfs.repo.statementsync import SEAL_SUFFIX
from mlgitfs.store import packs
from mlgitfs.store.commitlist import decode_commit_list
from mlgitfs.store.remote import RemoteTransport

Progress = Callable[[int, int], None]

# kind/<64 hex>.<part>: a pack and the files that describe it (any kind: packs/, meta/, and
# whatever pack kinds later formats add; all are named by the BLAKE3 of the pack's bytes)
_PACK_RE = re.compile(r"^([a-z][a-z0-9_-]*)/([0-9a-f]{64})\.(pack|loc|lidx|cidx|idx)$")
# kind/<64 hex>.<ext> of any other extension: one object named by the BLAKE3 of its bytes
# (statement packs, stmts/<id>.spack), immutable like a pack; a pack's seal
# (stmts/<pack id>.sseal) is named by the pack it signs
_BLOB_RE = re.compile(r"^[a-z][a-z0-9_-]*/([0-9a-f]{64})\.[a-z]+$")
# the index last: it makes the pack visible (store/packs.py, store/commitlist.py)
_WRITE_ORDER = ("pack", "loc", "lidx", "cidx", "idx")
_SKIPPED = ("tmp/", "gc/")  # probes and gc state belong to the remote they are on
REFS = "refs/"
PACK_CAP = 1 << 30  # no pack of an unknown kind is read beyond this
PARALLEL = 4  # packs copied at once (each read whole, at most ~32 MiB for a push's packs)


@dataclass(frozen=True, slots=True)
class MirrorStats:
    packs: int  # packs copied
    bytes: int  # bytes of the packs (with locators and indexes) copied
    packs_present: int  # packs TO had already
    records: int  # repo records, retention rules and other records written
    refs_updated: int
    refs_pruned: int
    records_pruned: int
    seconds: float


@dataclass(frozen=True, slots=True)
class _Pack:
    kind: str
    hex: str
    parts: frozenset[str]

    def key(self, part: str) -> str:
        return f"{self.kind}/{self.hex}.{part}"


@dataclass
class _Listing:
    packs: dict[tuple[str, str], set[str]]
    blobs: set[str]
    records: list[str]
    refs: list[str]


def _classify(keys: Iterable[str]) -> _Listing:
    out = _Listing({}, set(), [], [])
    for key in keys:
        if key == packs.CONFIG_KEY or key.startswith(_SKIPPED):
            continue
        if key.startswith(REFS):
            out.refs.append(key)
            continue
        m = _PACK_RE.match(key)
        if m:
            out.packs.setdefault((m.group(1), m.group(2)), set()).add(m.group(3))
        elif _BLOB_RE.match(key):
            out.blobs.add(key)
        else:
            out.records.append(key)
    return out


def _check_config(src: RemoteTransport, dst: RemoteTransport) -> None:
    """TO must have FROM's format and chunker parameters (its chunks would never match
    otherwise); an empty TO gets FROM's file."""
    got = packs.get_capped_with_etag(src, packs.CONFIG_KEY, packs.RECORD_CAP)
    if got is None:
        raise RemoteError(f"{src.describe()} is not an mlgitfs remote (no {packs.CONFIG_KEY})")
    theirs = packs.parse_config(got[0], src.describe())
    ours = packs.get_capped_with_etag(dst, packs.CONFIG_KEY, packs.RECORD_CAP)
    if ours is None:
        try:
            dst.put_if_absent(packs.CONFIG_KEY, got[0])
            return
        except PreconditionFailed:
            ours = packs.get_capped_with_etag(dst, packs.CONFIG_KEY, packs.RECORD_CAP)
            if ours is None:
                raise RemoteError(
                    f"{dst.describe()}: {packs.CONFIG_KEY} appeared and vanished"
                ) from None
    mine = packs.parse_config(ours[0], dst.describe())
    if mine != theirs:
        raise RemoteError(
            f"{dst.describe()} has format {mine[0]} and chunker {mine[1].as_list()}, "
            f"{src.describe()} format {theirs[0]} and chunker {theirs[1].as_list()}: "
            "a mirror needs a remote of the same parameters (or an empty one)"
        )


def _snapshot_refs(src: RemoteTransport) -> dict[str, bytes]:
    """Every ref of FROM with its bytes, each checked to hold one commit id."""
    out: dict[str, bytes] = {}
    for key in src.list(REFS):
        try:
            data = packs.get_capped(src, key, packs.REF_CAP)
        except RemoteKeyMissing:
            continue  # deleted since the listing: not part of the snapshot
        packs.decode_ref(key, data)  # CorruptObject: a hostile ref spreads nowhere
        out[key] = data
    return out


def _read_pack(src: RemoteTransport, p: _Pack) -> dict[str, bytes]:
    """The parts of one pack, verified: the index against its trailer (and, for the kinds
    this version reads, the pack's size), the pack against its id."""
    index = src.get(p.key("idx"))
    pack_id = from_hex(p.hex)
    cap = PACK_CAP
    if p.kind in packs.KINDS:
        if len(index) > packs.INDEX_CAP:
            raise CorruptObject(p.key("idx"), f"index larger than {packs.INDEX_CAP} bytes")
        cap = packs.decode_index(p.kind, pack_id, index).size
    data = packs.get_capped(src, p.key("pack"), cap)
    if hash_bytes(data) != pack_id:
        raise CorruptObject(p.key("pack"), "pack bytes do not hash to the pack's id")
    parts = {"pack": data, "idx": index}
    for extra in ("loc", "lidx", "cidx"):
        if extra in p.parts:
            parts[extra] = packs.get_capped(src, p.key(extra), packs.INDEX_CAP)
    if "lidx" in parts:
        packs.decode_locator_index(pack_id, parts["lidx"])
    if "cidx" in parts:
        decode_commit_list(pack_id, parts["cidx"])
    return parts


def _copy_pack(src: RemoteTransport, dst: RemoteTransport, p: _Pack) -> int:
    parts = _read_pack(src, p)
    for part in _WRITE_ORDER:
        if part in parts:
            dst.put(p.key(part), parts[part])
    return sum(len(v) for v in parts.values())


def _copy_blob(src: RemoteTransport, dst: RemoteTransport, key: str) -> int:
    m = _BLOB_RE.match(key)
    assert m is not None
    data = packs.get_capped(src, key, PACK_CAP)
    # a statement pack's seal is named by the pack it signs, and checked by its signature
    if not key.endswith(SEAL_SUFFIX) and hash_bytes(data) != from_hex(m.group(1)):
        raise CorruptObject(key, "object bytes do not hash to the id in its key")
    dst.put(key, data)
    return len(data)


def _copy_records(src: RemoteTransport, dst: RemoteTransport, keys: Iterable[str]) -> int:
    written = 0
    for key in keys:
        try:
            data = packs.get_capped(src, key, packs.INDEX_CAP)
        except RemoteKeyMissing:
            continue  # deleted at the source since the listing
        got = dst.get_with_etag(key)
        if got is None or got[0] != data:
            dst.put(key, data)
            written += 1
    return written


def mirror(
    src: RemoteTransport,
    dst: RemoteTransport,
    prune: bool = False,
    progress: Progress | None = None,
) -> MirrorStats:
    """Copy FROM (`src`) into TO (`dst`): see the module docstring for the order."""
    started = time.monotonic()
    _check_config(src, dst)
    snapshot = _snapshot_refs(src)
    theirs = _classify(src.list(""))
    ours = _classify(dst.list(""))
    # a pack without its index is invisible at the source (a push in flight or killed)
    visible = [
        _Pack(kind, hx, frozenset(parts))
        for (kind, hx), parts in sorted(theirs.packs.items())
        if "idx" in parts
    ]
    todo = [p for p in visible if "idx" not in ours.packs.get((p.kind, p.hex), set())]
    blobs = sorted(theirs.blobs - ours.blobs)
    announce(progress, len(todo) + len(blobs), None)
    copied = 0
    nbytes = 0
    with ThreadPoolExecutor(PARALLEL) as pool:
        # packs before the objects that name their contents (statements), as a push orders them
        steps: list[Callable[[], Iterable[int]]] = [
            lambda: pool.map(lambda p: _copy_pack(src, dst, p), todo),
            lambda: pool.map(lambda k: _copy_blob(src, dst, k), blobs),
        ]
        for step in steps:  # the second starts once every pack of the first is written
            for n in step():
                copied += 1
                nbytes += n
                if progress is not None:
                    progress(copied, nbytes)
    records = _copy_records(src, dst, sorted(theirs.records))
    refs_updated = 0
    for key, data in sorted(snapshot.items()):
        got = dst.get_with_etag(key)
        if got is None or got[0] != data:
            dst.put(key, data)
            refs_updated += 1
    refs_pruned = records_pruned = 0
    if prune:
        for key in sorted(set(ours.refs) - set(snapshot)):
            dst.delete(key)
            refs_pruned += 1
        for key in sorted(set(ours.records) - set(theirs.records)):
            dst.delete(key)
            records_pruned += 1
    return MirrorStats(
        packs=copied,
        bytes=nbytes,
        packs_present=len(visible) - len(todo) + len(theirs.blobs & ours.blobs),
        records=records,
        refs_updated=refs_updated,
        refs_pruned=refs_pruned,
        records_pruned=records_pruned,
        seconds=time.monotonic() - started,
    )
