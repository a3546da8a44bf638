"""The FUSE daemon: the adapter without a kernel, then real mounts read with real programs.

Real mounts need /dev/fuse and root (CI); they are skipped with the reason otherwise. Every
mount is made through the daemon's entry point in the background, as a user would, and is
torn down (daemon killed by pid, mount detached) even when the test fails.
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pyfuse3
import pytest

from mlgitfs.daemon import registry
from mlgitfs.daemon.fuse_ops import NO_OPEN, FuseOps
from mlgitfs.daemon.mount import mount, unmount
from mlgitfs.errors import MountError
from mlgitfs.vfs.types import ROOT_INODE
from tests.fusehelpers import Daemon, daemon_cmd, daemon_env, make_source_tree, run, start_daemon
from tests.memview import File, MemView, Symlink
from testsupport.mounts import fuse_skip_reason, kill_and_detach, wait_until

# -- the adapter, no kernel -------------------------------------------------------------------


def _ops(**view_kwargs: object) -> tuple[FuseOps, MemView]:
    view = MemView.from_dict(
        {
            "f.txt": b"hello",
            "suid": File(b"x", mode=stat.S_ISUID | stat.S_ISGID | 0o777),
            "d": {"g": b"g" * 1000},
            "l": Symlink(b"f.txt"),
            "boom": b"b" * 10,
            "eio": b"e" * 10,
        },
        fail_runtime=["boom"],
        fail_eio=["eio"],
        **view_kwargs,  # type: ignore[arg-type]
    )
    return FuseOps(view, uid=1234, gid=5678), view


async def test_lookup_attributes_and_negative_cache() -> None:
    ops, _ = _ops()
    e = await ops.lookup(ROOT_INODE, b"suid", None)  # type: ignore[arg-type]
    assert e.st_ino > 1
    assert stat.S_IMODE(e.st_mode) == 0o555  # no write, setuid or setgid bits
    assert (e.st_uid, e.st_gid) == (1234, 5678)
    assert e.entry_timeout >= 3600 and e.attr_timeout >= 3600
    f = await ops.lookup(ROOT_INODE, b"d", None)  # type: ignore[arg-type]
    g = await ops.lookup(f.st_ino, b"g", None)  # type: ignore[arg-type]
    assert g.st_blocks == 2 and g.st_size == 1000
    again = await ops.getattr(g.st_ino, None)  # type: ignore[arg-type]
    assert again.st_ino == g.st_ino
    missing = await ops.lookup(ROOT_INODE, b"nope", None)  # type: ignore[arg-type]
    assert missing.st_ino == 0 and missing.entry_timeout >= 3600
    link = await ops.lookup(ROOT_INODE, b"l", None)  # type: ignore[arg-type]
    assert await ops.readlink(link.st_ino, None) == b"f.txt"  # type: ignore[arg-type]
    with pytest.raises(pyfuse3.FUSEError) as err:
        await ops.getattr(999, None)  # type: ignore[arg-type]
    assert err.value.errno == errno.ENOENT


async def test_every_handler_survives_any_exception(caplog: pytest.LogCaptureFixture) -> None:
    ops, _ = _ops()
    boom = await ops.lookup(ROOT_INODE, b"boom", None)  # type: ignore[arg-type]
    eio = await ops.lookup(ROOT_INODE, b"eio", None)  # type: ignore[arg-type]
    good = await ops.lookup(ROOT_INODE, b"f.txt", None)  # type: ignore[arg-type]
    for ino in (boom.st_ino, eio.st_ino):
        with pytest.raises(pyfuse3.FUSEError) as err:
            await ops.read(ino, 0, 10)
        assert err.value.errno == errno.EIO
    assert "injected failure on boom" in caplog.text  # the traceback is logged
    assert await ops.read(good.st_ino, 0, 100) == b"hello"
    assert ops.counts["read"] == 3


async def test_mutating_handlers_answer_erofs() -> None:
    ops, _ = _ops()
    calls = [
        ops.setattr(1, pyfuse3.EntryAttributes(), pyfuse3.SetattrFields(), None, None),
        ops.mknod(1, b"n", 0o644, 0, None),
        ops.mkdir(1, b"n", 0o755, None),
        ops.unlink(1, b"f.txt", None),
        ops.rmdir(1, b"d", None),
        ops.symlink(1, b"n", b"t", None),
        ops.rename(1, b"f.txt", 1, b"n", 0, None),
        ops.link(2, 1, b"n", None),
        ops.create(1, b"n", 0o644, os.O_WRONLY, None),
        ops.write(2, 0, b"x"),
        ops.setxattr(2, b"user.x", b"1", None),
        ops.removexattr(2, b"user.x", None),
        ops.open(2, os.O_RDWR, None),
        ops.open(2, os.O_RDONLY | os.O_TRUNC, None),
    ]
    for call in calls:
        with pytest.raises(pyfuse3.FUSEError) as err:
            await call  # type: ignore[misc]
        assert err.value.errno == errno.EROFS
    if NO_OPEN:
        # With the patched pyfuse3 the kernel is told once to stop sending open and release.
        with pytest.raises(pyfuse3.FUSEError) as err:
            await ops.open(2, os.O_RDONLY, None)  # type: ignore[arg-type]
        assert err.value.errno == errno.ENOSYS
    else:
        fi = await ops.open(2, os.O_RDONLY, None)  # type: ignore[arg-type]
        assert fi.fh == 2 and fi.keep_cache
    with pytest.raises(pyfuse3.FUSEError) as err:
        await ops.flush(2)
    assert err.value.errno == errno.ENOSYS  # the kernel stops sending flush
    for xattr_call in (ops.getxattr(2, b"user.x", None), ops.listxattr(2, None)):
        with pytest.raises(pyfuse3.FUSEError) as err:
            await xattr_call  # type: ignore[misc]
        assert err.value.errno == errno.ENOSYS  # no xattrs: the kernel answers EOPNOTSUPP
    st = await ops.statfs(None)  # type: ignore[arg-type]
    assert st.f_namemax == 255 and st.f_blocks > 0


def test_registry_parses_escaped_mountinfo(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "42 27 0:39 / /tmp/a\\040b ro,nosuid - fuse.mlgitfs mlgitfs:r@v1 ro,user_id=0\n"
        "43 27 0:40 / /data rw shared:1 - ext4 /dev/sda1 rw\n"
    )
    mounts = registry.kernel_mounts(str(info))
    assert mounts[0] == registry.KernelMount("/tmp/a b", "fuse.mlgitfs", "mlgitfs:r@v1", "0:39")
    assert registry.is_mlgitfs(mounts[0]) and not registry.is_mlgitfs(mounts[1])


# -- real mounts ------------------------------------------------------------------------------

_skip = fuse_skip_reason()
fuse = pytest.mark.skipif(_skip is not None, reason=_skip or "")


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and p.parent.name != "bad"
    }


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("src") / "tree"
    make_source_tree(root)
    return root


def _start(tmp: Path, source: Path, **extra: object) -> Daemon:
    mnt = tmp / "mnt"
    mnt.mkdir(exist_ok=True)
    arg = {
        "source": str(source),
        "fail_eio": ["bad/eio.bin"],
        "fail_runtime": ["bad/runtime.bin"],
        **extra,
    }
    return start_daemon(mnt, arg, tmp / "run")


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, source: Path) -> Iterator[Daemon]:
    """One mount for the read-only tests that do not kill or unmount it."""
    if _skip:
        pytest.skip(_skip)
    tmp = tmp_path_factory.mktemp("shared")
    daemon = _start(tmp, source)
    try:
        yield daemon
    finally:
        daemon.cleanup()


@pytest.fixture
def own(tmp_path: Path, source: Path) -> Iterator[Daemon]:
    """A mount of its own, for tests that kill the daemon or unmount."""
    if _skip:
        pytest.skip(_skip)
    daemon = _start(tmp_path, source)
    try:
        yield daemon
    finally:
        daemon.cleanup()
        # A remount inside the test has its own pid: detach whatever is left there.
        for record in registry.list_mounts(tmp_path / "run"):
            kill_and_detach(record.pid, Path(record.mountpoint))


@fuse
def test_sha256_of_every_file_matches(shared: Daemon, source: Path) -> None:
    expected = {k: hashlib.sha256(v).hexdigest() for k, v in _files(source).items()}
    names = sorted(expected)
    out = run(["sha256sum", "--", *names], cwd=shared.mountpoint).stdout.decode()
    got = {line[66:]: line[:64] for line in out.splitlines()}
    assert got == expected
    assert run(["cat", "a/b/c/deep.txt"], cwd=shared.mountpoint).stdout == b"deep\n"
    for name, data in _files(source).items():  # Python open, read in odd-sized pieces
        with open(shared.mountpoint / name, "rb", buffering=0) as f:
            parts = []
            while chunk := f.read(70_001):
                parts.append(chunk)
        assert b"".join(parts) == data, name


@fuse
def test_find_du_ls_tar_agree_with_source(shared: Daemon, source: Path) -> None:
    def find(root: Path) -> list[tuple[str, ...]]:
        out = run(["find", ".", "-printf", r"%y\t%s\t%P\t%l\n"], cwd=root).stdout.decode()
        rows = [tuple(ln.split("\t")) for ln in out.splitlines()]
        # Directory sizes are the view's business; everything else must agree.
        return sorted((y, s if y != "d" else "", p, t) for y, s, p, t in rows)

    assert find(shared.mountpoint) == find(source)

    def du_files(root: Path) -> dict[str, str]:
        out = run(["du", "-ab", "."], cwd=root).stdout.decode().splitlines()
        rows = (ln.split("\t", 1) for ln in out)
        return {path: size for size, path in rows if os.path.isfile(root / path)}

    assert du_files(shared.mountpoint) == du_files(source)
    total = int(run(["du", "-sk", "."], cwd=shared.mountpoint).stdout.split()[0])
    assert total * 1024 >= sum(len(v) for v in _files(source).values())

    ls = run(["ls", "-lRn", "--time-style=+%s", "."], cwd=shared.mountpoint).stdout.decode()
    assert "many:" in ls and "w" not in "".join(ln[:10] for ln in ls.splitlines() if ln[:1] == "-")

    def members(root: Path) -> dict[str, tuple[str, int, str, bytes]]:
        data = run(["tar", "cf", "-", "--exclude=./bad", "."], cwd=root).stdout
        out = {}
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar:
                body = tar.extractfile(m).read() if m.isfile() else b""  # type: ignore[union-attr]
                size = m.size if not m.isdir() else 0
                out[m.name] = (str(m.type), size, m.linkname, body)
        return out

    assert members(shared.mountpoint) == members(source)


@fuse
def test_attributes_modes_inodes_statfs(shared: Daemon, source: Path) -> None:
    mnt = shared.mountpoint
    for path in [mnt, mnt / "run.sh", mnt / "suid", mnt / "a", mnt / "sizes" / "f4096.bin"]:
        st = os.lstat(path)
        assert st.st_mode & (stat.S_ISUID | stat.S_ISGID | 0o222) == 0, path
        assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert stat.S_IMODE(os.stat(mnt / "run.sh").st_mode) == 0o555
    assert stat.S_IMODE(os.stat(mnt / "suid").st_mode) == 0o555
    big = os.stat(mnt / "sizes" / "f1048576.bin")
    assert big.st_size == 1 << 20 and big.st_blocks == 2048
    assert os.readlink(mnt / "link-to-dir") == "a/b"
    assert (mnt / "link-to-dir" / "c" / "deep.txt").read_text() == "deep\n"
    inos = run(["find", ".", "-printf", r"%i %P\n"], cwd=mnt).stdout
    assert run(["find", ".", "-printf", r"%i %P\n"], cwd=mnt).stdout == inos
    vfs = os.statvfs(mnt)
    assert vfs.f_namemax == 255 and vfs.f_blocks > 0 and vfs.f_bsize == 4096
    assert vfs.f_flag & os.ST_RDONLY
    kernel = registry.mount_at(mnt)
    assert kernel is not None
    assert (kernel.source, kernel.fstype) == ("mlgitfs:test@v1", "fuse.mlgitfs")
    with pytest.raises(FileNotFoundError):
        os.stat(mnt / "does-not-exist")
    for xattr_call in (lambda: os.getxattr(mnt / "run.sh", "user.x"), lambda: os.listxattr(mnt)):
        with pytest.raises(OSError) as err:
            xattr_call()
        assert err.value.errno == errno.EOPNOTSUPP
    dev = os.stat(mnt).st_dev
    ra = Path(f"/sys/class/bdi/{os.major(dev)}:{os.minor(dev)}/read_ahead_kb")
    if ra.exists():
        assert ra.read_text().strip() == "4096"


@fuse
def test_four_parallel_readers_get_identical_bytes(shared: Daemon, source: Path) -> None:
    expected = run(["sha256sum", "--", *sorted(_files(source))], cwd=source).stdout
    names = sorted(_files(source))
    procs = [
        subprocess.Popen(["sha256sum", "--", *names], cwd=shared.mountpoint, stdout=subprocess.PIPE)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs == [expected] * 4
    results: list[bytes] = []

    def reader() -> None:
        results.append((shared.mountpoint / "sizes" / "f3145745.bin").read_bytes())

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [(source / "sizes" / "f3145745.bin").read_bytes()] * 4


@fuse
def test_every_mutating_syscall_gets_erofs(shared: Daemon) -> None:
    mnt = shared.mountpoint
    f, d = mnt / "a" / "top.txt", mnt / "empty"
    attempts = {
        "open for write": lambda: open(f, "r+b"),  # noqa: SIM115
        "create": lambda: open(mnt / "new.txt", "xb"),  # noqa: SIM115
        "open O_TRUNC": lambda: os.open(f, os.O_WRONLY | os.O_TRUNC),
        "truncate": lambda: os.truncate(f, 0),
        "unlink": lambda: os.unlink(f),
        "rename": lambda: os.rename(f, mnt / "a" / "moved.txt"),
        "mkdir": lambda: os.mkdir(mnt / "newdir"),
        "rmdir": lambda: os.rmdir(d),
        "symlink": lambda: os.symlink("a/top.txt", mnt / "newlink"),
        "link": lambda: os.link(f, mnt / "hard"),
        "chmod": lambda: os.chmod(f, 0o777),
        "chown": lambda: os.chown(f, 1, 1),
        "utime": lambda: os.utime(f, (0, 0)),
        "setxattr": lambda: os.setxattr(f, "user.test", b"1"),
        "mknod": lambda: os.mkfifo(mnt / "fifo"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(OSError) as err:
            attempt()
        assert err.value.errno == errno.EROFS, what
    assert (mnt / "a" / "top.txt").read_text() == "top\n" * 100


@fuse
def test_a_failing_read_gives_eio_and_the_daemon_keeps_serving(shared: Daemon) -> None:
    mnt = shared.mountpoint
    for name in ("bad/runtime.bin", "bad/eio.bin", "bad/runtime.bin"):
        with pytest.raises(OSError) as err:
            (mnt / name).read_bytes()
        assert err.value.errno == errno.EIO
    assert (mnt / "bad" / "good.bin").read_bytes() == b"g" * 5000
    assert run(["cat", "a/top.txt"], cwd=mnt).stdout == b"top\n" * 100
    assert shared.alive()
    log = shared.log()
    assert "injected failure on bad/runtime.bin" in log and "Traceback" in log


@fuse
def test_second_read_of_small_files_sends_no_read(own: Daemon) -> None:
    """The probe: what the kernel still asks for when the same small files are read again."""
    names = sorted(os.listdir(own.mountpoint / "small"))
    base = own.counts()
    run(["cat", *names], cwd=own.mountpoint / "small")
    first = own.counts()
    run(["cat", *names], cwd=own.mountpoint / "small")
    second = own.counts()
    delta1 = {k: first.get(k, 0) - base.get(k, 0) for k in first}
    delta2 = {k: second.get(k, 0) - first.get(k, 0) for k in second}
    print(f"\nfirst pass over {len(names)} files: {delta1}\nsecond pass: {delta2}")
    assert delta1.get("read", 0) >= len(names)
    for handler in ("read", "lookup", "getattr", "flush", "readdir"):
        assert delta2.get(handler, 0) == 0, (handler, delta2)
    # Stock pyfuse3 cannot serve reads after an ENOSYS open (no inode in read): one open and
    # one release per file remain. The patched build sends no open after the first one.
    assert delta2.get("open", 0) == (0 if NO_OPEN else len(names))
    run(["ls", "-lR", "."], cwd=own.mountpoint)
    run(["ls", "-lR", "."], cwd=own.mountpoint)
    third = own.counts()
    delta3 = {k: third.get(k, 0) - second.get(k, 0) for k in third}
    print(f"two ls -lR: {delta3}")
    assert delta3.get("getxattr", 0) <= 1 and delta3.get("lookup", 0) == 0, delta3


@fuse
def test_killed_daemon_gives_enotconn_then_unmount_and_remount(own: Daemon, source: Path) -> None:
    mnt = own.mountpoint
    assert (mnt / "a" / "top.txt").exists()
    os.kill(own.pid, signal.SIGKILL)
    assert wait_until(lambda: not own.alive())
    # In a subprocess with a timeout: a hang must fail the test, not stall the suite.
    proc = subprocess.run(["ls", str(mnt)], capture_output=True, text=True, timeout=10)
    assert proc.returncode != 0
    assert "not connected" in proc.stderr or "connection abort" in proc.stderr, proc.stderr
    with pytest.raises(OSError) as err:
        os.statvfs(mnt)
    assert err.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    assert registry.list_mounts(own.run_dir) == []  # the stale record is dropped
    with pytest.raises(MountError, match="dead mount"):
        mount("tests.memview:make_view", mnt, "mlgitfs:test@v1", view_arg={"tree": {}})
    unmount(mnt, run_dir=own.run_dir)
    assert registry.mount_at(mnt) is None
    again = _start(own.mountpoint.parent, source)
    try:
        assert (mnt / "a" / "top.txt").read_text() == "top\n" * 100
        assert [r.pid for r in registry.list_mounts(own.run_dir)] == [again.pid]
    finally:
        again.cleanup()


@fuse
def test_unmount_while_a_file_is_open(own: Daemon) -> None:
    mnt = own.mountpoint
    with open(mnt / "sizes" / "f131073.bin", "rb") as f:
        head = f.read(10)
        with pytest.raises(MountError, match="busy"):
            unmount(mnt, run_dir=own.run_dir)
        assert registry.mount_at(mnt) is not None and own.alive()
        unmount(mnt, lazy=True, run_dir=own.run_dir)
        assert registry.mount_at(mnt) is None  # detached at once
        assert len(head) + len(f.read()) == 131073  # the open file still reads
        assert own.alive()
    assert wait_until(lambda: not own.alive()), "the daemon exits once the last file closes"


@fuse
def test_mount_api_registry_and_sigterm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", daemon_env()["PYTHONPATH"])
    mnt, run_dir = tmp_path / "m", tmp_path / "run"
    mnt.mkdir()
    tree = {"x.txt": "x", "d": {"y": "yy"}, "l": {"symlink": "x.txt"}}
    result = mount(
        "tests.memview:make_view",
        mnt,
        "mlgitfs:data@v2",
        view_arg={"tree": tree},
        run_dir=run_dir,
        revspec="data@v2",
        commit="cd" * 32,
    )
    assert result is not None
    try:
        assert (mnt / "d" / "y").read_text() == "yy" and os.readlink(mnt / "l") == "x.txt"
        [record] = registry.list_mounts(run_dir)
        assert (record.pid, record.mountpoint, record.revspec, record.commit) == (
            result.pid,
            str(mnt),
            "data@v2",
            "cd" * 32,
        )
        assert record.control_socket.endswith(f"{result.pid}.sock")
        with pytest.raises(MountError, match="already a mount point"):
            mount("tests.memview:make_view", mnt, "mlgitfs:data@v2", view_arg={"tree": tree})
        os.kill(result.pid, signal.SIGTERM)
        assert wait_until(lambda: registry.mount_at(mnt) is None)
        assert wait_until(lambda: not registry.pid_alive(result.pid))
        assert registry.list_mounts(run_dir) == []
        assert not list(run_dir.glob("*.json"))
    finally:
        kill_and_detach(result.pid, mnt)


@fuse
def test_mount_errors_are_clear(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cases = {
        "does not exist": tmp_path / "missing",
        "not a directory": tmp_path / "file",
        "not empty": tmp_path / "full",
    }
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for message, mnt in cases.items():
        proc = daemon_cmd(mnt, {"tree": {}}, run_dir)
        assert proc.returncode == MountError.exit_code and message in proc.stderr, proc.stderr
        with pytest.raises(MountError, match=message):
            mount("tests.memview:make_view", mnt, "mlgitfs:test@v1", view_arg={"tree": {}})
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = daemon_cmd(empty, {"source": str(tmp_path / "nothing-here")}, run_dir)
    assert proc.returncode != 0 and "could not open the view" in proc.stderr, proc.stderr
    assert registry.mount_at(empty) is None
    with pytest.raises(MountError, match="bad fsname"):
        mount("tests.memview:make_view", empty, "test@v1")
    with pytest.raises(MountError, match="not mounted"):
        unmount(empty)


@fuse
def test_foreground_stays_attached_and_logs_to_stderr(tmp_path: Path) -> None:
    mnt = tmp_path / "fg"
    mnt.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "mlgitfs.daemon",
        str(mnt),
        "--fsname",
        "mlgitfs:fg@v1",
        "--view-factory",
        "tests.memview:make_view",
        "--view-arg",
        json.dumps({"tree": {"hello.txt": "hi"}}),
        "--foreground",
    ]
    proc = subprocess.Popen(cmd, env=daemon_env(), stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: registry.mount_at(mnt) is not None, timeout=20)
        assert (mnt / "hello.txt").read_text() == "hi"
        assert proc.poll() is None  # still attached
        unmount(mnt)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0
        assert "mounted mlgitfs:fg@v1" in err and "unmounted" in err
    finally:
        kill_and_detach(proc.pid, mnt)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@fuse
def test_a_mount_that_does_not_answer_times_out_cleanly(tmp_path: Path) -> None:
    mnt = tmp_path / "wedged"
    mnt.mkdir()
    arg = {"tree": {"x": "x"}, "stall_getattr": 30}
    proc = daemon_cmd(mnt, arg, tmp_path / "run", timeout=1.0)
    assert proc.returncode == MountError.exit_code
    assert "did not answer within 1s" in proc.stderr, proc.stderr
    pid = re.search(r"pid (\d+) stopped", proc.stderr)
    assert pid is not None and not registry.pid_alive(int(pid.group(1)))
    assert wait_until(lambda: registry.mount_at(mnt) is None, timeout=10)
    assert registry.list_mounts(tmp_path / "run") == []
