"""The control socket server of a mount (trio): one request per connection, to one of the
daemon's views, which it keys by ref (REPO@BRANCH), or to its read-set recorder (a
read-only mount serves only the recording ops).

Frames and errors are daemon/protocol.py's, requests and replies daemon/messages.py's, the
handlers daemon/handlers.py's (over the verbs of vfs/checkout_ops.py). Each
connection runs in its own task, so a long commit does not stop `status` from answering
(status waits for nothing; commit and restore take the view's exclusive lock). Any
exception is answered as an error and logged: a bad request never ends the daemon.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from mlgitfs import memory
from mlgitfs.daemon import handlers, protocol
from mlgitfs.daemon.recorder import Recorder
from mlgitfs.errors import DaemonError, MlgitError, MountError
from mlgitfs.vfs.types import Caller, CheckoutFsView

log = logging.getLogger(__name__)

Invalidate = Callable[[list[tuple[int, bytes]], list[int]], Awaitable[None]]


async def _recv_exact(stream: trio.SocketStream, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        part = await stream.receive_some(n - len(buf))
        if not part:
            raise DaemonError("the client closed the connection")
        buf += part
    return bytes(buf)


Views = Mapping[str, CheckoutFsView]  # the daemon's views, by ref (REPO@BRANCH)
_UCRED = struct.Struct("iII")  # struct ucred: pid_t pid, uid_t uid, gid_t gid


def pick_view(views: Views, ref: str) -> CheckoutFsView:
    """The view a request names ("": the daemon's only one); MountError if none."""
    if not ref and len(views) == 1:
        return next(iter(views.values()))
    view = views.get(ref)
    if view is None:
        served = ", ".join(sorted(views)) or "none"
        what = f"no view of {ref}" if ref else "several views: name one"
        raise MountError(f"this mount's daemon serves {what} (it serves {served})")
    return view


def peer(stream: trio.SocketStream) -> Caller | None:
    """Who is at the other end of the socket (SO_PEERCRED: the kernel's word, not the
    client's): the caller the view's policies judge; None where the kernel does not say."""
    try:
        raw = stream.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except (OSError, AttributeError):
        return None
    pid, uid, gid = _UCRED.unpack(raw)
    return Caller(uid, gid, pid)


async def _serve_one(
    stream: trio.SocketStream, views: Views, invalidate: Invalidate, recorder: Recorder
) -> None:
    async with stream:
        try:
            n = protocol.frame_length(await _recv_exact(stream, 4))
            request = protocol.decode(await _recv_exact(stream, n))
        except (MlgitError, trio.BrokenResourceError) as exc:
            log.warning("bad control request: %s", exc)
            return
        op = str(request.get("op", ""))
        reply: dict[str, Any]
        try:
            ref, typed = protocol.parse_request(request)
            out = await handlers.handle_recording(recorder, typed)
            if out is None:
                out = await handlers.handle(pick_view(views, ref), typed, peer(stream))
            reply = protocol.ok_reply(typed, out.reply)
            if out.entries or out.inodes:
                await invalidate(out.entries, out.inodes)
        except MlgitError as exc:
            log.info("control %s refused: %s", op, exc.message)
            reply = protocol.error_reply(exc)
        except Exception as exc:
            log.error("control %s failed", op, exc_info=True)
            reply = protocol.error_reply(DaemonError(f"{op} failed in the daemon: {exc!r}"))
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await stream.send_all(protocol.frame(reply))
        if op == "commit":
            # What the commit freed (encoded chunks, objects) goes back to the system: the
            # daemon's allocator otherwise keeps it for reuse (memory.py).
            memory.give_back()


async def serve_control(
    path: str,
    views: Views,
    invalidate: Invalidate,
    recorder: Recorder | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on the Unix socket `path` (mode 0600) until cancelled, for `views` (none on a
    read-only mount) and the daemon's read-set `recorder`."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
    await sock.bind(path)
    os.chmod(path, 0o600)
    sock.listen(16)
    listener = trio.SocketListener(sock)
    recorder = Recorder() if recorder is None else recorder
    task_status.started()
    try:
        async with trio.open_nursery() as nursery:
            while True:
                stream = await listener.accept()
                nursery.start_soon(
                    _serve_one, stream, views, invalidate, recorder, name="control-request"
                )
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
