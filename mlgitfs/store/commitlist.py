"""A meta pack's commit list, `meta/P.cidx`: the commits pack P holds, with their links.

Each commit's tree, parents and inputs, so a fetch knows the whole history it is about to
download once it has read the lists of the remote's new packs, before it downloads a single
commit: what it will transfer (a total for its progress, in objects and bytes from the
packs' indexes) and every commit to ask for in one planned batch, instead of one round of
requests per generation. msgpack `["cidx", 1, P, [[commit id, tree id, [parent ids],
[input ids]], ...]]` followed by a 32-byte BLAKE3 trailer of those bytes; written after P
and before P's index (store/packs.py), so a visible meta pack has its list, or none when an
older mlgitfs pushed it (readers then walk commit by commit, as before). The remote format
stays 1: older readers never read the key.

A list is a plan, never trusted for content: the commits themselves are fetched and checked
against their ids, and a fetch walks from what they really name (repo/sync.py), so a lying
list costs a wrong total or wasted requests, never a wrong history.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mlgitfs.errors import CorruptObject
from mlgitfs.model import codec
from mlgitfs.model.ids import ID_LEN, hash_bytes, to_hex
from mlgitfs.model.objects import Commit
from mlgitfs.store.packs import MAX_PACK_ENTRIES, META, REMOTE_FORMAT

TAG = "cidx"
MAX_LINKS = 1 << 16  # parents or inputs of one commit in a list (a push writes a few)
_COUNT = struct.Struct("<HH")


def commit_list_key(pack: bytes) -> str:
    return f"{META}/{to_hex(pack)}.cidx"


@dataclass(frozen=True, slots=True)
class CommitLinks:
    """What a commit names: the objects a fetch of its history needs next."""

    tree: bytes
    parents: tuple[bytes, ...]
    inputs: tuple[bytes, ...]

    def pack_bytes(self) -> bytes:
        head = _COUNT.pack(len(self.parents), len(self.inputs))
        return self.tree + head + b"".join(self.parents) + b"".join(self.inputs)

    @classmethod
    def unpack(cls, data: bytes) -> CommitLinks:
        n_parents, n_inputs = _COUNT.unpack_from(data, ID_LEN)
        start = ID_LEN + _COUNT.size
        ids = [data[i : i + ID_LEN] for i in range(start, len(data), ID_LEN)]
        if len(ids) != n_parents + n_inputs or len(data) != start + ID_LEN * len(ids):
            raise CorruptObject("commit links", "malformed record")
        return cls(data[:ID_LEN], tuple(ids[:n_parents]), tuple(ids[n_parents:]))


def links_of(commit: Commit) -> CommitLinks:
    return CommitLinks(
        bytes(commit.tree),
        tuple(bytes(p) for p in commit.parents),
        tuple(bytes(i) for _, i in commit.inputs),
    )


def build_commit_list(pack: bytes, commits: Iterable[tuple[bytes, CommitLinks]]) -> bytes:
    body = codec.pack(
        [
            TAG,
            REMOTE_FORMAT,
            pack,
            [[oid, c.tree, list(c.parents), list(c.inputs)] for oid, c in commits],
        ]
    )
    return body + hash_bytes(body)


def _ids(value: Any) -> tuple[bytes, ...]:
    if not isinstance(value, list) or len(value) > MAX_LINKS:
        raise ValueError("bad id list")
    if not all(isinstance(i, bytes) and len(i) == ID_LEN for i in value):
        raise ValueError("bad id")
    return tuple(value)


def decode_commit_list(pack: bytes, data: bytes) -> dict[bytes, CommitLinks]:
    """Verify and decode `meta/P.cidx`: commit id → its links."""
    what = f"commit list {commit_list_key(pack)}"
    if len(data) < ID_LEN or hash_bytes(data[:-ID_LEN]) != data[-ID_LEN:]:
        raise CorruptObject(what, "commit list does not match its checksum")
    value: Any = codec.unpack(data[:-ID_LEN], what)
    try:
        tag, fmt, pack_id, table = value
        if tag != TAG or fmt != REMOTE_FORMAT or pack_id != pack or len(table) > MAX_PACK_ENTRIES:
            raise ValueError("names another pack or format")
        out = {}
        for oid, tree, parents, inputs in table:
            (oid, tree) = _ids([oid, tree])
            out[oid] = CommitLinks(tree, _ids(parents), _ids(inputs))
    except (TypeError, ValueError) as exc:
        raise CorruptObject(what, f"malformed commit list ({exc})") from exc
    return out
