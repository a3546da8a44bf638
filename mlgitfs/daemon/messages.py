"""The control protocol's messages: one frozen request type and one reply type per operation,
and the one place they are encoded to and decoded from msgpack-able maps.

A request class names its op and its reply class (`@op("commit", CommitReply)`); a field is a
str, int, float, bool, bytes, None-able, a tuple of those, or a nested message dataclass. A
decode checks every field's type and refuses a missing field without a default and a field
it does not know (an old daemon must not silently drop a newer client's `dry_run`): the
error is `ProtocolError`, never a KeyError or TypeError. Adding an op is one request class,
one reply class and one handler (daemon/handlers.py). Importable without trio or pyfuse3.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from mlgitfs.errors import ProtocolError
from mlgitfs.model.conflicts import MountConflict


@dataclass(frozen=True, slots=True)
class Reply:
    """Base of every reply (an op with nothing to say replies `Reply()`)."""


R = TypeVar("R", bound=Reply)


@dataclass(frozen=True, slots=True)
class Request(Generic[R]):
    """Base of every request; `R` is its reply type (see `op`)."""


REQUESTS: dict[str, type[Request[Any]]] = {}  # by op name: what a daemon may be asked
REPLIES: dict[type[Request[Any]], type[Reply]] = {}
_OPS: dict[type[Request[Any]], str] = {}

Q = TypeVar("Q", bound=Request[Any])


def op(name: str, reply: type[Reply]) -> Callable[[type[Q]], type[Q]]:
    """Register a request class under its op name with the type of its reply."""

    def register(cls: type[Q]) -> type[Q]:
        if name in REQUESTS:
            raise ValueError(f"control op {name!r} is registered twice")
        REQUESTS[name] = cls
        REPLIES[cls] = reply
        _OPS[cls] = name
        return cls

    return register


def op_name(request: Request[Any]) -> str:
    return _OPS[type(request)]


# --- the ops -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChangeItem:
    """One changed path as status and a dry-run commit report it (vfs/changes.py's words)."""

    change: str  # added, modified, deleted, renamed
    path: str
    kind: str  # file, dir, symlink
    old_path: str = ""  # for renamed


@dataclass(frozen=True, slots=True)
class HookItem:
    """One hook or check that gated a commit (repo/gate.py's HookResult)."""

    name: str
    kind: str  # hook, check
    event: str
    status: str  # passed, failed, timed out, crashed
    code: int
    output: str
    cached: bool
    seconds: float


@dataclass(frozen=True, slots=True)
class CommitReply(Reply):
    commit: bytes | None  # None: nothing to commit, or a dry run
    tree: bytes
    base: bytes
    files_hashed: int
    bytes_hashed: int
    bytes_stored: int
    dry_run: bool
    changes: tuple[ChangeItem, ...]  # what the commit changes (a dry run: would change)
    seconds: float
    hooks: tuple[HookItem, ...] = ()  # the branch's hooks and checks that ran


@op("commit", CommitReply)
@dataclass(frozen=True, slots=True)
class CommitRequest(Request[CommitReply]):
    message: str
    meta: tuple[tuple[str, str], ...] = ()
    inputs: tuple[tuple[str, bytes], ...] = ()  # (repo, commit id) the commit was made from
    dry_run: bool = False
    author: str = ""  # "": the daemon's default
    no_verify: bool = False  # skip the branch's hooks (refused where its rules forbid)


@dataclass(frozen=True, slots=True)
class MergeInfo:
    """A merge (or update) in progress in the mount (meta/mergestate.py)."""

    kind: str  # merge or update
    label: str  # how theirs was named
    theirs: bytes
    merge_base: bytes
    old_base: bytes
    ours_tree: bytes
    merged_tree: bytes
    paths: int  # how many paths the merge put in the mount
    conflicts: tuple[MountConflict, ...]


@dataclass(frozen=True, slots=True)
class StatusReply(Reply):
    repo: str
    branch: str
    base: bytes
    mutability: str
    changes: tuple[ChangeItem, ...]
    # Changes the mount refused since the last status (operation, path, reason), and how many
    # more were refused than kept.
    refused: tuple[tuple[str, str, str], ...] = ()
    refused_dropped: int = 0
    head: bytes | None = None  # the branch's head (not the base: it moved under the mount)
    merging: MergeInfo | None = None


@op("status", StatusReply)
@dataclass(frozen=True, slots=True)
class StatusRequest(Request[StatusReply]):
    pass


@dataclass(frozen=True, slots=True)
class PathsReply(Reply):
    paths: tuple[str, ...]


@op("restore", PathsReply)
@dataclass(frozen=True, slots=True)
class RestoreRequest(Request[PathsReply]):
    paths: tuple[str, ...] = ()  # inside the mount; none: the whole tree
    source: str = ""  # a revspec of the mount's repo; "": the checkout's base


@dataclass(frozen=True, slots=True)
class UnlockReply(Reply):
    paths: tuple[str, ...]
    mutability: str


@op("unlock", UnlockReply)
@dataclass(frozen=True, slots=True)
class UnlockRequest(Request[UnlockReply]):
    paths: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MergeReply(Reply):
    status: str  # up to date, merged, updated, conflicts, resolved, aborted
    paths: tuple[str, ...]  # what the operation put in the mount
    merging: MergeInfo | None  # the merge still in progress


@op("merge", MergeReply)
@dataclass(frozen=True, slots=True)
class MergeRequest(Request[MergeReply]):
    """merge --into MOUNTPOINT (theirs: a commit id), or update (theirs None)."""

    theirs: bytes | None = None
    label: str = ""  # how the user named theirs
    strategy: str = ""  # ours, theirs; "": rules only


@op("resolve", MergeReply)
@dataclass(frozen=True, slots=True)
class ResolveRequest(Request[MergeReply]):
    paths: tuple[str, ...]
    side: str = ""  # base, ours, theirs; "": the file as it is in the mount


@op("merge_abort", MergeReply)
@dataclass(frozen=True, slots=True)
class MergeAbortRequest(Request[MergeReply]):
    pass


@op("flush", Reply)
@dataclass(frozen=True, slots=True)
class FlushRequest(Request[Reply]):
    pass


@dataclass(frozen=True, slots=True)
class PingReply(Reply):
    repo: str
    branch: str


@op("ping", PingReply)
@dataclass(frozen=True, slots=True)
class PingRequest(Request[PingReply]):
    pass


@dataclass(frozen=True, slots=True)
class ReadItem:
    """One file a recording saw opened (daemon/recorder.py)."""

    repo: str
    commit: bytes
    path: str
    bytes_read: int  # bytes the daemon served through the recorded opens
    opens: int


@op("record_start", Reply)
@dataclass(frozen=True, slots=True)
class RecordStartRequest(Request[Reply]):
    """Attribute the opens of `root_pid` and its descendants to recording `name`."""

    name: str
    root_pid: int


@dataclass(frozen=True, slots=True)
class RecordStopReply(Reply):
    items: tuple[ReadItem, ...]


@op("record_stop", RecordStopReply)
@dataclass(frozen=True, slots=True)
class RecordStopRequest(Request[RecordStopReply]):
    name: str


# --- encoding ----------------------------------------------------------------------------------

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def encode(message: Request[Any] | Reply) -> dict[str, Any]:
    """The message's fields as a msgpack-able map (tuples become lists)."""
    return cast(dict[str, Any], _to_wire(message))


def _to_wire(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_wire(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple):
        return [_to_wire(v) for v in value]
    return value


def decode_request(name: object, args: object) -> Request[Any]:
    """The request an op name and its argument map make; ProtocolError if they make none."""
    cls = REQUESTS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ProtocolError(f"unknown control op {name!r}")
    return cast(Request[Any], _message(cls, args, str(name)))


def decode_reply(request: Request[R], value: object) -> R:
    """The reply to `request` a value map makes; ProtocolError if it makes none."""
    cls = REPLIES[type(request)]
    return cast(R, _message(cls, value, f"reply to {op_name(request)}"))


def check_reply(request: Request[Any], reply: Reply) -> None:
    """A handler's reply must be the request's reply type (a bug otherwise, caught here)."""
    want = REPLIES[type(request)]
    if type(reply) is not want:
        raise ProtocolError(
            f"{op_name(request)} answered with {type(reply).__name__}, not {want.__name__}"
        )


def _message(cls: type, value: object, where: str) -> object:
    if not isinstance(value, dict):
        raise ProtocolError(f"{where}: expected a map, got {type(value).__name__}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(str(k) for k in value if k not in fields)
    if unknown:
        raise ProtocolError(f"{where}: unknown field {', '.join(unknown)}")
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _value(hints[name], value[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ProtocolError(f"{where}: missing field {name}")
    return cls(**kwargs)


_SCALARS = (str, bytes, bool)


def _value(hint: Any, value: object, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        for alternative in typing.get_args(hint):
            if alternative is type(None):
                if value is None:
                    return None
                continue
            try:
                return _value(alternative, value, where)
            except ProtocolError:
                pass
        raise ProtocolError(f"{where}: {type(value).__name__} is not {hint}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ProtocolError(f"{where}: expected a list, got {type(value).__name__}")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ProtocolError(f"{where}: expected {len(args)} items, got {len(value)}")
        return tuple(
            _value(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if dataclasses.is_dataclass(hint):
        return _message(cast(type, hint), value, where)
    if hint in _SCALARS:
        if type(value) is not hint:
            raise ProtocolError(f"{where}: expected {hint.__name__}, got {type(value).__name__}")
        return value
    if hint is int:
        if type(value) is not int:
            raise ProtocolError(f"{where}: expected int, got {type(value).__name__}")
        return value
    if hint is float:
        if type(value) not in (int, float):
            raise ProtocolError(f"{where}: expected float, got {type(value).__name__}")
        return float(cast(float, value))
    raise TypeError(f"{where}: a message field cannot be a {hint!r}")  # a bug in this module
