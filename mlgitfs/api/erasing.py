"""`erase`: remove named files' contents from a repo's versions (repo/erase.py has how)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from mlgitfs.api._common import open_store
from mlgitfs.api.gcverb import mounted_commits, parse_grace
from mlgitfs.errors import UsageError
from mlgitfs.meta import chunks, erasures
from mlgitfs.meta.erasures import ErasureRecord
from mlgitfs.model.ids import to_hex
from mlgitfs.repo import erase as erase_mod
from mlgitfs.repo import erasuresync, remotegc, remotes
from mlgitfs.repo import gc as gc_mod
from mlgitfs.repo.gc import GcResult
from mlgitfs.repo.remotegc import RemoteGcResult
from mlgitfs.repo.sync import SyncOutcome
from mlgitfs.store import packs
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
    remote_gc: RemoteGcResult | None = None  # with `remote`: the gc that removed them there


def erase(
    home: Path | None,
    revspec: str,
    paths: list[str],
    all_versions: bool = False,
    why: str = "",
    remote: str | None = None,
    grace: str | None = None,
) -> EraseResult:
    """Record the erasure of `paths` (files or directories) of `revspec`'s repo and run gc
    so that their bytes leave every segment file (see repo/erase.py for which contents).
    With `remote`, then the record goes to that remote and its gc runs (with `grace`), so
    the bytes leave its packs too (docs/lifecycle.md, "Erase", has the order)."""
    store = open_store(home)
    if remote is not None:  # its errors before anything is erased
        rec_remote = remotes.choose(store, remote)
        if not rec_remote.conditional_writes:
            raise remotes.no_conditional_writes(rec_remote)
        seconds = parse_grace(grace)
    elif grace is not None:
        raise UsageError("--grace applies to erase --remote only")
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
    out = EraseResult(rec.seq, rec.repo, list(rec.paths), rec.who, rec.why, rec.time_ns,
                      plan.versions, files, res)  # fmt: skip
    if remote is not None:
        t = store.remote.transport(rec_remote)
        remote_repo = rec_remote.remote_repo(rec.repo)
        if t.head(packs.repo_key(remote_repo)) is not None:  # a repo it never had: nothing
            erasuresync.publish_repo(store, t, rec.repo, remote_repo)
            target = int(os.environ.get("MLGITFS_PACK_TARGET", packs.PACK_TARGET))
            out.remote_gc = remotegc.gc_remote(store, remote, grace=seconds, pack_target=target)
    return out


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
    leave this store too (reads of the erased files are refused from then on either way:
    repo/erasegate.py)."""
    if not out.erased:
        return None
    with store.env.read() as txn:
        held = erase_mod.erased_chunks(txn, out.erased, set())
        if not any(chunks.has_chunk(txn, c) for c in held):
            return None
    mounted = partial(mounted_commits, store)
    return gc_mod.gc(store, threshold=gc_mod.DEFAULT_THRESHOLD, mounted=mounted, purge=True)
