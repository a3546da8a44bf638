"""The porcelain: one function per user verb, returning `*Result` dataclasses. Never prints.

Every function takes the store home (None: $MLGITFS_HOME or the XDG data dir) and raises
only `MlgitError`s. The CLI in `mlgitfs_cli` parses, calls one of these and renders.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mlgitfs.errors import MountError, PathNotFound, UsageError
from mlgitfs.meta import db
from mlgitfs.meta.db import Mutability, RepoKind, RepoRecord
from mlgitfs.model.ids import ObjectId, to_hex
from mlgitfs.model.names import check_ref_name, check_repo_name
from mlgitfs.model.objects import Commit, EntryKind, TreeEntry
from mlgitfs.model.revspec import parse_repo_branch, parse_revspec
from mlgitfs.repo import diff as diff_mod
from mlgitfs.repo import export as export_mod
from mlgitfs.repo import fsck as fsck_mod
from mlgitfs.repo import history, ingest, lineage, refs
from mlgitfs.repo import prefetch as prefetch_mod
from mlgitfs.repo import remotes as remotes_mod
from mlgitfs.repo import sync as sync_mod
from mlgitfs.repo.commits import CommitRequest, default_author
from mlgitfs.repo.store import Store, parse_size
from mlgitfs.repo.trees import DirView, file_chunks
from mlgitfs.store import packs as packs_mod
from mlgitfs.store import remotedb as remotedb_mod

Progress = Callable[[int, int], None]

_stores: dict[str, Store] = {}


def open_store(home: Path | None) -> Store:
    """The process's Store for `home` (one LMDB environment per process and path)."""
    store = Store.open(home)
    key = str(store.home.resolve())
    cached = _stores.get(key)
    if cached is not None and cached.env is store.env:
        return cached
    _stores[key] = store
    return store


def close_store(home: Path) -> None:
    """Forget and close this process's Store for `home` (long-lived processes, tests)."""
    from mlgitfs.meta.env import close_env

    store = _stores.pop(str(home.resolve()), None)
    if store is not None:
        store.close()
    close_env(home / "meta")


# --- results --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RepoResult:
    name: str
    kind: str
    mutability: str
    categories: tuple[str, ...]
    created_ns: int
    branches: int
    tags: int


@dataclass(frozen=True, slots=True)
class CommitInfo:
    id: str
    tree: str
    parents: tuple[str, ...]
    author: str
    time_ns: int
    message: str
    meta: dict[str, str]
    inputs: tuple[tuple[str, str], ...]
    refs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportResult:
    repo: str
    branch: str
    commit: CommitInfo
    files: int
    dirs: int
    symlinks: int
    bytes: int
    files_read: int
    bytes_read: int
    bytes_stored: int
    seconds: float
    changed: bool = True  # False: nothing changed, the branch did not move


@dataclass(frozen=True, slots=True)
class ExportResult:
    files: int
    dirs: int
    symlinks: int
    bytes: int


@dataclass(frozen=True, slots=True)
class LsEntry:
    path: str
    kind: str
    mode: int
    size: int
    mtime_ns: int
    id: str  # chunk, manifest or tree id in hex; the target for symlinks


@dataclass(frozen=True, slots=True)
class DiffItem:
    change: str
    path: str
    old_size: int
    new_size: int


@dataclass(frozen=True, slots=True)
class DiffResult:
    a: str
    b: str
    items: tuple[DiffItem, ...]

    @property
    def added(self) -> int:
        return sum(1 for i in self.items if i.change == "added")

    @property
    def removed(self) -> int:
        return sum(1 for i in self.items if i.change == "removed")

    @property
    def modified(self) -> int:
        return sum(1 for i in self.items if i.change == "modified")


@dataclass(frozen=True, slots=True)
class RefResult:
    name: str
    commit: str


@dataclass(frozen=True, slots=True)
class LineageResult:
    root: lineage.LineageNode
    direction: str


# --- helpers --------------------------------------------------------------------------------


def _commit_info(oid: ObjectId, c: Commit, ref_names: tuple[str, ...] = ()) -> CommitInfo:
    return CommitInfo(
        to_hex(oid),
        to_hex(c.tree),
        tuple(to_hex(p) for p in c.parents),
        c.author,
        c.time_ns,
        c.message,
        dict(c.meta),
        tuple((r, to_hex(i)) for r, i in c.inputs),
        ref_names,
    )


def _repo_result(store: Store, rec: RepoRecord) -> RepoResult:
    with store.env.read() as txn:
        all_refs = list(db.list_refs(txn, rec.name))
    return RepoResult(
        rec.name,
        rec.kind.value,
        rec.mutability.value,
        rec.categories,
        rec.created_ns,
        sum(1 for r, _ in all_refs if r.startswith("heads/")),
        sum(1 for r, _ in all_refs if r.startswith("tags/")),
    )


def _parse_meta(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--meta {item!r}: expected KEY=VALUE")
        if key in out:
            raise UsageError(f"--meta {key} given twice")
        out[key] = value
    return out


def _parse_inputs(store: Store, items: list[str]) -> list[tuple[str, ObjectId]]:
    out = []
    for item in items:
        r = refs.resolve(store, parse_revspec(item))
        if r.spec.path:
            raise UsageError(f"--input {item!r}: name a commit, not a path")
        out.append((r.repo, r.commit_id))
    return out


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
    store = open_store(home)
    with store.env.write() as txn:
        db.create_repo(txn, rec)
    return _repo_result(store, rec)


def repos(home: Path | None) -> list[RepoResult]:
    store = open_store(home)
    with store.env.read() as txn:
        recs = db.list_repos(txn)
    return [_repo_result(store, r) for r in recs]


def import_dir(
    home: Path | None,
    target: str,
    source: Path,
    message: str,
    meta: list[str] | None = None,
    inputs: list[str] | None = None,
    progress: Progress | None = None,
    allow_empty: bool = False,
) -> ImportResult:
    """Import SOURCE as a new commit; when nothing changed, no commit unless `allow_empty`."""
    repo, branch = parse_repo_branch(target)
    store = open_store(home)
    req = CommitRequest(
        repo, branch, message, _parse_meta(meta or []), _parse_inputs(store, inputs or [])
    )
    t0 = time.perf_counter()
    out = ingest.import_directory(store, req, source, progress, allow_empty=allow_empty)
    s = out.stats
    return ImportResult(
        repo,
        branch,
        _commit_info(out.commit, store.commit(out.commit)),
        s.files,
        s.dirs,
        s.symlinks,
        s.bytes,
        s.files_read,
        s.bytes_read,
        s.bytes_stored,
        time.perf_counter() - t0,
        out.changed,
    )


def export(
    home: Path | None, revspec: str, dest: Path, progress: Progress | None = None
) -> ExportResult:
    store = open_store(home)
    r = refs.resolve(store, revspec)
    s = export_mod.export_entry(store, r.entry, r.commit.tree, dest, progress)
    return ExportResult(s.files, s.dirs, s.symlinks, s.bytes)


def _ref_index(store: Store, repo: str) -> dict[bytes, list[str]]:
    out: dict[bytes, list[str]] = {}
    with store.env.read() as txn:
        for ref, oid in db.list_refs(txn, repo):
            out.setdefault(bytes(oid), []).append(_ref_label(ref))
    return out


def _ref_label(ref: str) -> str:
    """heads/main → main, tags/v1 → v1, remotes/origin/heads/main → origin/main."""
    parts = ref.split("/")
    if parts[0] == "remotes" and len(parts) >= 4:
        return f"{parts[1]}/{'/'.join(parts[3:])}"
    return "/".join(parts[1:])


def log(
    home: Path | None, revspec: str, path: str | None = None, limit: int | None = None
) -> list[CommitInfo]:
    store = open_store(home)
    r = refs.resolve(store, revspec)
    parts = r.spec.path
    if path:
        parts = parts + tuple(parse_revspec(f"x:{path}").path)
    names = _ref_index(store, r.repo)
    return [
        _commit_info(oid, c, tuple(names.get(bytes(oid), [])))
        for oid, c in history.log(store, r.commit_id, parts, limit)
    ]


def show(home: Path | None, revspec: str) -> CommitInfo:
    store = open_store(home)
    r = refs.resolve(store, revspec)
    return _commit_info(
        r.commit_id, r.commit, tuple(_ref_index(store, r.repo).get(bytes(r.commit_id), []))
    )


def _ls_entry(path: str, e: TreeEntry) -> LsEntry:
    kind = {EntryKind.DIR: "dir", EntryKind.SYMLINK: "symlink"}.get(e.kind, "file")
    ident = (
        e.ref.decode("utf-8", "surrogateescape") if e.kind is EntryKind.SYMLINK else to_hex(e.ref)
    )
    return LsEntry(path, kind, e.mode, e.size, e.mtime_ns, ident)


def ls(home: Path | None, revspec: str, recursive: bool = False) -> Iterator[LsEntry]:
    store = open_store(home)
    r = refs.resolve(store, revspec)
    if r.entry is not None and not r.entry.is_dir:
        yield _ls_entry(r.spec.path_str, r.entry)
        return
    ref = r.commit.tree if r.entry is None else ObjectId(r.entry.ref)
    base = r.spec.path_str + "/" if r.spec.path else ""

    def rec(ref: ObjectId, prefix: str) -> Iterator[LsEntry]:
        for e in DirView(store, ref).entries():
            path = prefix + e.name.decode("utf-8", "surrogateescape")
            yield _ls_entry(path, e)
            if recursive and e.is_dir:
                yield from rec(ObjectId(e.ref), path + "/")

    yield from rec(ref, base)


def cat(home: Path | None, revspec: str) -> Iterator[bytes]:
    store = open_store(home)
    r = refs.resolve(store, revspec)
    if r.entry is None or r.entry.is_dir:
        raise PathNotFound(f"{revspec} is a directory; use 'mlgitfs ls'")
    if r.entry.kind is EntryKind.SYMLINK:
        raise PathNotFound(f"{revspec} is a symlink to {r.entry.ref.decode(errors='replace')}")
    for c in file_chunks(store, r.entry):
        yield store.read_chunk(c.id)
    store.remote.drain()  # what was fetched is cached once the last bytes are out


def diff(home: Path | None, a: str, b: str, paths: list[str] | None = None) -> DiffResult:
    store = open_store(home)
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
    items = [
        DiffItem(d.change.value, d.path, d.old_size, d.new_size)
        for d in diff_mod.diff_trees(store, ta, tb)
    ]
    if paths:
        prefixes = [p.strip("/") for p in paths]
        items = [
            i for i in items if any(i.path == p or i.path.startswith(p + "/") for p in prefixes)
        ]
    return DiffResult(to_hex(ra.commit_id), to_hex(rb.commit_id), tuple(items))


def branch_create(home: Path | None, repo_branch: str, start: str | None = None) -> RefResult:
    store = open_store(home)
    spec = parse_revspec(repo_branch)
    check_ref_name(spec.ref)
    r = refs.resolve(store, start or f"{spec.repo}@main")
    if r.repo != spec.repo:
        raise UsageError(
            f"a branch of {spec.repo} must start at a commit of {spec.repo}, not of {r.repo}"
        )
    refs.create_ref(store, spec.repo, "heads", spec.ref, r.commit_id)
    return RefResult(spec.ref, to_hex(r.commit_id))


def branch_list(home: Path | None, repo: str) -> list[RefResult]:
    store = open_store(home)
    return [
        RefResult(n, to_hex(o)) for n, o in refs.list_refs(store, check_repo_name(repo), "heads")
    ]


def branch_delete(home: Path | None, repo_branch: str) -> RefResult:
    store = open_store(home)
    spec = parse_revspec(repo_branch)
    if not spec.explicit_ref:
        raise UsageError("name the branch to delete as REPO@BRANCH")
    return RefResult(spec.ref, to_hex(refs.delete_branch(store, spec.repo, spec.ref)))


def tag_create(home: Path | None, repo_tag: str, target: str | None = None) -> RefResult:
    store = open_store(home)
    spec = parse_revspec(repo_tag)
    if not spec.explicit_ref:
        raise UsageError("name the tag as REPO@TAG")
    r = refs.resolve(store, target or f"{spec.repo}@main")
    if r.repo != spec.repo:
        raise UsageError(f"a tag of {spec.repo} must name a commit of {spec.repo}")
    refs.create_ref(store, spec.repo, "tags", spec.ref, r.commit_id)
    return RefResult(spec.ref, to_hex(r.commit_id))


def tag_list(home: Path | None, repo: str) -> list[RefResult]:
    store = open_store(home)
    return [
        RefResult(n, to_hex(o)) for n, o in refs.list_refs(store, check_repo_name(repo), "tags")
    ]


def lineage_of(home: Path | None, revspec: str, direction: str = "both") -> list[LineageResult]:
    store = open_store(home)
    r = refs.resolve(store, revspec)
    out = []
    if direction in ("up", "both"):
        out.append(LineageResult(lineage.upstream(store, r.repo, r.commit_id), "upstream"))
    if direction in ("down", "both"):
        out.append(LineageResult(lineage.downstream(store, r.repo, r.commit_id), "downstream"))
    return out


# --- config ---------------------------------------------------------------------------------

CONFIG_KEYS = ("cache-size",)


@dataclass(frozen=True, slots=True)
class ConfigResult:
    key: str
    value: str  # "" when unset


def config(
    home: Path | None, key: str | None = None, value: str | None = None
) -> list[ConfigResult]:
    """Read every setting, one, or set one. `cache-size`: the chunk cache's byte budget
    (e.g. 20G; 0 or "none" for no budget); $MLGITFS_CACHE_SIZE overrides it."""
    store = open_store(home)
    if key is not None and key not in CONFIG_KEYS:
        raise UsageError(f"unknown setting {key!r}; settings: {', '.join(CONFIG_KEYS)}")
    if key is not None and value is not None:
        size = 0 if value.lower() in ("none", "0") else parse_size(value)
        store.set_cache_budget(size or None)
    budget = store.remote.budget
    current = [ConfigResult("cache-size", str(budget) if budget else "")]
    return [c for c in current if key is None or c.key == key]


# --- mounts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MountInfo:
    revspec: str
    commit: str
    mountpoint: str
    pid: int
    read_only: bool
    fsname: str


def mount(
    home: Path | None,
    revspec: str,
    mountpoint: Path,
    *,
    foreground: bool = False,
    allow_other: bool = False,
    cache_size: str | None = None,
    read_only: bool = False,
) -> MountInfo | None:
    """Mount a version; returns once the mount answers (None after a foreground run ends)."""
    from mlgitfs.daemon import mount as mount_mod

    store = open_store(home)
    r = refs.resolve(store, revspec)
    if r.spec.path:
        raise UsageError("mount a whole version (REPO@REF), not a path inside it")
    # A branch mounts writable (a checkout with its overlay) unless --read-only.
    writable = r.branch is not None and not read_only
    cache_bytes = parse_size(cache_size) if cache_size else 256 << 20
    fsname = f"mlgitfs:{r.repo}@{r.spec.ref}" + (f"~{r.spec.back}" if r.spec.back else "")
    home_str = str(store.home.resolve())
    factory, view_arg = (
        "mlgitfs.vfs.factory:snapshot_view",
        {
            "home": home_str,
            "commit": to_hex(r.commit_id),
            "cache_bytes": cache_bytes,
        },
    )
    if writable:
        factory = "mlgitfs.vfs.factory:checkout_view"
        view_arg = {"home": home_str, "repo": r.repo, "branch": r.branch,
                    "cache_bytes": cache_bytes}  # fmt: skip
    result = mount_mod.mount(
        factory,
        mountpoint,
        fsname,
        view_arg=view_arg,
        read_only=not writable,
        foreground=foreground,
        allow_other=allow_other,
        run_dir=store.run_dir,
        revspec=str(r.spec),
        commit=to_hex(r.commit_id),
    )
    if result is None:
        return None
    return MountInfo(
        str(r.spec), to_hex(r.commit_id), result.mountpoint, result.pid, not writable, result.fsname
    )


def unmount(home: Path | None, mountpoint: Path, lazy: bool = False) -> None:
    from mlgitfs.daemon import mount as mount_mod

    mount_mod.unmount(mountpoint, lazy=lazy, run_dir=open_store(home).run_dir)


def mounts(home: Path | None) -> list[MountInfo]:
    from mlgitfs.daemon import registry

    return [
        MountInfo(m.revspec, m.commit, m.mountpoint, m.pid, m.read_only, m.fsname)
        for m in registry.list_mounts(open_store(home).run_dir)
    ]


def fsck(
    home: Path | None, repo: str | None = None, check_remote: bool = False
) -> fsck_mod.FsckReport:
    store = open_store(home)
    return fsck_mod.fsck(store, repo, check_remote=check_remote)


# --- checkouts -------------------------------------------------------------------------------
# Writable branch mounts: commit, status, restore and unlock go to the mount's daemon over its
# control socket (mlgitfs/vfs/control.py); the daemon owns the checkout (design §5).


@dataclass(frozen=True, slots=True)
class StatusItem:
    change: str  # added, modified, deleted, renamed
    path: str
    kind: str  # file, dir, symlink
    old_path: str = ""


@dataclass(frozen=True, slots=True)
class StatusResult:
    mountpoint: str
    repo: str
    branch: str
    base: str
    mutability: str
    changes: tuple[StatusItem, ...]


@dataclass(frozen=True, slots=True)
class CheckoutCommitResult:
    mountpoint: str
    repo: str
    branch: str
    commit: CommitInfo | None  # None: nothing to commit, or a dry run
    dry_run: bool
    files_hashed: int
    bytes_hashed: int
    bytes_stored: int
    seconds: float
    changes: tuple[StatusItem, ...]  # what a dry run would commit


@dataclass(frozen=True, slots=True)
class PathsResult:
    mountpoint: str
    paths: tuple[str, ...]


def _writable_mount(home: Path | None, where: Path | None) -> tuple[Store, MountInfo, str]:
    """The writable mount containing `where` (default: the current directory) and its
    control socket."""
    import os as _os

    from mlgitfs.daemon import registry

    store = open_store(home)
    target = _os.path.abspath(where if where is not None else _os.getcwd())
    best = None
    for m in registry.list_mounts(store.run_dir):
        inside = target == m.mountpoint or target.startswith(m.mountpoint.rstrip("/") + "/")
        if inside and (best is None or len(m.mountpoint) > len(best.mountpoint)):
            best = m
    if best is None:
        raise MountError(
            f"{target} is not inside a mount of this store (see 'mlgitfs mounts'; a mount of "
            "another store needs its --home or MLGITFS_HOME)"
        )
    if best.read_only or not best.control_socket:
        raise MountError(f"{best.mountpoint} is a read-only mount ({best.revspec}): "
                         "mount a branch without --read-only to change it")  # fmt: skip
    info = MountInfo(best.revspec, best.commit, best.mountpoint, best.pid, best.read_only,
                     best.fsname)  # fmt: skip
    return store, info, best.control_socket


def _mount_paths(paths: list[Path], mountpoint: str) -> list[str]:
    import os as _os

    out = []
    for p in paths:
        full = _os.path.abspath(p)
        if full == mountpoint:
            out.append("")
        elif full.startswith(mountpoint.rstrip("/") + "/"):
            out.append(full[len(mountpoint.rstrip("/")) + 1 :])
        else:
            raise UsageError(f"{p} is not inside the mount at {mountpoint}")
    return out


def _status_items(raw: list[list[str]]) -> tuple[StatusItem, ...]:
    return tuple(StatusItem(*item) for item in raw)


def _repo_branch(revspec: str) -> tuple[str, str]:
    repo, _, ref = revspec.partition("@")
    return repo, ref


def commit(
    home: Path | None,
    mountpoint: Path | None,
    message: str,
    meta: list[str] | None = None,
    inputs: list[str] | None = None,
    dry_run: bool = False,
) -> CheckoutCommitResult:
    """Commit what the writable mount changed; the branch moves (CAS on the mount's base)."""
    from mlgitfs.vfs import control

    store, m, sock = _writable_mount(home, mountpoint)
    args = {
        "message": message,
        "meta": sorted(_parse_meta(meta or []).items()),
        "inputs": [[r, to_hex(c)] for r, c in _parse_inputs(store, inputs or [])],
        "dry_run": dry_run,
        "author": default_author(),
    }
    v = control.call(sock, "commit", args)
    cid = str(v.get("commit", ""))
    info = None
    if cid:
        oid = ObjectId(bytes.fromhex(cid))
        info = _commit_info(oid, store.commit(oid))
    repo, branch = _repo_branch(m.revspec)
    return CheckoutCommitResult(
        m.mountpoint, repo, branch, info, dry_run, int(v.get("files_hashed", 0)),
        int(v.get("bytes_hashed", 0)), int(v.get("bytes_stored", 0)),
        float(v.get("seconds", 0.0)), _status_items(v.get("changes", [])),
    )  # fmt: skip


def status(home: Path | None, mountpoint: Path | None = None) -> StatusResult:
    """What the writable mount changed against its base commit (O(changes))."""
    from mlgitfs.vfs import control

    _, m, sock = _writable_mount(home, mountpoint)
    v = control.call(sock, "status", {})
    return StatusResult(m.mountpoint, str(v["repo"]), str(v["branch"]), str(v["base"]),
                        str(v["mutability"]), _status_items(v.get("changes", [])))  # fmt: skip


def restore(home: Path | None, paths: list[Path], source: str | None = None) -> PathsResult:
    """Put paths of a writable mount back as they are in `source` (default: its base commit);
    no path: the whole tree."""
    from mlgitfs.vfs import control

    _, m, sock = _writable_mount(home, paths[0] if paths else None)
    rel = _mount_paths(paths, m.mountpoint) if paths else []
    v = control.call(sock, "restore", {"paths": rel, "source": source or ""})
    return PathsResult(m.mountpoint, tuple(v.get("paths", [])))


def unlock(home: Path | None, paths: list[Path]) -> PathsResult:
    """Let committed files of a flexible repo change until the next commit."""
    from mlgitfs.vfs import control

    if not paths:
        raise UsageError("name the files to unlock")
    _, m, sock = _writable_mount(home, paths[0])
    v = control.call(sock, "unlock", {"paths": _mount_paths(paths, m.mountpoint)})
    return PathsResult(m.mountpoint, tuple(v.get("paths", [])))


# --- remotes ----------------------------------------------------------------------------------
# Remotes, push, fetch, pull, clone, prefetch (mlgitfs/repo/remotes.py, sync.py, prefetch.py).


@dataclass(frozen=True, slots=True)
class RemoteResult:
    name: str
    url: str
    endpoint_url: str | None
    conditional_writes: bool  # False: the remote ignores preconditions and is refused for push


@dataclass(frozen=True, slots=True)
class RefUpdateResult:
    ref: str  # "heads/main" or "tags/v1"
    old: str | None
    new: str | None
    status: str  # created, updated, up to date, rejected, deleted
    message: str


@dataclass(frozen=True, slots=True)
class SyncResult:
    verb: str  # push, fetch, pull
    remote: str
    repo: str
    updates: tuple[RefUpdateResult, ...]
    packs: int  # chunk packs uploaded
    meta_packs: int
    chunks: int
    objects: int
    bytes: int
    seconds: float


@dataclass(frozen=True, slots=True)
class CloneResult:
    repo: RepoResult
    remote: str
    url: str
    fetch: SyncResult


@dataclass(frozen=True, slots=True)
class PrefetchResult:
    revspec: str
    chunks: int
    objects: int
    bytes: int
    requests: int
    seconds: float


def _remote_result(r: remotedb_mod.RemoteRecord) -> RemoteResult:
    return RemoteResult(r.name, r.url, r.endpoint_url, r.conditional_writes)


def _sync_result(verb: str, out: sync_mod.SyncOutcome) -> SyncResult:
    s = out.stats
    updates = tuple(
        RefUpdateResult(
            u.ref,
            to_hex(u.old) if u.old else None,
            to_hex(u.new) if u.new else None,
            u.status,
            u.message,
        )
        for u in out.updates
    )
    return SyncResult(
        verb,
        out.remote,
        out.repo,
        updates,
        s.packs,
        s.meta_packs,
        s.chunks,
        s.objects,
        s.bytes,
        s.seconds,
    )


def remote_add(
    home: Path | None, name: str, url: str, endpoint_url: str | None = None
) -> RemoteResult:
    return _remote_result(remotes_mod.add(open_store(home), name, url, endpoint_url))


def remote_list(home: Path | None) -> list[RemoteResult]:
    return [_remote_result(r) for r in remotes_mod.list_all(open_store(home))]


def remote_remove(home: Path | None, name: str) -> RemoteResult:
    return _remote_result(remotes_mod.remove(open_store(home), name))


def push(
    home: Path | None,
    target: str,
    remote: str | None = None,
    all_refs: bool = False,
    progress: Progress | None = None,
) -> SyncResult:
    """Push REPO[@BRANCH] (or every branch and tag with `all_refs`) to a remote.

    MLGITFS_PACK_TARGET (bytes) overrides the pack size, for tests and tuning."""
    spec = parse_revspec(target)
    if spec.back or spec.path:
        raise UsageError(f"{target!r}: expected REPO[@BRANCH]")
    if all_refs and spec.explicit_ref:
        raise UsageError("--all pushes every branch and tag: name just the repo")
    check_ref_name(spec.ref)
    pack_target = int(os.environ.get("MLGITFS_PACK_TARGET", packs_mod.PACK_TARGET))
    out = sync_mod.push(
        open_store(home), spec.repo, spec.ref, remote, all_refs, progress, pack_target
    )
    return _sync_result("push", out)


def fetch(home: Path | None, repo: str, remote: str | None = None) -> SyncResult:
    return _sync_result("fetch", sync_mod.fetch(open_store(home), check_repo_name(repo), remote))


def pull(home: Path | None, target: str, remote: str | None = None) -> SyncResult:
    repo, branch = parse_repo_branch(target)
    return _sync_result("pull", sync_mod.pull(open_store(home), repo, branch, remote))


def clone(
    home: Path | None,
    url: str,
    repo: str,
    local_name: str | None = None,
    endpoint_url: str | None = None,
    remote: str = "origin",
) -> CloneResult:
    store = open_store(home)
    rec, out = sync_mod.clone(store, url, repo, local_name, endpoint_url, remote)
    return CloneResult(_repo_result(store, rec), out.remote, url, _sync_result("fetch", out))


def prefetch(home: Path | None, revspec: str, progress: Progress | None = None) -> PrefetchResult:
    s = prefetch_mod.prefetch(open_store(home), revspec, progress)
    return PrefetchResult(revspec, s.chunks, s.objects, s.bytes, s.requests, s.seconds)
