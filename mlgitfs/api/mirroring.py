"""Mirror: `mirror FROM TO` copies one remote into another (mlgitfs/repo/mirror.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlgitfs.api._common import Progress, open_store
from mlgitfs.errors import UsageError
from mlgitfs.repo import mirror as mirror_mod
from mlgitfs.repo import remotes as remotes_mod
from mlgitfs.store.remote import RemoteTransport
from mlgitfs.store.transports import open_transport


@dataclass(frozen=True, slots=True)
class MirrorResult:
    source: str  # the URL or remote name as given
    target: str
    packs: int  # packs copied by this run
    packs_present: int  # packs the target had already
    bytes: int  # bytes of packs, locators and indexes copied
    records: int  # repo records, retention rules, erasure records and the like written
    refs_updated: int
    refs_pruned: int
    records_pruned: int
    seconds: float


def _open(home: Path | None, where: str, endpoint_url: str | None) -> RemoteTransport:
    """A remote URL as given, or the store's remote of that name (with its endpoint)."""
    if "://" in where:
        return open_transport(where, endpoint_url)
    if endpoint_url is not None:
        raise UsageError(f"{where!r} is a remote name: its endpoint is the one recorded with it")
    rec = remotes_mod.choose(open_store(home), where)
    return open_transport(rec.url, rec.endpoint_url)


def mirror(
    home: Path | None,
    source: str,
    target: str,
    prune: bool = False,
    progress: Progress | None = None,
    source_endpoint_url: str | None = None,
    target_endpoint_url: str | None = None,
) -> MirrorResult:
    """Copy every repo, ref, pack, retention rule and erasure record of the remote SOURCE
    into TARGET (each a URL or a remote name of the store), incrementally; see
    mlgitfs/repo/mirror.py for the order that makes a kill harmless."""
    src = _open(home, source, source_endpoint_url)
    try:
        dst = _open(home, target, target_endpoint_url)
        try:
            if src.describe() == dst.describe():
                raise UsageError(f"{source} and {target} are the same remote")
            s = mirror_mod.mirror(src, dst, prune, progress)
        finally:
            dst.close()
    finally:
        src.close()
    return MirrorResult(
        source, target, s.packs, s.packs_present, s.bytes, s.records, s.refs_updated,
        s.refs_pruned, s.records_pruned, s.seconds,
    )  # fmt: skip
