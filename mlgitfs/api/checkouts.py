"""Writable branch mounts: commit, status, restore, unlock (over the daemon's control socket)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mlgitfs.api import readsets as readsets_api
from mlgitfs.api._common import commit_info, parse_inputs, parse_meta
from mlgitfs.api._mounts import mount_paths, repo_branch, writable_mount
from mlgitfs.api.mountmerge import MergeInfo, merge_info
from mlgitfs.api.mounts import MountInfo
from mlgitfs.api.results import CommitInfo
from mlgitfs.errors import UsageError
from mlgitfs.model.actor import default_actor as default_author
from mlgitfs.model.ids import ObjectId, to_hex
from mlgitfs.model.revspec import parse_revspec
from mlgitfs.repo.gate import HookResult

if TYPE_CHECKING:
    from mlgitfs.daemon.messages import ChangeItem

# --- checkouts -------------------------------------------------------------------------------
# Writable branch mounts: commit, status, restore and unlock go to the mount's daemon over its
# control socket (mlgitfs/daemon/protocol.py); the daemon owns the checkout (design §5).


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
    # Changes the mount refused since the last status: (operation, path, reason), and how
    # many more were refused than kept (the daemon keeps 1,000).
    refused: tuple[tuple[str, str, str], ...] = ()
    refused_dropped: int = 0
    head: str = ""  # the branch's head: not the base when the branch moved under the mount
    merging: MergeInfo | None = None  # a merge (or update) in progress, its conflicts

    @property
    def behind(self) -> bool:
        """The branch moved since the mount's base (`mlgitfs update` catches up)."""
        return bool(self.head) and self.head != self.base


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
    hooks: tuple[HookResult, ...] = ()  # the branch's hooks and checks that ran


@dataclass(frozen=True, slots=True)
class PathsResult:
    mountpoint: str
    paths: tuple[str, ...]


def _status_items(raw: tuple[ChangeItem, ...]) -> tuple[StatusItem, ...]:
    return tuple(StatusItem(c.change, c.path, c.kind, c.old_path) for c in raw)


def commit(
    home: Path | None,
    mountpoint: Path | None,
    message: str,
    meta: list[str] | None = None,
    inputs: list[str] | None = None,
    dry_run: bool = False,
    no_verify: bool = False,
    inputs_from: str | None = None,
) -> CheckoutCommitResult:
    """Commit what the writable mount changed; the branch moves (CAS on the mount's base).
    The mount's daemon runs the branch's pre-commit hooks (`no_verify`: skipped, where the
    branch allows); a refusal arrives as HookRefused and the overlay is kept."""
    from mlgitfs.daemon import messages, protocol

    store, m, sock = writable_mount(home, mountpoint)
    repo, branch = repo_branch(m.revspec)
    rs = None if inputs_from is None else readsets_api.load_recording(store, inputs_from)
    declared = parse_inputs(store, inputs or [], repo)
    request = messages.CommitRequest(
        message,
        tuple(sorted(parse_meta(meta or []).items())),
        tuple((r, bytes(c)) for r, c in readsets_api.merged_inputs(declared, rs)),
        dry_run,
        default_author(),
        no_verify,
    )
    v = protocol.call(sock, request, m.revspec)
    info = None
    if v.commit is not None:
        oid = ObjectId(v.commit)
        info = commit_info(oid, store.commit(oid))
        if rs is not None:
            readsets_api.attach(store, oid, rs)
    return CheckoutCommitResult(
        m.mountpoint, repo, branch, info, v.dry_run, v.files_hashed, v.bytes_hashed,
        v.bytes_stored, v.seconds, _status_items(v.changes),
        tuple(HookResult(h.name, h.kind, h.event, h.status, h.code, h.output, h.cached,
                         h.seconds) for h in v.hooks),
    )  # fmt: skip


def status(home: Path | None, mountpoint: Path | None = None) -> StatusResult:
    """What the writable mount changed against its base commit (O(changes))."""
    from mlgitfs.daemon import messages, protocol

    _, m, sock = writable_mount(home, mountpoint)
    v = protocol.call(sock, messages.StatusRequest(), m.revspec)
    head = to_hex(v.head) if v.head is not None else ""
    return StatusResult(m.mountpoint, v.repo, v.branch, to_hex(v.base), v.mutability,
                        _status_items(v.changes), v.refused, v.refused_dropped, head,
                        merge_info(v.merging))  # fmt: skip


def restore(home: Path | None, paths: list[Path], source: str | None = None) -> PathsResult:
    """Put paths of a writable mount back as they are in `source` (default: its base commit);
    no path: the whole tree."""
    from mlgitfs.daemon import messages, protocol

    _, m, sock = writable_mount(home, paths[0] if paths else None)
    rel = tuple(mount_paths(paths, m.mountpoint)) if paths else ()
    v = protocol.call(sock, messages.RestoreRequest(rel, _source(source, m)), m.revspec)
    return PathsResult(m.mountpoint, v.paths)


def _source(source: str | None, m: MountInfo) -> str:
    """restore's --source as a full revspec: the mount's repo is implied, so `@v1` is its
    ref v1; a bare word is a repo, as everywhere, and one not the mount's is refused here."""
    if source is None:
        return ""
    repo = repo_branch(m.revspec)[0]
    spec = parse_revspec(source, default_repo=repo)
    if spec.repo != repo and not spec.explicit_ref:
        raise UsageError(
            f"--source {source!r} names the repo {spec.repo}, but the mount is of {repo}: "
            f"for a ref of {repo} write @{source} or {repo}@{source}"
        )
    return str(spec)


def unlock(home: Path | None, paths: list[Path]) -> PathsResult:
    """Let committed files of a flexible repo change until the next commit."""
    from mlgitfs.daemon import messages, protocol

    if not paths:
        raise UsageError("name the files to unlock")
    _, m, sock = writable_mount(home, paths[0])
    request = messages.UnlockRequest(tuple(mount_paths(paths, m.mountpoint)))
    v = protocol.call(sock, request, m.revspec)
    return PathsResult(m.mountpoint, v.paths)
