"""Merges into a writable mount: merge --into MOUNTPOINT, update, resolve, merge --abort, and
the sides of a conflicted path (docs/merge.md, "Resolving in a mount").

The mount's daemon does the work (vfs/mountmerge.py, over the control socket), so the kernel's
view stays coherent; the sides of a conflict are read here from the merge state in LMDB.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlgitfs.api._mounts import mount_paths, repo_branch, writable_mount
from mlgitfs.errors import PathNotFound, UsageError
from mlgitfs.meta import mergestate
from mlgitfs.meta.checkouts import get_checkout
from mlgitfs.meta.mergestate import ConflictRecord
from mlgitfs.model.conflicts import MountConflict
from mlgitfs.model.ids import to_hex
from mlgitfs.model.objects import EntryKind
from mlgitfs.model.revspec import parse_revspec
from mlgitfs.repo import refs
from mlgitfs.repo.trees import chunk_bytes, file_chunks
from mlgitfs.store.facade import Store

if TYPE_CHECKING:
    from mlgitfs.daemon import messages


@dataclass(frozen=True, slots=True)
class MergeInfo:
    """A merge in progress in a writable mount."""

    kind: str  # merge (concluded by a two-parent commit) or update
    source: str  # how theirs was named
    theirs: str
    merge_base: str
    old_base: str  # the mount's base before (an update moved it)
    ours_tree: str  # the mount's tree before the merge: what --abort restores
    merged_tree: str
    paths_changed: int
    conflicts: tuple[MountConflict, ...]


@dataclass(frozen=True, slots=True)
class MountMergeResult:
    mountpoint: str
    repo: str
    branch: str
    status: str  # up to date, merged, updated, conflicts, resolved, aborted
    paths: tuple[str, ...]  # the paths the operation put in the mount
    merging: MergeInfo | None  # the merge still in progress (None: none)


def merge_info(v: messages.MergeInfo | None) -> MergeInfo | None:
    """The daemon's description of a merge in progress."""
    if v is None:
        return None
    return MergeInfo(
        v.kind, v.label, to_hex(v.theirs), to_hex(v.merge_base), to_hex(v.old_base),
        to_hex(v.ours_tree), to_hex(v.merged_tree), v.paths, v.conflicts,
    )  # fmt: skip


def _call(home: Path | None, where: Path | None, request: messages.MergeRequest
          | messages.ResolveRequest | messages.MergeAbortRequest) -> MountMergeResult:  # fmt: skip
    from mlgitfs.daemon import protocol

    _, m, sock = writable_mount(home, where)
    repo, branch = repo_branch(m.revspec)
    v = protocol.call(sock, request, m.revspec)
    return MountMergeResult(m.mountpoint, repo, branch, v.status, v.paths,
                            merge_info(v.merging))  # fmt: skip


def merge_into_mount(
    home: Path | None, source: str, mountpoint: Path, strategy: str | None = None
) -> MountMergeResult:
    """Merge SOURCE (REPO@REF) into the writable mount at MOUNTPOINT: the clean part goes
    into its overlay, conflicts stay for `resolve`; `commit` concludes it (two parents)."""
    from mlgitfs.daemon import messages

    store, m, _ = writable_mount(home, mountpoint)
    repo, _branch = repo_branch(m.revspec)
    r = refs.resolve(store, parse_revspec(source, default_repo=repo))
    if r.spec.path:
        raise UsageError(f"{source!r} names a path; name a commit")
    if r.repo != repo:
        raise UsageError(f"{source} is a commit of {r.repo}; the mount is of {repo}")
    request = messages.MergeRequest(bytes(r.commit_id), source, strategy or "")
    return _call(home, mountpoint, request)


def update(
    home: Path | None, mountpoint: Path | None, strategy: str | None = None
) -> MountMergeResult:
    """Move the writable mount's base to its branch's head, merging its uncommitted changes
    in (three-way, against the old base); overlapping changes become conflicts."""
    from mlgitfs.daemon import messages

    return _call(home, mountpoint, messages.MergeRequest(None, "", strategy or ""))


def resolve(home: Path | None, paths: list[Path], side: str | None = None) -> MountMergeResult:
    """Mark conflicted PATHs resolved: with `side` (base, ours, theirs) that side's version
    is put there; without, the file as it is in the mount (edited) is taken."""
    from mlgitfs.daemon import messages

    if not paths:
        raise UsageError("name the conflicted paths to resolve")
    _, m, _ = writable_mount(home, paths[0])
    rel = mount_paths(paths, m.mountpoint)
    return _call(home, paths[0], messages.ResolveRequest(tuple(rel), side or ""))


def merge_abort(home: Path | None, mountpoint: Path | None) -> MountMergeResult:
    """Put the mount back as it was before the merge (or update) in progress."""
    from mlgitfs.daemon import messages

    return _call(home, mountpoint, messages.MergeAbortRequest())


def _conflicted(home: Path | None, path: Path) -> tuple[Store, str, ConflictRecord]:
    """The store, the path inside its mount, and the conflict record of a conflicted path."""
    store, m, _ = writable_mount(home, path)
    [rel] = mount_paths([path], m.mountpoint)
    repo, branch = repo_branch(m.revspec)
    with store.env.read() as txn:
        rec = get_checkout(txn, repo, branch)
        state = mergestate.get(txn, rec.id) if rec is not None else None
    if state is None:
        raise UsageError(f"no merge is in progress in {m.mountpoint}")
    key = rel.encode("utf-8", "surrogateescape")
    found = [c for c in state.conflicts if c.path == key]
    if not found:
        raise UsageError(f"{rel} is not a conflicted path (`mlgitfs status` lists them)")
    return store, rel, found[0]


def conflict_side(home: Path | None, path: Path, side: str) -> Iterator[bytes]:
    """The bytes of one side (base, ours, theirs) of a conflicted file of a writable mount."""
    if side not in ("base", "ours", "theirs"):
        raise UsageError(f"a side is base, ours or theirs, not {side!r}")
    store, rel, found = _conflicted(home, path)
    entry = getattr(found, side)
    if entry is None:
        raise PathNotFound(f"{rel} does not exist on the {side} side")
    if entry.is_dir or entry.kind is EntryKind.SYMLINK:
        what = (
            "a directory" if entry.is_dir else f"a symlink to {entry.ref.decode(errors='replace')}"
        )
        raise PathNotFound(f"{rel} is {what} on the {side} side")
    for c in file_chunks(store, entry):
        yield chunk_bytes(store, c)


def conflict_cells_csv(home: Path | None, path: Path) -> bytes:
    """The conflicting cells of a conflicted table as a CSV table to review in a spreadsheet
    (key, column, base, ours, theirs, conflict; UTF-8 with a BOM, CRLF lines, as
    `merge-table --conflicts` writes them)."""
    _, rel, found = _conflicted(home, path)
    if not found.cells:
        raise UsageError(f"{rel} has no conflicting cells (it is not a table merged by rows)")
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(["key", "column", "base", "ours", "theirs", "conflict"])
    for x in found.cells:
        w.writerow([x.key, x.column, x.base or "", x.ours or "", x.theirs or "", x.kind])
    return b"\xef\xbb\xbf" + out.getvalue().encode("utf-8")


def pull_into_mount(
    home: Path | None,
    target: str,
    mountpoint: Path,
    remote: str | None = None,
    strategy: str | None = None,
) -> MountMergeResult:
    """Fetch REPO, then merge the remote's branch (REMOTE/BRANCH, the mount's branch) into
    the writable mount at MOUNTPOINT, as `merge --into MOUNTPOINT` does."""
    from mlgitfs.api.remotes import fetch

    _, m, _ = writable_mount(home, mountpoint)
    repo, branch = repo_branch(m.revspec)
    want_repo, _, want_branch = target.partition("@")
    if want_repo != repo or (want_branch and want_branch != branch):
        raise UsageError(f"the mount at {m.mountpoint} is of {m.revspec}, not of {target}")
    got = fetch(home, repo, remote)
    return merge_into_mount(home, f"{repo}@{got.remote}/{branch}", mountpoint, strategy)
