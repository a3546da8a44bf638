"""Repositories, import and export, history, refs, lineage, fsck and config."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from mlgitfs.api import keys as keys_api
from mlgitfs.api import readsets as readsets_api
from mlgitfs.api._common import (
    Progress,
    commit_info,
    open_store,
    parse_inputs,
    parse_meta,
    ref_index,
    repo_result,
)
from mlgitfs.api.results import (
    CommitInfo,
    DiffItem,
    DiffResult,
    ExportResult,
    ImportResult,
    LineageResult,
    LsEntry,
    RepoResult,
)
from mlgitfs.api.writes import mutability_guard
from mlgitfs.daemon.hookviews import hook_options
from mlgitfs.errors import PathNotFound, UsageError
from mlgitfs.meta import chunks, db, reflog
from mlgitfs.meta import env as env_mod
from mlgitfs.meta.db import Mutability, RepoKind, RepoRecord
from mlgitfs.model.ids import ObjectId, to_hex
from mlgitfs.model.names import check_repo_name, split_path
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.model.retention import Duration
from mlgitfs.model.revspec import parse_repo_branch
from mlgitfs.progress import announce
from mlgitfs.repo import diff as diff_mod
from mlgitfs.repo import export as export_mod
from mlgitfs.repo import fsck as fsck_mod
from mlgitfs.repo import ingest, lineage, refs, trustcheck
from mlgitfs.repo.commits import CommitRequest
from mlgitfs.repo.erasegate import ErasureGate
from mlgitfs.repo.expiry import explain_missing
from mlgitfs.repo.trees import DirView, chunk_bytes, file_chunks, walk
from mlgitfs.store.facade import Store, default_home, parse_size

# --- verbs ----------------------------------------------------------------------------------


def init(
    home: Path | None, name: str, kind: str, mutability: str, categories: list[str] | None = None
) -> RepoResult:
    check_repo_name(name)
    try:
        rec = RepoRecord(
            name, RepoKind(kind), Mutability(mutability), tuple(categories or ()), time.time_ns()
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    store = open_store(home, create=True)
    with store.env.write() as txn:
        db.create_repo(txn, rec)
    return repo_result(store, rec)


def repos(home: Path | None) -> list[RepoResult]:
    store = open_store(home)
    with store.env.read() as txn:
        recs = db.list_repos(txn)
    return [repo_result(store, r) for r in recs]


def import_dir(
    home: Path | None,
    target: str,
    source: Path,
    message: str,
    meta: list[str] | None = None,
    inputs: list[str] | None = None,
    progress: Progress | None = None,
    allow_empty: bool = False,
    no_verify: bool = False,
    inputs_from: str | None = None,
    unlock: Sequence[str] = (),
) -> ImportResult:
    """Import SOURCE as a new commit; when nothing changed, no commit unless `allow_empty`.
    The branch's pre-commit hooks gate it (`no_verify`: skipped, where the branch allows).
    `inputs_from`: a recording whose read set becomes the version's inputs and files read.
    The repo's mutability applies as at a mount's commit; `unlock`: paths or globs whose
    committed files a flexible repo lets change (the import's `mlgitfs unlock`)."""
    repo, branch = parse_repo_branch(target)
    store = open_store(home)
    guard = mutability_guard(store, repo, "import", unlock)
    rs = None if inputs_from is None else readsets_api.load_recording(store, inputs_from)
    declared = parse_inputs(store, inputs or [], repo)
    req = CommitRequest(
        repo, branch, message, parse_meta(meta or []), readsets_api.merged_inputs(declared, rs)
    )
    t0 = time.perf_counter()
    out = ingest.import_directory(
        store, req, source, progress, allow_empty=allow_empty,
        hooks=hook_options(store, no_verify), guard=guard,
    )  # fmt: skip
    if rs is not None and out.changed:
        readsets_api.attach(store, out.commit, rs)
    s = out.stats
    return ImportResult(
        repo,
        branch,
        commit_info(out.commit, store.commit(out.commit)),
        s.files,
        s.dirs,
        s.symlinks,
        s.bytes,
        s.files_read,
        s.bytes_read,
        s.bytes_stored,
        time.perf_counter() - t0,
        out.changed,
        tuple(out.hooks),
    )


def export(
    home: Path | None, revspec: str, dest: Path, progress: Progress | None = None
) -> ExportResult:
    store = open_store(home)
    r = refs.resolve(store, revspec)
    gate = partial(ErasureGate(store.env).current().check, r.repo, r.commit_id)  # one look
    with explain_missing(store, r.repo, r.commit_id):
        s = export_mod.export_entry(
            store, r.entry, r.commit.tree, dest, progress, gate, b"/".join(r.spec.path)
        )
    return ExportResult(s.files, s.dirs, s.symlinks, s.bytes)


def show(home: Path | None, revspec: str) -> CommitInfo:
    store = open_store(home)
    r = refs.resolve(store, revspec)
    return commit_info(
        r.commit_id, r.commit, tuple(ref_index(store, r.repo).get(bytes(r.commit_id), []))
    )


def _ls_entry(path: str, e: TreeEntry) -> LsEntry:
    kind = {EntryKind.DIR: "dir", EntryKind.SYMLINK: "symlink"}.get(e.kind, "file")
    ident = (
        e.ref.decode("utf-8", "surrogateescape") if e.kind is EntryKind.SYMLINK else to_hex(e.ref)
    )
    if e.kind is EntryKind.DIR:  # a tree entry's size counts its entries, not bytes
        return LsEntry(path, kind, e.mode, 0, e.mtime_ns, ident, e.size)
    return LsEntry(path, kind, e.mode, e.size, e.mtime_ns, ident)


def ls(home: Path | None, revspec: str, recursive: bool = False) -> Iterator[LsEntry]:
    store = open_store(home)
    r = refs.resolve(store, revspec)
    if r.entry is not None and not r.entry.is_dir:
        yield _ls_entry(r.spec.path_str, r.entry)
        return
    ref = r.commit.tree if r.entry is None else ObjectId(r.entry.ref)
    base = r.spec.path_str + "/" if r.spec.path else ""
    if recursive:
        for path, e in walk(store, ref):
            yield _ls_entry(base + path.decode("utf-8", "surrogateescape"), e)
        return
    for e in DirView(store, ref).entries():
        yield _ls_entry(base + e.name.decode("utf-8", "surrogateescape"), e)


def cat(home: Path | None, revspec: str) -> Iterator[bytes]:
    store = open_store(home)
    r = refs.resolve(store, revspec)
    if r.entry is None or r.entry.is_dir:
        raise PathNotFound(f"{revspec} is a directory; use 'mlgitfs ls'")
    if r.entry.kind is EntryKind.SYMLINK:
        raise PathNotFound(f"{revspec} is a symlink to {r.entry.ref.decode(errors='replace')}")
    path = b"/".join(r.spec.path)
    # judged by occurrence: an erased one is refused even when a file not erased keeps its
    # bytes here, and any other is fetched even when a chunk is in the erased-chunk set
    ErasureGate(store.env).check(r.repo, r.commit_id, path, bytes(r.entry.ref))
    with explain_missing(store, r.repo, r.commit_id, path, bytes(r.entry.ref)):
        for c in file_chunks(store, r.entry):
            yield chunk_bytes(store, c, judged=True)
    store.remote.drain()  # what was fetched is cached once the last bytes are out


Pairing = Callable[
    [Store, refs.Resolved, refs.Resolved, list[diff_mod.DiffEntry]], list[diff_mod.DiffEntry]
]


def changed(
    home: Path | None, a: str, b: str, paths: list[str] | None = None, pair: Pairing | None = None
) -> tuple[Store, refs.Resolved, refs.Resolved, list[diff_mod.DiffEntry]]:
    """The store, both sides resolved, and what differs between them (exact renames paired,
    then `pair`'s pairs), kept to the changes under `paths` (at either end of a rename)."""
    store = open_store(home)
    # Paths are inside the versions: '..', '.' or an empty part is refused, not normalized.
    prefixes = ["/".join(os.fsdecode(x) for x in split_path(p)) for p in paths or []]
    ra, rb = refs.resolve(store, a), refs.resolve(store, b)

    def tree_of(r: refs.Resolved) -> ObjectId | None:
        if r.entry is None:
            return r.commit.tree
        return ObjectId(r.entry.ref) if r.entry.is_dir else None

    ta, tb = tree_of(ra), tree_of(rb)
    if ta is None or tb is None:
        raise UsageError(
            "diff compares directories: name a commit or a directory path on both sides"
        )
    items = diff_mod.with_renames(diff_mod.diff_trees(store, ta, tb))
    if pair is not None:
        items = pair(store, ra, rb, items)
    if prefixes:
        items = [
            i
            for i in items
            if any(
                x == p or x.startswith(p + "/") for p in prefixes for x in (i.path, i.old_path) if x
            )
        ]
    return store, ra, rb, items


def diff(home: Path | None, a: str, b: str, paths: list[str] | None = None) -> DiffResult:
    _, ra, rb, entries = changed(home, a, b, paths)
    items = [DiffItem(d.change.value, d.path, d.old_size, d.new_size, d.old_path) for d in entries]
    return DiffResult(to_hex(ra.commit_id), to_hex(rb.commit_id), tuple(items))


def lineage_of(home: Path | None, revspec: str, direction: str = "both") -> list[LineageResult]:
    store = open_store(home)
    r = refs.resolve(store, revspec)
    out = []
    if direction in ("up", "both"):
        out.append(LineageResult(lineage.upstream(store, r.repo, r.commit_id), "upstream"))
    if direction in ("down", "both"):
        out.append(LineageResult(lineage.downstream(store, r.repo, r.commit_id), "downstream"))
    return out


def fsck(
    home: Path | None,
    repo: str | None = None,
    check_remote: bool = False,
    progress: Progress | None = None,
    rebuild_index: bool = False,
) -> fsck_mod.FsckReport:
    """Check every object reachable from the refs; `progress` counts chunks read, against
    the number of chunks in the local cache. `rebuild_index` writes the commit-graph index
    again from the commits instead of checking it."""
    # Damaged LMDB pages: an error, never a SIGBUS (before this process touches them).
    env_mod.check_readable((home or default_home()).absolute() / "meta")
    store = open_store(home)
    if progress is None:
        return fsck_mod.fsck(store, repo, check_remote=check_remote, rebuild_index=rebuild_index)
    with store.env.read() as txn:
        announce(progress, chunks.count(txn), None)
    done = progress
    return fsck_mod.fsck(store, repo, lambda n: done(n, 0), check_remote, rebuild_index)


# --- config ---------------------------------------------------------------------------------

CONFIG_KEYS = ("cache-size", "reflog-expiry", *keys_api.SETTINGS, trustcheck.TRUST)


@dataclass(frozen=True, slots=True)
class ConfigResult:
    key: str
    value: str  # "" when unset


def config(
    home: Path | None, key: str | None = None, value: str | None = None
) -> list[ConfigResult]:
    """Read every setting, one, or set one. `cache-size`: the chunk cache's byte budget
    (e.g. 20G; 0 or "none" for no budget); $MLGITFS_CACHE_SIZE overrides it.
    `reflog-expiry`: how long reflog entries keep what they name (e.g. 30d, 12h; 0: none).
    `signing-key`, `sign-commits`, `verify-refs`: see api/keys.py."""
    store = open_store(home)
    if key is not None and key not in CONFIG_KEYS:
        raise UsageError(f"unknown setting {key!r}; settings: {', '.join(CONFIG_KEYS)}")
    if key == "cache-size" and value is not None:
        size = 0 if value.lower() in ("none", "0") else parse_size(value)
        store.set_cache_budget(size or None)
    if key == "reflog-expiry" and value is not None:
        seconds = _expiry_seconds(value)
        with store.env.write() as txn:
            reflog.set_expiry_s(txn, seconds)
    if key in keys_api.SETTINGS and value is not None:
        keys_api.set_setting(home, key, value)
    if key == trustcheck.TRUST and value is not None:
        with store.env.write() as txn:
            db.set_config(txn, key, trustcheck.check_mode(value))
    budget = store.remote.budget
    with store.env.read() as txn:
        expiry = reflog.expiry_s(txn)
        trust_mode = trustcheck.trust_mode(txn)
    current = [
        ConfigResult("cache-size", str(budget) if budget else ""),
        ConfigResult("reflog-expiry", _duration_text(expiry)),
        *(ConfigResult(k, v) for k, v in keys_api.settings(home)),
        ConfigResult(trustcheck.TRUST, trust_mode),
    ]
    return [c for c in current if key is None or c.key == key]


def _expiry_seconds(text: str) -> int:
    if text.strip() == "0":
        return 0
    d = Duration.parse(text)
    if d.years or d.months:
        raise UsageError(f"write the reflog expiry in days and hours (e.g. 90d), not {text!r}")
    return d.days * 86400 + d.hours * 3600


def _duration_text(seconds: int) -> str:
    return str(Duration(days=seconds // 86400, hours=seconds % 86400 // 3600))
