"""Encoders validate what decoders validate: every value a user can set through an import
(names, sizes, modes, times at the edges of the range) either is refused with a clear error
or reads back from the committed version exactly (times: clamped to the format's range,
objects.clamp_time_ns, as the kernel clamps times to what a file system holds).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgitfs import api
from mlgitfs.errors import MlgitError, UsageError
from mlgitfs.model.ids import InodeNo
from mlgitfs.model.objects import DIR_MODE_MASK, MAX_TEXT, MAX_TIME_NS, MIN_TIME_NS, clamp_time_ns
from mlgitfs.vfs import checkout_ops
from mlgitfs.vfs.factory import open_checkout_view

# Times this file system holds: ext4 and tmpfs go far past 2262 (2**63 ns), not before 1901.
EDGES = [
    -(2**31) * 10**9,
    -1,
    0,
    1,
    MAX_TIME_NS - 1,
    MAX_TIME_NS,
    MAX_TIME_NS + 1,
    2**63 + 10**9 * 86400,  # 2262-04-12, as `touch -m -d 2262-04-12` on tmpfs sets
    2**64,
]
SIZES = [0, 1, 63, 64, 65, 128 << 10, (2 << 20) - 1, 2 << 20, (2 << 20) + 1, 3_000_000]
names = st.binary(min_size=1, max_size=255).filter(
    lambda b: b not in (b".", b"..") and b"/" not in b and b"\0" not in b
)


@st.composite
def trees(draw: st.DrawFn) -> dict[bytes, tuple[str, int, int, bytes]]:
    """name → (kind, mode, mtime, content or symlink target)."""
    out = {}
    for name in draw(st.lists(names, min_size=1, max_size=6, unique=True)):
        kind = draw(st.sampled_from(["file", "file", "link", "dir"]))
        mtime = draw(st.sampled_from(EDGES) | st.integers(-(2**31) * 10**9, 2**64 - 1))
        mode = draw(st.integers(0, 0o7777))
        if kind == "file":
            size = draw(st.sampled_from(SIZES) | st.integers(0, 5000))
            body = draw(st.binary(min_size=min(size, 64), max_size=min(size, 64)))
            content = (body * (size // max(len(body), 1) + 1))[:size] if body else bytes(size)
        elif kind == "link":
            content = draw(st.binary(min_size=1, max_size=300).filter(lambda b: b"\0" not in b))
        else:
            content = b""
        out[name] = (kind, mode, mtime, content)
    return out


def _write(root: Path, spec: dict[bytes, tuple[str, int, int, bytes]]) -> None:
    base = os.fsencode(root)
    for name, (kind, mode, _, content) in spec.items():
        p = os.path.join(base, name)
        if kind == "file":
            with open(p, "wb") as f:
                f.write(content)
            os.chmod(p, mode | 0o600)  # readable by the import
        elif kind == "link":
            os.symlink(content, p)
        else:
            os.mkdir(p, 0o700)
            os.chmod(p, (mode | 0o700) & 0o7777)
    for name, (_, _, mtime, _) in spec.items():
        os.utime(os.path.join(base, name), ns=(mtime, mtime), follow_symlinks=False)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(trees())
def test_import_reads_back_or_refuses(
    tmp_path_factory: pytest.TempPathFactory, spec: dict[bytes, tuple[str, int, int, bytes]]
) -> None:
    tmp = tmp_path_factory.mktemp("rt")
    src, home = tmp / "src", tmp / "store"
    src.mkdir()
    try:
        _write(src, spec)
        api.init(home, "ds", "dataset", "flexible")
        try:
            api.import_dir(home, "ds", src, "v1")
        except MlgitError as exc:  # a clear refusal is allowed; nothing committed then
            assert str(exc)
            with pytest.raises(MlgitError):
                list(api.ls(home, "ds"))
            return
        got = {e.path.encode("utf-8", "surrogateescape"): e for e in api.ls(home, "ds")}
        assert set(got) == set(spec)
        for name, (kind, mode, _, content) in spec.items():
            e = got[name]
            st_ = os.lstat(os.path.join(os.fsencode(src), name))
            assert e.mtime_ns == clamp_time_ns(st_.st_mtime_ns)
            if kind == "file":
                assert (e.kind, e.size, e.mode) == ("file", len(content), (mode | 0o600) & 0o777)
            elif kind == "link":
                assert (e.kind, e.id.encode("utf-8", "surrogateescape")) == ("symlink", content)
            else:
                assert (e.kind, e.mode) == ("dir", stat.S_IMODE(mode | 0o700) & DIR_MODE_MASK)
        out = tmp / "out"
        api.export(home, "ds", out)
        for name, (kind, _, _, content) in spec.items():
            p = os.path.join(os.fsencode(out), name)
            st_ = os.lstat(p)
            assert st_.st_mtime_ns == got[name].mtime_ns
            if kind == "file":
                with open(p, "rb") as f:
                    assert f.read() == content
        assert api.fsck(home).clean
    finally:
        api.close_store(home)
        shutil.rmtree(tmp, ignore_errors=True)


def test_time_past_2262_is_clamped_at_import(tmp_path: Path) -> None:
    """`touch -m -d 2262-04-12 f` then import: committed with the last time the format
    holds, and every reader agrees (it was "corrupt object" before)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    os.utime(src / "f", ns=(0, 2**63 + 86400 * 10**9))
    home = tmp_path / "store"
    api.init(home, "ds", "dataset", "flexible")
    api.import_dir(home, "ds", src, "v1")
    (e,) = api.ls(home, "ds")
    assert e.mtime_ns == MAX_TIME_NS
    api.import_dir(home, "ds", src, "v2", allow_empty=True)  # the stat cache holds it too
    assert api.fsck(home).clean
    api.close_store(home)


def test_commit_message_the_format_cannot_hold_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    home = tmp_path / "store"
    api.init(home, "ds", "dataset", "flexible")
    with pytest.raises(UsageError, match="longer than"):
        api.import_dir(home, "ds", src, "m" * (MAX_TEXT + 1))
    with pytest.raises(MlgitError):  # nothing was committed
        list(api.ls(home, "ds"))
    api.import_dir(home, "ds", src, "fits")
    assert api.fsck(home).clean
    api.close_store(home)


async def test_writable_mount_clamps_times_at_the_system_call(home: Path, tmp_path: Path) -> None:
    """utimensat with a time the format cannot hold (touch -d 2262-04-12 in a mount): the
    view keeps the clamped time, as the kernel clamps to what an inode holds, and the
    commit writes what every reader accepts."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    (src / "g").write_bytes(b"y")
    api.init(home, "ds", "dataset", "mutable")
    api.import_dir(home, "ds", src, "v1")
    v = open_checkout_view(api.open_store(home), "ds", "main", 1 << 20)
    try:
        root = v.resolve([])
        assert root is not None
        f, g = (v.resolve([n]) for n in (b"f", b"g"))
        assert f is not None and g is not None
        for node in (f, g):  # a content change, so the commit records the file
            fh = await v.open(InodeNo(node.ino), os.O_WRONLY)
            await v.write(fh, 0, b"z")
            v.release(fh)
        attr = await v.setattr(f.ino, mtime_ns=2**63 + 86400 * 10**9)
        assert attr.mtime_ns == MAX_TIME_NS
        attr = await v.setattr(g.ino, mtime_ns=-(2**63))
        assert attr.mtime_ns == MIN_TIME_NS
        await checkout_ops.commit_checkout(v, "times")
    finally:
        v.close()
    times = {e.path: e.mtime_ns for e in api.ls(home, "ds")}
    assert times == {"f": MAX_TIME_NS, "g": MIN_TIME_NS}
    assert api.fsck(home).clean
