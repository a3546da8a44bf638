"""The control protocol: every request and reply type crosses the socket's framing and comes
back equal; a malformed message is a ProtocolError naming the problem; every op has a handler;
every class of mlgitfs/errors.py comes back as itself, with its message, exit code and plain
fields (classes with their own __init__ and CorruptObject included); the protocol loads
without pyfuse3."""

from __future__ import annotations

import dataclasses
import inspect
import re
import subprocess
import sys
import typing
from typing import Any

import pytest

from mlgitfs import errors
from mlgitfs.daemon import handlers, messages, protocol
from mlgitfs.errors import DaemonError, MlgitError, ProtocolError
from mlgitfs.model import codec

PING = messages.PingRequest()


def _sample(cls: type[MlgitError]) -> MlgitError:
    """An instance made through the class's own __init__, with distinct argument values."""
    args: list[object] = []
    for i, p in enumerate(list(inspect.signature(cls.__init__).parameters.values())[1:]):
        if p.default is not inspect.Parameter.empty or p.kind is p.VAR_POSITIONAL:
            continue
        args.append(5 + i if "int" in str(p.annotation) else f"{p.name}-{i}")
    return cls(*args)


def _plain(exc: BaseException) -> dict[str, object]:
    return {k: v for k, v in vars(exc).items() if isinstance(v, str | int | bytes)}


def test_the_registry_holds_every_error_class() -> None:
    defined = {
        name
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, MlgitError)
    }
    assert set(protocol.ERRORS) == defined
    assert {"CorruptObject", "MissingObject", "FsError", "MergeConflict"} <= defined


@pytest.mark.parametrize("name", sorted(protocol.ERRORS))
def test_every_error_round_trips(name: str) -> None:
    exc = _sample(protocol.ERRORS[name])
    wire = protocol.frame(protocol.error_reply(exc))
    reply = protocol.decode(wire[4:])
    with pytest.raises(MlgitError) as got:
        protocol.raise_reply(PING, reply)
    back = got.value
    assert type(back) is type(exc)
    assert (back.message, str(back), back.exit_code) == (exc.message, str(exc), exc.exit_code)
    assert _plain(back) == _plain(exc)


def test_an_unknown_error_name_is_a_daemon_error() -> None:
    with pytest.raises(DaemonError, match="from a newer daemon"):
        protocol.raise_reply(
            PING, {"ok": False, "error": "NoSuchError", "message": "from a newer daemon"}
        )


def test_the_protocol_loads_without_pyfuse3() -> None:
    code = (
        "import sys; import mlgitfs.daemon.protocol; "
        "assert not [m for m in sys.modules if m.startswith(('pyfuse3', 'trio', 'mlgitfs.vfs'))]; "
        "import mlgitfs.api; assert 'pyfuse3' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _value(hint: Any, seed: int) -> Any:
    """A value of a message field's type, distinct per seed; None-able fields get a value."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is not None and type(None) in args:
        return _value(next(a for a in args if a is not type(None)), seed)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], seed + i) for i in range(2))
        return tuple(_value(a, seed + i) for i, a in enumerate(args))
    if dataclasses.is_dataclass(hint):
        return _sample_message(typing.cast(type, hint), seed)
    return {str: f"s{seed}", bytes: bytes([seed % 256]) * 20, bool: seed % 2 == 1,
            int: seed * 1_000_003, float: seed + 0.5}[hint]  # fmt: skip


def _sample_message(cls: type, seed: int = 1) -> Any:
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _value(hints[f.name], seed + i)
                  for i, f in enumerate(dataclasses.fields(cls))})  # fmt: skip


def _wire(value: dict[str, Any]) -> dict[str, Any]:
    return protocol.decode(protocol.frame(value)[4:])


@pytest.mark.parametrize("op", sorted(messages.REQUESTS))
def test_every_request_and_reply_round_trips(op: str) -> None:
    request = _sample_message(messages.REQUESTS[op])
    wire = protocol.decode(protocol.request_frame(request, "ds@main")[4:])
    assert protocol.parse_request(wire) == ("ds@main", request)
    assert messages.op_name(request) == op
    reply = _sample_message(messages.REPLIES[type(request)])
    assert protocol.raise_reply(request, _wire(protocol.ok_reply(request, reply))) == reply


def test_every_op_has_a_handler() -> None:
    served = set(handlers.HANDLERS) | set(handlers.RECORDER_HANDLERS)
    assert served == set(messages.REQUESTS.values())
    assert not set(handlers.HANDLERS) & set(handlers.RECORDER_HANDLERS)


@pytest.mark.parametrize(
    ("envelope", "problem"),
    [
        ({"op": "nosuchop", "args": {}}, "unknown control op 'nosuchop'"),
        ({"args": {}}, "unknown control op None"),
        ({"op": "commit", "args": []}, "commit: expected a map, got list"),
        ({"op": "commit", "args": {}}, "commit: missing field message"),
        ({"op": "commit", "args": {"message": 5}}, "commit.message: expected str, got int"),
        ({"op": "commit", "args": {"message": "m", "dry_run": 1}}, "dry_run: expected bool"),
        ({"op": "commit", "args": {"message": "m", "force": True}}, "unknown field force"),
        ({"op": "commit", "args": {"message": "m", "meta": [["k"]]}}, "expected 2 items, got 1"),
        ({"op": "commit", "args": {"message": "m", "inputs": [["ds", "ab"]]}}, "inputs[0][1]"),
        ({"op": "unlock", "args": {"paths": "a/b"}}, "unlock.paths: expected a list"),
        ({"op": "ping", "args": {}, "view": 5}, "view is a ref, not int"),
    ],
)
def test_a_malformed_request_is_a_protocol_error(envelope: dict[str, Any], problem: str) -> None:
    with pytest.raises(ProtocolError) as got:
        protocol.parse_request(_wire(envelope))[1]
    assert problem in got.value.message
    assert got.value.exit_code == 16


def test_a_malformed_reply_is_a_protocol_error() -> None:
    status = messages.StatusRequest()
    good = messages.encode(_sample_message(messages.StatusReply))
    for value, problem in [
        ({**good, "changes": [["added", "a", "file", ""]]}, "changes[0]: expected a map"),
        ({**good, "base": None}, "reply to status.base: expected bytes, got NoneType"),
        ({k: v for k, v in good.items() if k != "repo"}, "missing field repo"),
        ("ok", "expected a map, got str"),
    ]:
        with pytest.raises(ProtocolError, match=re.escape(problem)):
            protocol.raise_reply(status, {"ok": True, "value": value})
    with pytest.raises(ProtocolError, match="neither ok nor an error"):
        protocol.raise_reply(status, {"value": good})
    # A handler answering with another op's reply type is caught before it is sent.
    with pytest.raises(ProtocolError, match="status answered with PingReply, not StatusReply"):
        protocol.ok_reply(status, messages.PingReply("ds", "main"))


@pytest.mark.parametrize(
    ("data", "problem"),
    [(b"\xc1", "malformed control message"), (codec.pack([1, 2]), "a map, not list")],
)
def test_a_frame_that_is_not_a_map_is_a_protocol_error(data: bytes, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        protocol.decode(data)
    with pytest.raises(ProtocolError, match="too large"):
        protocol.frame_length((protocol.MAX_FRAME + 1).to_bytes(4, "big"))
