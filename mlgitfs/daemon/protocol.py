"""The control protocol of a writable mount: message framing and the blocking client.

A Unix socket per mount (its path in the mount's registry record). One request per
connection: a frame is a 4-byte big-endian length and a msgpack value (model/codec.py).
Request: `{"op": str, "args": {...}, "view": "REPO@BRANCH"}`, the args a request type of
daemon/messages.py encoded there; `view` names which of the daemon's views it is for (the
daemon keys its views by ref; "" or absent: its only one). Reply: `{"ok": true, "value":
{...}}` (the op's reply type) or
`{"ok": false, "error": "<MlgitError class name>", "message": str, "fields": {...}}`; the
client rebuilds that class from the registry of every class in mlgitfs/errors.py (its own
`__init__` is not called: the message and the fields, its plain attributes such as
`object_id` or `errno`, are set as they were), so the CLI shows the daemon's message with
the right exit code. An unknown name arrives as DaemonError; a frame that is not one of
these shapes is a ProtocolError. Importable without pyfuse3: the api calls `call` with a
request and gets its typed reply; the daemon's trio server is daemon/control.py, its
handlers daemon/handlers.py.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from mlgitfs import errors
from mlgitfs.daemon import messages
from mlgitfs.daemon.messages import R, Request
from mlgitfs.errors import CorruptObject, DaemonError, MlgitError, ProtocolError
from mlgitfs.model import codec

_LEN = struct.Struct(">I")
MAX_FRAME = 64 << 20


def frame(value: dict[str, Any]) -> bytes:
    data = codec.pack(value)
    return _LEN.pack(len(data)) + data


def frame_length(header: bytes) -> int:
    (n,) = _LEN.unpack(header)
    if n > MAX_FRAME:
        raise ProtocolError(f"control message of {n} bytes is too large")
    return int(n)


def decode(data: bytes) -> dict[str, Any]:
    """One frame's map (its envelope: op and args, or ok and value or error)."""
    try:
        value = codec.unpack(data, "control message")
    except CorruptObject as exc:
        raise ProtocolError(f"malformed control message: {exc.message}") from exc
    if not isinstance(value, dict):
        raise ProtocolError(f"a control message is a map, not {type(value).__name__}")
    return value


def request_frame(request: Request[Any], view: str = "") -> bytes:
    return frame({"op": messages.op_name(request), "args": messages.encode(request), "view": view})


def parse_request(envelope: dict[str, Any]) -> tuple[str, Request[Any]]:
    """The view a decoded frame is for ("": the daemon's only one) and its typed request;
    ProtocolError if it carries none."""
    view = envelope.get("view", "")
    if not isinstance(view, str):
        raise ProtocolError(f"a control request's view is a ref, not {type(view).__name__}")
    return view, messages.decode_request(envelope.get("op"), envelope.get("args", {}))


def ok_reply(request: Request[Any], reply: messages.Reply) -> dict[str, Any]:
    messages.check_reply(request, reply)
    return {"ok": True, "value": messages.encode(reply)}


_PLAIN = (str, int, float, bool, bytes, type(None))


def _registry() -> dict[str, type[MlgitError]]:
    out: dict[str, type[MlgitError]] = {}
    todo: list[type[MlgitError]] = [MlgitError]
    while todo:
        cls = todo.pop()
        if cls.__module__ == errors.__name__:
            out[cls.__name__] = cls
        todo.extend(cls.__subclasses__())
    return out


ERRORS = _registry()  # every error class, by name: what a reply may name


def error_reply(exc: MlgitError) -> dict[str, Any]:
    fields = {
        k: v
        for k, v in vars(exc).items()
        if k != "message" and not k.startswith("_") and isinstance(v, _PLAIN)
    }
    return {"ok": False, "error": type(exc).__name__, "message": exc.message, "fields": fields}


def rebuild_error(reply: dict[str, Any]) -> MlgitError:
    """The error a reply carries, as its own class (DaemonError for an unknown name)."""
    name = str(reply.get("error", "DaemonError"))
    message = str(reply.get("message", "the mount's daemon refused the request"))
    cls = ERRORS.get(name)
    if cls is None:
        return DaemonError(message)
    # Not cls(message): classes with their own __init__ take other arguments.
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.message = message
    fields = reply.get("fields")
    if isinstance(fields, dict):
        for key, value in fields.items():
            if isinstance(key, str) and key != "message" and isinstance(value, _PLAIN):
                setattr(exc, key, value)
    return exc


def raise_reply(request: Request[R], reply: dict[str, Any]) -> R:
    """The typed reply to `request` a decoded frame carries, or the error it carries raised
    as its MlgitError class."""
    ok = reply.get("ok")
    if ok is True:
        return messages.decode_reply(request, reply.get("value"))
    if ok is not False:
        raise ProtocolError("a control reply says neither ok nor an error")
    raise rebuild_error(reply)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise DaemonError("the mount's daemon closed the control connection")
        buf += part
    return bytes(buf)


def call(path: str, request: Request[R], view: str = "", timeout: float | None = 3600.0) -> R:
    """One request to the daemon listening at `path`, for its view of ref `view` ("": its only
    one); its typed reply or its error raised."""
    op = messages.op_name(request)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(path)
        except OSError as exc:
            raise DaemonError(
                f"cannot reach the mount's daemon at {path}: {exc.strerror or exc}"
            ) from exc
        try:
            sock.sendall(request_frame(request, view))
            n = frame_length(_recv_exact(sock, _LEN.size))
            reply = decode(_recv_exact(sock, n))
        except TimeoutError as exc:
            raise DaemonError(f"the mount's daemon did not answer {op!r} in time") from exc
        except OSError as exc:
            raise DaemonError(f"control connection failed: {exc.strerror or exc}") from exc
    finally:
        sock.close()
    return raise_reply(request, reply)
