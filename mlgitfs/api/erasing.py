"""`erase`: remove named files' contents from a repo's versions (repo/erase.py has how)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.api.gcverb import mounted_commits
from mlgitfs.meta import chunks, erasures
from mlgitfs.meta.erasures import ErasureRecord
from mlgitfs.model.ids import to_hex
from mlgitfs.repo import erase as erase_mod
from mlgitfs.repo import gc as gc_mod
from mlgitfs.repo.gc import GcResult
from mlgitfs.repo.sync import SyncOutcome
from mlgitfs.store.facade import Store


@dataclass
class EraseResult:
    erasure: int  # the record's number
    repo: str
    paths: list[str]
    who: str
    why: str
    time_ns: int
    versions: int  # commits of the repo erased from
    files: list[tuple[str, str]] = field(default_factory=list)  # (path, file id hex)
    gc: GcResult | None = None  # the gc that removed the bytes


def erase(
    home: Path | None, revspec: str, paths: list[str], all_versions: bool = False, why: str = ""
) -> EraseResult:
    """Record the erasure of `paths` (files or directories) of `revspec`'s repo and run gc
    so that their bytes leave every segment file (see repo/erase.py for which contents)."""
    store = open_store(home)
    plan = erase_mod.plan(store, revspec, paths, all_versions, why)
    written: list[ErasureRecord] = []

    def record() -> None:
        with store.env.write() as txn:
            written.append(erasures.add(txn, plan.record))

    mounted = partial(mounted_commits, store)
    res = gc_mod.gc(store, threshold=gc_mod.DEFAULT_THRESHOLD, mounted=mounted, purge=True,
                    first=record)  # fmt: skip
    rec = written[0]
    files = sorted((p.decode(errors="replace"), to_hex(f)) for p, f in rec.files)
    return EraseResult(rec.seq, rec.repo, list(rec.paths), rec.who, rec.why, rec.time_ns,
                       plan.versions, files, res)  # fmt: skip


def erasures_list(home: Path | None) -> list[EraseResult]:
    """Every erasure record of the store, oldest first."""
    store = open_store(home)
    with store.env.read() as txn:
        records = erasures.list_all(txn)
    return [
        EraseResult(r.seq, r.repo, list(r.paths), r.who, r.why, r.time_ns, len(r.commits),
                    sorted((p.decode(errors="replace"), to_hex(f)) for p, f in r.files))
        for r in records
    ]  # fmt: skip


def purge_learnt(store: Store, out: SyncOutcome) -> GcResult | None:
    """After a fetch or pull that learnt erasure records (repo/erasuresync.py): when this
    store holds chunks of the erased files, gc runs as `erase` runs it, so their bytes
    leave this store too (the fetcher refuses them from then on either way)."""
    if not out.erased:
        return None
    with store.env.read() as txn:
        held = erase_mod.erased_chunks(txn, out.erased, set())
        if not any(chunks.has_chunk(txn, c) for c in held):
            return None
    mounted = partial(mounted_commits, store)
    return gc_mod.gc(store, threshold=gc_mod.DEFAULT_THRESHOLD, mounted=mounted, purge=True)
