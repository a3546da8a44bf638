"""The control server without a kernel: one daemon's server keyed by ref answers each view's
requests over a real Unix socket, refuses a ref it does not serve, and a malformed request
gets a ProtocolError reply (the server keeps answering)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from mlgitfs import api
from mlgitfs.daemon import messages, protocol
from mlgitfs.daemon.control import serve_control
from mlgitfs.errors import MountError, ProtocolError
from mlgitfs.model.ids import to_hex
from mlgitfs.vfs.checkout_view import CheckoutView
from mlgitfs.vfs.factory import open_checkout_view
from mlgitfs.vfs.types import ROOT_INODE
from tests.conftest import write_tree


async def _no_invalidation(entries: list[tuple[int, bytes]], inodes: list[int]) -> None:
    raise AssertionError("status and ping change nothing the kernel holds")


def _raw(path: str, envelope: dict[str, object]) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(protocol.frame(envelope))
        n = protocol.frame_length(sock.recv(4, socket.MSG_WAITALL))
        return protocol.decode(sock.recv(n, socket.MSG_WAITALL))


async def test_one_server_serves_several_views_by_ref(home: Path, tmp_path: Path) -> None:
    api.init(home, "ds", "dataset", "mutable")
    api.import_dir(home, "ds@main", write_tree(tmp_path / "src", {"a.txt": b"a\n"}), "first")
    api.branch_create(home, "ds@exp")
    store = api.open_store(home)
    views: dict[str, CheckoutView] = {
        ref: open_checkout_view(store, "ds", ref.partition("@")[2], 1 << 20)
        for ref in ("ds@main", "ds@exp")
    }
    path = str(tmp_path / "c.sock")
    try:
        fh, _ = await views["ds@exp"].create(ROOT_INODE, b"new.txt", 0o644, 0)
        views["ds@exp"].release(fh)
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_control, path, views, _no_invalidation)

            def client() -> None:
                main = protocol.call(path, messages.StatusRequest(), "ds@main")
                exp = protocol.call(path, messages.StatusRequest(), "ds@exp")
                assert (main.branch, main.changes) == ("main", ())
                assert exp.branch == "exp"
                assert [(c.change, c.path) for c in exp.changes] == [("added", "new.txt")]
                assert to_hex(main.base) == api.show(home, "ds@main").id
                with pytest.raises(MountError, match=r"no view of ds@nope \(it serves ds@exp"):
                    protocol.call(path, messages.PingRequest(), "ds@nope")
                with pytest.raises(MountError, match="several views: name one"):
                    protocol.call(path, messages.PingRequest())
                bad = _raw(path, {"op": "ping", "args": {"loud": True}, "view": "ds@main"})
                with pytest.raises(ProtocolError, match="ping: unknown field loud"):
                    protocol.raise_reply(messages.PingRequest(), bad)
                ping = protocol.call(path, messages.PingRequest(), "ds@main")
                assert (ping.repo, ping.branch) == ("ds", "main")

            await trio.to_thread.run_sync(client)
            nursery.cancel_scope.cancel()
    finally:
        for v in views.values():
            v.close()
    assert not Path(path).exists()
    assert api.fsck(home).clean
