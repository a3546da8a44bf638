"""The control protocol of a writable mount: message framing and the blocking client.

A Unix socket per mount (its path in the mount's registry record). One request per
connection: a frame is a 4-byte big-endian length and a msgpack value (model/codec.py).
Request: `{"op": str, "args": {...}}`. Reply: `{"ok": true, "value": {...}}` or
`{"ok": false, "error": "<MlgitError class name>", "message": str, "fields": {...}}`; the
client rebuilds that class from the registry of every class in mlgitfs/errors.py (its own
`__init__` is not called: the message and the fields, its plain attributes such as
`object_id` or `errno`, are set as they were), so the CLI shows the daemon's message with
the right exit code. An unknown name arrives as DaemonError. Importable without pyfuse3:
the api calls `call`; the daemon's trio server is daemon/control.py; the verbs are
vfs/checkout_ops.py.
"""

from __future__ import annotations

import socket
import struct
from typing import Any

from mlgitfs import errors
from mlgitfs.errors import DaemonError, MlgitError
from mlgitfs.model import codec

_LEN = struct.Struct(">I")
MAX_FRAME = 64 << 20


def frame(value: dict[str, Any]) -> bytes:
    data = codec.pack(value)
    return _LEN.pack(len(data)) + data


def frame_length(header: bytes) -> int:
    (n,) = _LEN.unpack(header)
    if n > MAX_FRAME:
        raise DaemonError(f"control message of {n} bytes is too large")
    return int(n)


def decode(data: bytes) -> dict[str, Any]:
    value = codec.unpack(data, "control message")
    if not isinstance(value, dict):
        raise DaemonError("malformed control message")
    return value


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


def raise_reply(reply: dict[str, Any]) -> dict[str, Any]:
    """The reply's value, or the error it carries raised as its MlgitError class."""
    if reply.get("ok"):
        value = reply.get("value", {})
        return value if isinstance(value, dict) else {}
    raise rebuild_error(reply)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise DaemonError("the mount's daemon closed the control connection")
        buf += part
    return bytes(buf)


def call(
    path: str, op: str, args: dict[str, Any], timeout: float | None = 3600.0
) -> dict[str, Any]:
    """One request to the daemon listening at `path`; its reply value or its error raised."""
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
            sock.sendall(frame({"op": op, "args": args}))
            n = frame_length(_recv_exact(sock, _LEN.size))
            reply = decode(_recv_exact(sock, n))
        except TimeoutError as exc:
            raise DaemonError(f"the mount's daemon did not answer {op!r} in time") from exc
        except OSError as exc:
            raise DaemonError(f"control connection failed: {exc.strerror or exc}") from exc
    finally:
        sock.close()
    return raise_reply(reply)
