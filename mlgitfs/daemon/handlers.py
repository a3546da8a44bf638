"""The control ops' handlers: one per request type of daemon/messages.py, each turning a
typed request into a call of a verb of the checkout's view (`CheckoutFsView`, vfs/types.py;
the verbs are vfs/checkout_ops.py's and vfs/mountmerge.py's) and its outcome into the
op's typed reply, plus what the kernel's caches must forget because of it.

Adding an op: a request and a reply class in messages.py, a `@handles(TheRequest)` function
here (tests/test_control_protocol.py checks that every op has one). The recording ops are
the daemon's, not a view's (a read-only mount has no view to name): `@records(TheRequest)`,
served with the daemon's `Recorder`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mlgitfs.daemon import messages as msg
from mlgitfs.daemon.hookviews import hook_options
from mlgitfs.daemon.recorder import Recorder
from mlgitfs.errors import MountError, NotFound, ProtocolError, UsageError
from mlgitfs.meta.mergestate import MergeState
from mlgitfs.model.conflicts import MountConflict
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.names import split_path
from mlgitfs.repo.merge import Strategy, side_info
from mlgitfs.vfs import mountmerge
from mlgitfs.vfs.changes import Change
from mlgitfs.vfs.types import Caller, CheckoutFsView


@dataclass(frozen=True, slots=True)
class Outcome:
    """A handler's reply and what the kernel's caches must forget because of it."""

    reply: msg.Reply
    entries: list[tuple[int, bytes]] = field(default_factory=list)  # (parent inode, name)
    inodes: list[int] = field(default_factory=list)  # inodes whose data changed


Q = TypeVar("Q", bound=msg.Request[Any])
# (the view, the request, who sent it: the socket peer, whom the view's policies judge)
Handler = Callable[[CheckoutFsView, Q, Caller | None], Awaitable[Outcome]]

HANDLERS: dict[type[msg.Request[Any]], Handler[Any]] = {}


def handles(kind: type[Q]) -> Callable[[Handler[Q]], Handler[Q]]:
    def register(fn: Handler[Q]) -> Handler[Q]:
        HANDLERS[kind] = fn
        return fn

    return register


RecorderHandler = Callable[[Recorder, Q], Awaitable[Outcome]]
RECORDER_HANDLERS: dict[type[msg.Request[Any]], RecorderHandler[Any]] = {}


def records(kind: type[Q]) -> Callable[[RecorderHandler[Q]], RecorderHandler[Q]]:
    def register(fn: RecorderHandler[Q]) -> RecorderHandler[Q]:
        RECORDER_HANDLERS[kind] = fn
        return fn

    return register


async def handle_recording(recorder: Recorder, request: msg.Request[Any]) -> Outcome | None:
    """The outcome of a recording op; None when `request` is not one (a view's op)."""
    fn = RECORDER_HANDLERS.get(type(request))
    if fn is None:
        return None
    out = await fn(recorder, request)
    msg.check_reply(request, out.reply)
    return out


@records(msg.RecordStartRequest)
async def _record_start(recorder: Recorder, req: msg.RecordStartRequest) -> Outcome:
    try:
        recorder.start(req.name, req.root_pid)
    except ValueError as exc:
        raise MountError(str(exc)) from None
    return Outcome(msg.Reply())


@records(msg.RecordStopRequest)
async def _record_stop(recorder: Recorder, req: msg.RecordStopRequest) -> Outcome:
    rec = recorder.stop(req.name)
    if rec is None:
        raise NotFound(f"no recording named {req.name!r} runs in this mount")
    items = tuple(
        msg.ReadItem(repo, commit, path, served, opens)
        for (repo, commit, path), (served, opens) in sorted(rec.files.items())
    )
    return Outcome(msg.RecordStopReply(items))


async def handle(
    view: CheckoutFsView, request: msg.Request[Any], caller: Caller | None = None
) -> Outcome:
    """One typed request of `caller` → its outcome, with what the kernel must forget in the
    mount's inode numbers (the view's own are shifted into its range: a checkout beside
    versions, vfs/mixed.py); raises MlgitError for the client to show."""
    fn = HANDLERS.get(type(request))
    if fn is None:
        raise ProtocolError(f"this daemon does not serve {msg.op_name(request)!r}")
    out = await fn(view, request, caller)
    msg.check_reply(request, out.reply)
    outer = view.inodes.outer
    return Outcome(out.reply, [(outer(p), name) for p, name in out.entries],
                   [outer(i) for i in out.inodes])  # fmt: skip


def _items(changes: list[Change]) -> tuple[msg.ChangeItem, ...]:
    return tuple(msg.ChangeItem(c.change.value, c.path, c.kind, c.old_path) for c in changes)


@handles(msg.CommitRequest)
async def _commit(view: CheckoutFsView, req: msg.CommitRequest, caller: Caller | None) -> Outcome:
    inputs = [(repo, ObjectId(commit)) for repo, commit in req.inputs]
    out = await view.commit(
        req.message, dict(req.meta), inputs, req.dry_run, req.author or None,
        hook_options(view.store, req.no_verify), caller,
    )  # fmt: skip
    hooks = tuple(
        msg.HookItem(h.name, h.kind, h.event, h.status, h.code, h.output, h.cached, h.seconds)
        for h in out.hooks
    )
    return Outcome(msg.CommitReply(
        out.commit, out.tree, out.base, out.files_hashed, out.bytes_hashed, out.bytes_stored,
        out.dry_run, _items(out.changes), out.seconds, hooks,
    ))  # fmt: skip


@handles(msg.StatusRequest)
async def _status(view: CheckoutFsView, req: msg.StatusRequest, caller: Caller | None) -> Outcome:
    out = await view.status()
    return Outcome(msg.StatusReply(
        out.repo, out.branch, out.base, out.mutability, _items(out.changes),
        tuple(out.refused), out.refused_dropped, out.head, _merge_info(out.merging),
    ))  # fmt: skip


def _merge_info(s: MergeState | None) -> msg.MergeInfo | None:
    if s is None:
        return None
    conflicts = tuple(
        MountConflict(
            c.path.decode("utf-8", "surrogateescape"), c.kind, c.detail, side_info(c.base),
            side_info(c.ours), side_info(c.theirs), c.cells,
        )
        for c in s.conflicts
    )  # fmt: skip
    return msg.MergeInfo(s.kind, s.label, s.theirs, s.merge_base, s.old_base, s.ours_tree,
                         s.merged_tree, len(s.paths), conflicts)  # fmt: skip


def _merged(got: mountmerge.Merged) -> Outcome:
    reply = msg.MergeReply(got.status, tuple(got.out.paths), _merge_info(got.state))
    return Outcome(reply, got.out.entries, got.out.inodes)


@handles(msg.MergeRequest)
async def _merge(view: CheckoutFsView, req: msg.MergeRequest, caller: Caller | None) -> Outcome:
    if req.strategy not in ("", "ours", "theirs"):
        raise UsageError(f"--strategy is ours or theirs, not {req.strategy!r}")
    theirs = ObjectId(req.theirs) if req.theirs is not None else None
    strategy = Strategy(req.strategy) if req.strategy else None
    return _merged(await view.merge(theirs, req.label or view.branch, strategy))


@handles(msg.ResolveRequest)
async def _resolve(view: CheckoutFsView, req: msg.ResolveRequest, caller: Caller | None) -> Outcome:
    paths = [b"/".join(split_path(p)) for p in req.paths]
    if not paths:
        raise UsageError("name the conflicted paths to resolve")
    return _merged(await view.resolve_conflicts(paths, req.side))


@handles(msg.MergeAbortRequest)
async def _merge_abort(
    view: CheckoutFsView, req: msg.MergeAbortRequest, caller: Caller | None
) -> Outcome:
    return _merged(await view.abort_merge())


@handles(msg.RestoreRequest)
async def _restore(view: CheckoutFsView, req: msg.RestoreRequest, caller: Caller | None) -> Outcome:
    out = await view.restore(req.paths, req.source, caller)
    return Outcome(msg.PathsReply(tuple(out.paths)), out.entries, out.inodes)


@handles(msg.UnlockRequest)
async def _unlock(view: CheckoutFsView, req: msg.UnlockRequest, caller: Caller | None) -> Outcome:
    done = await view.unlock(req.paths)
    return Outcome(msg.UnlockReply(tuple(done), view.mutability.value))


@handles(msg.FlushRequest)
async def _flush(view: CheckoutFsView, req: msg.FlushRequest, caller: Caller | None) -> Outcome:
    view.flush_base()
    return Outcome(msg.Reply())


@handles(msg.PingRequest)
async def _ping(view: CheckoutFsView, req: msg.PingRequest, caller: Caller | None) -> Outcome:
    return Outcome(msg.PingReply(view.repo, view.branch))
