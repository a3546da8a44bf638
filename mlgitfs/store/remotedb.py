"""The remote records' pack locations with their store types: which remote pack holds a
chunk, an object or a tree's chunk locator section (store/packs.py's `PackLocation` and
`Section`), kept through meta/remotes.py's accessors. These are caches of the remote's own
indexes: losing them costs a re-read, never data.
"""

from __future__ import annotations

from collections.abc import Iterable

from mlgitfs.meta import remotes as records
from mlgitfs.meta.env import ReadTxn, WriteTxn
from mlgitfs.store.commitlist import CommitLinks
from mlgitfs.store.packs import CHUNKS, META, PackIndex, PackLocation, Section

_LETTER = {CHUNKS: records.CHUNK, META: records.OBJECT}
LOCATORS = "loc"  # "remote_packs" kind of a meta pack whose .lidx was read (or is absent)
COMMIT_LISTS = "cidx"  # "remote_packs" kind of a meta pack whose .cidx was read (or is absent)


def known_packs(txn: ReadTxn, remote: str, kind: str) -> set[bytes]:
    """The packs of `kind` (CHUNKS, META or LOCATORS) whose index was read from `remote`."""
    return records.known_packs(txn, remote, kind)


def record_index(txn: WriteTxn, remote: str, index: PackIndex) -> None:
    """Remember every entry of a verified index (idempotent)."""
    letter = _LETTER[index.kind]
    for e in index.entries:
        records.put_location(txn, letter, e.id, remote, index.location(e).pack_bytes())
    records.put_pack(txn, remote, index.kind, index.pack, len(index.entries))


def locate(txn: ReadTxn, kind: str, oid: bytes) -> list[tuple[str, PackLocation]]:
    """(remote name, location) of every known copy of a chunk or object."""
    return [
        (remote, PackLocation.unpack(kind, value))
        for remote, value in records.locations(txn, _LETTER[kind], oid)
    ]


def forget_location(txn: WriteTxn, remote: str, kind: str, oid: bytes, pack: bytes) -> None:
    """Drop what a failed read came from: the id's location on that remote, and the record
    that the pack's index was read, so the next refresh reads it again (a repaired remote
    then works at once; an index is believed only while what it says checks out)."""
    records.forget_location(txn, _LETTER[kind], oid, remote)
    records.forget_pack(txn, remote, kind, pack)


def remote_has(txn: ReadTxn, remote: str, kind: str, oid: bytes) -> bool:
    return records.has_location(txn, _LETTER[kind], oid, remote)


def on_any_remote(txn: ReadTxn, kind: str, oid: bytes) -> bool:
    return records.on_any_remote(txn, _LETTER[kind], oid)


def _record_side(
    txn: WriteTxn, remote: str, letter: bytes, kind: str, pack: bytes, values: dict[bytes, bytes]
) -> None:
    """What one side object of a meta pack (locator, commit list) says, by id, and that it
    was read."""
    for oid, value in values.items():
        records.put_location(txn, letter, oid, remote, value)
    records.put_pack(txn, remote, kind, pack, len(values))


def record_locator_index(
    txn: WriteTxn, remote: str, pack: bytes, sections: dict[bytes, Section]
) -> None:
    values = {oid: sec.pack_bytes() for oid, sec in sections.items()}
    _record_side(txn, remote, records.SECTION, LOCATORS, pack, values)


def sections(txn: ReadTxn, oid: bytes) -> list[tuple[str, Section]]:
    """(remote name, locator section) of a tree or manifest, on every remote that has one."""
    return [
        (remote, Section.unpack(value))
        for remote, value in records.locations(txn, records.SECTION, oid)
    ]


def record_chunk_locations(
    txn: WriteTxn, remote: str, items: Iterable[tuple[bytes, PackLocation]]
) -> None:
    for cid, loc in items:
        records.put_location(txn, records.CHUNK, cid, remote, loc.pack_bytes())


def forget_all(txn: WriteTxn, remote: str, kind: str) -> int:
    """Forget what `remote`'s indexes of `kind` said (and, for meta packs, their locators
    and commit lists): some of its packs are gone, so every index of that kind is read
    afresh."""
    if kind == CHUNKS:
        return records.forget_kind(txn, remote, records.CHUNK, (CHUNKS,))
    letters = records.OBJECT + records.SECTION + records.COMMIT
    return records.forget_kind(txn, remote, letters, (META, LOCATORS, COMMIT_LISTS))


def record_commit_list(
    txn: WriteTxn, remote: str, pack: bytes, commits: dict[bytes, CommitLinks]
) -> None:
    """Remember what a meta pack's commit list says (none: an older push wrote no list)."""
    values = {oid: links.pack_bytes() for oid, links in commits.items()}
    _record_side(txn, remote, records.COMMIT, COMMIT_LISTS, pack, values)


def commit_links(txn: ReadTxn, remote: str, oid: bytes) -> CommitLinks | None:
    """What `remote`'s commit lists say commit `oid` names; None when no list names it."""
    for name, value in records.locations(txn, records.COMMIT, oid):
        if name == remote:
            return CommitLinks.unpack(value)
    return None
