"""Bundles: `bundle REPO FILE` and `clone FILE [NAME]` (mlgitfs/repo/bundle.py)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from mlgitfs.api._common import close_store, open_store, repo_result
from mlgitfs.api.results import RepoResult
from mlgitfs.model.names import check_repo_name
from mlgitfs.repo import bundle as bundle_mod
from mlgitfs.store import bundlefile
from mlgitfs.store.facade import default_home


@dataclass(frozen=True, slots=True)
class BundleResult:
    repo: str
    file: str
    refs: int  # branches and tags
    objects: int  # commits, trees, manifests
    chunks: int
    bytes: int  # the bundle file's size
    seconds: float


@dataclass(frozen=True, slots=True)
class BundleCloneResult:
    repo: RepoResult
    file: str
    objects: int
    chunks: int
    bytes: int
    seconds: float


def bundle(home: Path | None, repo: str, file: Path) -> BundleResult:
    """Write REPO's branches, tags, history, contents and retention rules to FILE, atomically
    (a bundle that fails or is killed leaves FILE as it was)."""
    s = bundle_mod.write(open_store(home), check_repo_name(repo), file.absolute())
    return BundleResult(s.repo, str(file), s.refs, s.objects, s.chunks, s.bytes, s.seconds)


def clone_bundle(home: Path | None, file: Path, local_name: str | None = None) -> BundleCloneResult:
    """Make a repo of the bundle FILE (named LOCAL_NAME, default the bundled repo's name); the
    whole file is checked before anything, the store included, is created."""
    bundlefile.verify(file)  # BundleDamaged before a store is made
    where = (home or default_home()).absolute()
    fresh = not where.exists()  # a clone that fails leaves no store it made behind
    store = open_store(where, create=True)
    try:
        rec, s = bundle_mod.restore(store, file, local_name)
    except BaseException:
        if fresh:
            close_store(where)
            shutil.rmtree(where, ignore_errors=True)
        raise
    return BundleCloneResult(
        repo_result(store, rec), str(file), s.objects, s.chunks, s.bytes, s.seconds
    )
