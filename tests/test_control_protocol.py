"""The control protocol's errors: every class of mlgitfs/errors.py crosses the socket's
framing and comes back as itself, with its message, exit code and plain fields (classes
with their own __init__ and CorruptObject included), and the protocol loads without pyfuse3."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from mlgitfs import errors
from mlgitfs.daemon import protocol
from mlgitfs.errors import DaemonError, MlgitError


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
        protocol.raise_reply(reply)
    back = got.value
    assert type(back) is type(exc)
    assert (back.message, str(back), back.exit_code) == (exc.message, str(exc), exc.exit_code)
    assert _plain(back) == _plain(exc)


def test_an_unknown_error_name_is_a_daemon_error() -> None:
    with pytest.raises(DaemonError, match="from a newer daemon"):
        protocol.raise_reply(
            {"ok": False, "error": "NoSuchError", "message": "from a newer daemon"}
        )


def test_the_protocol_loads_without_pyfuse3() -> None:
    code = (
        "import sys; import mlgitfs.daemon.protocol; "
        "assert not [m for m in sys.modules if m.startswith(('pyfuse3', 'trio', 'mlgitfs.vfs'))]; "
        "import mlgitfs.api; assert 'pyfuse3' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
