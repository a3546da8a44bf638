"""The checkout verbs a writable mount serves over its control socket: commit, status,
restore, unlock (merges into the mount: vfs/mountmerge.py).

Typed arguments in, typed outcomes out; daemon/handlers.py maps each control request
(daemon/messages.py) to one of them. Errors are raised as `MlgitError`s; the daemon's server
sends their class and message back, and the client raises the same class, so the CLI shows
the message and the exit code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import trio

from mlgitfs.errors import ConflictError, FsError, PolicyError, UsageError
from mlgitfs.meta.mergestate import MergeState
from mlgitfs.model.ids import ObjectId, short_hex
from mlgitfs.model.names import split_path
from mlgitfs.model.objects import EntryKind
from mlgitfs.repo import refs
from mlgitfs.repo.commits import CommitRequest
from mlgitfs.repo.gate import HookOptions, HookResult
from mlgitfs.repo.pathcommit import policy_message
from mlgitfs.vfs import changes, commit, mountmerge, restore
from mlgitfs.vfs.changes import Change
from mlgitfs.vfs.overlay import WritableView
from mlgitfs.vfs.types import Caller

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    commit: ObjectId | None  # None: nothing to commit, or a dry run
    tree: ObjectId
    base: ObjectId
    files_hashed: int
    bytes_hashed: int
    bytes_stored: int
    dry_run: bool
    changes: list[Change]  # what the commit changes (a dry run: would change)
    seconds: float
    hooks: list[HookResult] = field(default_factory=list)  # hooks and checks that ran


@dataclass(frozen=True, slots=True)
class StatusOutcome:
    repo: str
    branch: str
    base: ObjectId
    mutability: str
    changes: list[Change]
    refused: list[tuple[str, str, str]]  # (operation, path, reason) since the last status
    refused_dropped: int  # how many more were refused than kept
    head: ObjectId | None  # the branch's head: not the base when it moved under the mount
    merging: MergeState | None  # a merge (or update) in progress


_commit_limiter = trio.CapacityLimiter(1)


async def commit_checkout(
    view: WritableView,
    message: str,
    meta: dict[str, str] | None = None,
    inputs: list[tuple[str, ObjectId]] | None = None,
    dry_run: bool = False,
    author: str | None = None,
    hooks: HookOptions | None = None,
    caller: Caller | None = None,
) -> CommitOutcome:
    """Commit what the view changed; the branch moves by compare-and-swap on its base.
    The view's policies, asked with `caller`, judge every changed path and admit the
    commit (vfs/policy.py): the branch's rule, then its pre-commit hooks (their commands run
    in the commit's worker thread, the mount still serving reads); post-commit hooks run
    once the mount is thawed."""
    if not message.strip():
        raise UsageError("a commit needs a message (-m)")
    req = CommitRequest(view.repo, view.branch, message, meta or {}, inputs or [], author)
    t0 = time.perf_counter()
    async with view.frozen():
        merging = mountmerge.before_commit(view)  # UnmergedPaths while conflicts remain
        # Frozen: no mutation runs until this block ends; writes arriving now wait at the gate
        # and land in the next commit. The diff is the status a dry run shows and what the
        # commit changes (commit.build keeps entries whose content is unchanged).
        deltas = await changes.compute(view)
        check_commit(view, deltas, merging, caller)
        report = changes.report(deltas)
        plan = commit.plan(view)
        view.flush_base()
        try:
            out = await trio.to_thread.run_sync(
                partial(
                    commit.build, view, plan, req, dry_run, None, hooks,
                    theirs=merging.theirs if merging else None,
                    conclude=merging.conclude if merging else None, caller=caller,
                ),
                limiter=_commit_limiter,
            )  # fmt: skip
        except ConflictError as exc:
            raise ConflictError(
                f"{exc.message}. Your changes are kept in the mount; `mlgitfs update "
                "MOUNTPOINT` moves the mount to the branch's head and merges them in"
            ) from exc
        doomed: list[str] = []
        if out.commit is not None:
            # No checkpoint between the commit's transaction (done) and the in-memory switch.
            doomed = commit.dematerialize(view, plan, out)
        if doomed:
            # Still frozen: a write after the commit copies the file up again under the same
            # name, which must not be deleted by this.
            await trio.to_thread.run_sync(commit.remove_files, doomed)
    if out.commit is not None:
        log.info("committed %s to %s@%s: %d files hashed", short_hex(out.commit), view.repo,
                 view.branch, out.files_hashed)  # fmt: skip
        if out.gate is not None and out.candidate is not None:
            out.candidate.commit = out.commit
            await trio.to_thread.run_sync(out.gate.post_commit, out.candidate)
    return CommitOutcome(out.commit, out.tree, plan.base_commit, out.files_hashed,
                         out.bytes_hashed, out.bytes_stored, dry_run, report,
                         time.perf_counter() - t0,
                         out.gate.results if out.gate is not None else [])  # fmt: skip


def check_commit(
    view: WritableView,
    deltas: list[changes.Delta],
    merging: mountmerge.Concluding | None = None,
    caller: Caller | None = None,
) -> None:
    """Ask the policies about every committed file whose content the commit would change,
    whatever system calls got it there (not what a merge brought: committed elsewhere
    already); refused: PolicyError listing them, nothing committed."""
    refused = []
    for d in deltas:
        if d.change != "modified" or d.old is None or d.new is None:
            continue
        if merging is not None and merging.merged(d.path):
            continue
        if d.old.kind not in (EntryKind.FILE, EntryKind.CHUNKED) or d.new.kind is EntryKind.DIR:
            continue
        if changes.same_content(d.old, d.new):
            continue  # a chmod
        try:
            view.check("commit", d.path, True, caller)
        except FsError as exc:
            refused.append(exc.message)
    if refused:
        raise PolicyError(
            policy_message("commit", refused)
            + "\nnothing was committed; `mlgitfs restore PATH` puts a committed file back"
        )


async def status(view: WritableView) -> StatusOutcome:
    """What the view changed against its base, and what it refused since the last status."""
    items = await changes.status(view)
    refused, dropped = view.take_refused()
    return StatusOutcome(view.repo, view.branch, view.record.base, view.mutability.value,
                         items, refused, dropped, mountmerge.head_of(view),
                         mountmerge.state_of(view))  # fmt: skip


async def restore_paths(
    view: WritableView, paths: Sequence[str], source_spec: str = "", caller: Caller | None = None
) -> restore.RestoreOutcome:
    """Put `paths` (none: the whole tree) back as `source_spec` has them (a revspec of the
    view's repo; "": its base)."""
    if source_spec:
        r = refs.resolve(view.store, source_spec)
        if r.repo != view.repo:
            raise UsageError(f"restore takes versions of {view.repo}, not of {r.repo}")
        source = r.commit.tree if r.entry is None else None
        if source is None or r.spec.path:
            raise UsageError("--source names a version (REPO@REF), not a path inside it")
    else:
        source = view.base_tree()
    parts = [split_path(p) for p in paths] or [[]]
    out = restore.RestoreOutcome()
    async with view.exclusive, view.mutating():
        restore.restore(view, parts, source, out, caller)
    return out


async def unlock(view: WritableView, paths: Sequence[str]) -> list[str]:
    """Let the committed files at `paths` change until the next commit; the paths unlocked."""
    async with view.mutating():
        return restore.unlock(view, [split_path(p) for p in paths])
