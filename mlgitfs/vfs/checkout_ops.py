"""The checkout verbs a writable mount serves over its control socket: commit, status, restore,
unlock, flush; and `handle`, which maps one control request to one of them.

Requests and replies are plain msgpack-able dicts (see daemon/protocol.py for the wire format).
Errors are raised as `MlgitError`s; the daemon's server sends their class and message back,
and the client raises the same class, so the CLI shows the message and the exit code.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import trio

from mlgitfs.errors import ConflictError, FsError, PolicyError, UsageError
from mlgitfs.model.ids import ObjectId, from_hex, short_hex, to_hex
from mlgitfs.model.names import split_path
from mlgitfs.model.objects import EntryKind
from mlgitfs.repo import refs
from mlgitfs.repo.commits import CommitRequest
from mlgitfs.vfs import changes, commit, restore
from mlgitfs.vfs.overlay import WritableView

log = logging.getLogger(__name__)


@dataclass
class Reply:
    """A control reply and what the kernel's caches must forget because of it."""

    value: dict[str, Any]
    entries: list[tuple[int, bytes]] = field(default_factory=list)
    inodes: list[int] = field(default_factory=list)


_commit_limiter = trio.CapacityLimiter(1)


async def do_commit(view: WritableView, args: dict[str, Any]) -> Reply:
    message = args.get("message")
    if not isinstance(message, str) or not message.strip():
        raise UsageError("a commit needs a message (-m)")
    meta = {str(k): str(v) for k, v in args.get("meta", [])}
    inputs = [(str(r), ObjectId(from_hex(str(c)))) for r, c in args.get("inputs", [])]
    dry_run = bool(args.get("dry_run", False))
    author = args.get("author") or None
    req = CommitRequest(view.repo, view.branch, message, meta, inputs, author)
    t0 = time.perf_counter()
    async with view.frozen():
        # Frozen: no mutation runs until this block ends; writes arriving now wait at the gate
        # and land in the next commit. The diff is the status a dry run shows and what the
        # commit changes (commit.build keeps entries whose content is unchanged).
        deltas = await changes.compute(view)
        check_commit(view, deltas)
        status = changes.report(deltas)
        plan = commit.plan(view)
        view.flush_base()
        try:
            out = await trio.to_thread.run_sync(
                commit.build, view, plan, req, dry_run, limiter=_commit_limiter
            )
        except ConflictError as exc:
            raise ConflictError(
                f"{exc.message}. Your changes are kept in the mount; to build on the new head, "
                "copy them out, run `mlgitfs restore` in the mount, unmount and mount the "
                "branch again (an unchanged checkout follows the branch), then copy them back"
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
    return Reply(
        {
            "commit": to_hex(out.commit) if out.commit is not None else "",
            "tree": to_hex(out.tree),
            "base": to_hex(plan.base_commit),
            "files_hashed": out.files_hashed,
            "bytes_hashed": out.bytes_hashed,
            "bytes_stored": out.bytes_stored,
            "dry_run": dry_run,
            "changes": [_change(c) for c in status],
            "seconds": time.perf_counter() - t0,
        }
    )


def _change(c: changes.Change) -> list[str]:
    return [c.change.value, c.path, c.kind, c.old_path]


def check_commit(view: WritableView, deltas: list[changes.Delta]) -> None:
    """Ask the policies about every committed file whose content the commit would change,
    whatever system calls got it there; refused: PolicyError listing them, nothing committed."""
    refused = []
    for d in deltas:
        if d.change != "modified" or d.old is None or d.new is None:
            continue
        if d.old.kind not in (EntryKind.FILE, EntryKind.CHUNKED) or d.new.kind is EntryKind.DIR:
            continue
        if changes.same_content(d.old, d.new):
            continue  # a chmod
        try:
            view.check("commit", d.path, True)
        except FsError as exc:
            refused.append(exc.message)
    if refused:
        raise PolicyError(
            restore.policy_message("commit", refused)
            + "\nnothing was committed; `mlgitfs restore PATH` puts a committed file back"
        )


async def do_status(view: WritableView) -> Reply:
    items = await changes.status(view)
    refused, dropped = view.take_refused()
    return Reply(
        {
            "repo": view.repo,
            "branch": view.branch,
            "base": to_hex(view.record.base),
            "mutability": view.mutability.value,
            "changes": [_change(c) for c in items],
            "refused": [list(r) for r in refused],
            "refused_dropped": dropped,
        }
    )


def _paths(args: dict[str, Any]) -> list[list[bytes]]:
    raw = args.get("paths", [])
    if not isinstance(raw, list):
        raise UsageError("paths must be a list")
    return [split_path(p if isinstance(p, bytes | str) else str(p)) for p in raw]


async def do_restore(view: WritableView, args: dict[str, Any]) -> Reply:
    source_spec = args.get("source") or ""
    if source_spec:
        r = refs.resolve(view.store, str(source_spec))
        if r.repo != view.repo:
            raise UsageError(f"restore takes versions of {view.repo}, not of {r.repo}")
        source = r.commit.tree if r.entry is None else None
        if source is None or r.spec.path:
            raise UsageError("--source names a version (REPO@REF), not a path inside it")
    else:
        source = view.base_tree()
    paths = _paths(args) or [[]]
    out = restore.RestoreOutcome()
    async with view.exclusive, view.mutating():
        restore.restore(view, paths, source, out)
    return Reply({"paths": out.paths}, out.entries, out.inodes)


async def do_unlock(view: WritableView, args: dict[str, Any]) -> Reply:
    async with view.mutating():
        done = restore.unlock(view, _paths(args))
    return Reply({"paths": done, "mutability": view.mutability.value})


async def handle(view: WritableView, op: str, args: dict[str, Any]) -> Reply:
    """One control request → its reply; raises MlgitError for the client to show."""
    if op == "commit":
        return await do_commit(view, args)
    if op == "status":
        return await do_status(view)
    if op == "restore":
        return await do_restore(view, args)
    if op == "unlock":
        return await do_unlock(view, args)
    if op == "flush":
        view.flush_base()
        return Reply({})
    if op == "ping":
        return Reply({"repo": view.repo, "branch": view.branch})
    raise UsageError(f"unknown control request {op!r}")
