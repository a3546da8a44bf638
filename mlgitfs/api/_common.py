"""What every verb module shares: the process's open stores and argument parsing helpers."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mlgitfs.api.results import CommitInfo, RepoResult
from mlgitfs.errors import StoreNotFound, UsageError
from mlgitfs.meta import db
from mlgitfs.meta.db import RepoRecord
from mlgitfs.model.ids import ObjectId, to_hex
from mlgitfs.model.objects import Commit
from mlgitfs.model.revspec import parse_revspec
from mlgitfs.repo import refs
from mlgitfs.store.facade import Store, default_home, is_store

Progress = Callable[[int, int], None]

_stores: dict[str, Store] = {}


def open_store(home: Path | None, create: bool = False) -> Store:
    """The process's Store for `home` (one LMDB environment per process and path).

    Only `create` (init, clone) makes a store where there is none: anything else naming a
    home without one (a mistyped --home or $MLGITFS_HOME) is StoreNotFound, not a new store."""
    where = (home or default_home()).absolute()
    if not create and not is_store(where):
        raise StoreNotFound(
            f"no mlgitfs store at {where}: check --home and $MLGITFS_HOME; 'mlgitfs init' "
            "or 'mlgitfs clone' creates one"
        )
    store = Store.open(where)
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


# --- helpers --------------------------------------------------------------------------------


def commit_info(oid: ObjectId, c: Commit, ref_names: tuple[str, ...] = ()) -> CommitInfo:
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


def repo_result(store: Store, rec: RepoRecord) -> RepoResult:
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


def parse_meta(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--meta {item!r}: expected KEY=VALUE")
        if key in out:
            raise UsageError(f"--meta {key} given twice")
        out[key] = value
    return out


def parse_inputs(
    store: Store, items: list[str], repo: str | None = None
) -> list[tuple[str, ObjectId]]:
    """`--input` revspecs as (repo, commit); `@REF` alone means a ref of `repo`."""
    out = []
    for item in items:
        r = refs.resolve(store, parse_revspec(item, default_repo=repo))
        if r.spec.path:
            raise UsageError(f"--input {item!r}: name a commit, not a path")
        out.append((r.repo, r.commit_id))
    return out


def ref_index(store: Store, repo: str) -> dict[bytes, list[str]]:
    """Commit id → the labels of `repo`'s refs that name it (branches, tags, origin/main)."""
    out: dict[bytes, list[str]] = {}
    with store.env.read() as txn:
        for ref, oid in db.list_refs(txn, repo):
            out.setdefault(bytes(oid), []).append(refs.ref_label(ref))
    return out


def is_mountpoint(into: str | None) -> bool:
    """`--into` names a mount (a directory) rather than REPO@BRANCH."""
    return into is not None and ("@" not in into or os.path.isdir(into))
