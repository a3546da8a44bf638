"""Mount lifecycle: check a mountpoint, start a daemon serving a view over FUSE, and unmount.

`mount()` returns once the mount answers; `python -m mlgitfs.daemon ...` (`daemon_main`) is the
daemon's entry point; `unmount()` detaches a live, busy or dead mount.

Ordering (readiness and signals):

1. The caller checks /dev/fuse and the mountpoint, then runs `python -m mlgitfs.daemon`. That
   process forks *before* anything opens the store (LMDB must not cross a fork); the child
   builds the view from an importable factory (`module:function`, called with a JSON argument),
   so the store is only ever opened in the process that serves it.
2. The child installs its signal receivers, starts the FUSE main loop, then stats the
   mountpoint from a worker thread. Only when that answers does it raise the read-ahead,
   write its registry record and write `OK <pid>` to the readiness pipe. The waiting parent
   then prints the pid and exits 0; on `ERR <message>`, EOF or timeout it prints the message and
   exits non-zero (killing a child that did not answer and detaching its mount), and `mount()`
   raises `MountError` with that message.
3. SIGTERM, SIGINT, SIGHUP: the main loop ends, `pyfuse3.close` unmounts (lazily as root, so
   processes with open files are not stuck), the view is closed and the record removed.
   SIGUSR1 logs the request counts per handler (a debug probe).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyfuse3
import trio

from mlgitfs.daemon import registry
from mlgitfs.daemon.fuse_ops import FuseOps
from mlgitfs.errors import MlgitError, MountError
from mlgitfs.vfs.types import FsView

log = logging.getLogger(__name__)

READ_AHEAD_KB = 4096
DEFAULT_TIMEOUT = 30.0
_FORBIDDEN_IN_FSNAME = set(",\\ \t\n")


@dataclass(frozen=True, slots=True)
class MountResult:
    mountpoint: str
    fsname: str
    pid: int
    log_file: str | None


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """Everything the daemon needs; crosses the process boundary as argv."""

    mountpoint: str
    fsname: str
    view_factory: str  # "module:function", called in the daemon as function(view_arg)
    view_arg: Any = None  # JSON-serialisable
    read_only: bool = True
    allow_other: bool = False
    run_dir: str | None = None
    revspec: str = ""
    commit: str = ""
    log_file: str | None = None
    debug: bool = False

    def argv(self) -> list[str]:
        out = [self.mountpoint, "--fsname", self.fsname, "--view-factory", self.view_factory]
        out += ["--view-arg", json.dumps(self.view_arg)]
        out += ["--revspec", self.revspec, "--commit", self.commit]
        if self.run_dir:
            out += ["--run-dir", self.run_dir]
        if self.log_file:
            out += ["--log-file", self.log_file]
        if self.allow_other:
            out.append("--allow-other")
        if not self.read_only:
            out.append("--writable")
        if self.debug:
            out.append("--debug")
        return out


# -- checks ----------------------------------------------------------------------------------


def check_fuse() -> None:
    if not os.path.exists("/dev/fuse"):
        raise MountError(
            "/dev/fuse is missing: FUSE is not available here "
            "(load the fuse module, or give the container --device /dev/fuse)"
        )


def check_mountpoint(mountpoint: str | os.PathLike[str]) -> str:
    """The absolute mountpoint, or MountError saying why it cannot be mounted on."""
    path = os.path.abspath(mountpoint)
    try:
        os.stat(path)
    except FileNotFoundError:
        raise MountError(f"mountpoint {path} does not exist") from None
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:
            raise MountError(
                f"{path} is a dead mount (its daemon is gone): run `mlgitfs unmount {path}` first"
            ) from None
        raise MountError(f"cannot use mountpoint {path}: {exc.strerror}") from None
    if not os.path.isdir(path):
        raise MountError(f"mountpoint {path} is not a directory")
    existing = registry.mount_at(path)
    if existing is not None or os.path.ismount(path):
        what = f" ({existing.source}, {existing.fstype})" if existing else ""
        raise MountError(f"{path} is already a mount point{what}")
    try:
        entries = os.listdir(path)
    except OSError as exc:
        raise MountError(f"cannot list mountpoint {path}: {exc.strerror}") from None
    if entries:
        raise MountError(f"mountpoint {path} is not empty")
    return path


def check_fsname(fsname: str) -> None:
    if not fsname.startswith(registry.FSNAME_PREFIX) or _FORBIDDEN_IN_FSNAME & set(fsname):
        raise MountError(f"bad fsname {fsname!r}: expected mlgitfs:REPO@REF without , \\ or spaces")


# -- the caller's side -----------------------------------------------------------------------


def mount(
    view_factory: str,
    mountpoint: str | os.PathLike[str],
    fsname: str,
    *,
    view_arg: Any = None,
    read_only: bool = True,
    foreground: bool = False,
    allow_other: bool = False,
    run_dir: str | os.PathLike[str] | None = None,
    revspec: str = "",
    commit: str = "",
    log_file: str | os.PathLike[str] | None = None,
    debug: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> MountResult | None:
    """Mount the view built by `view_factory(view_arg)` at mountpoint.

    In the background (default), returns once the mount answers, with the daemon's pid; the
    daemon logs to `log_file` (default `<run_dir>/daemon.log`). With `foreground=True`, serves
    in this process until unmounted and returns None: the factory then runs here, so the
    caller must not hold the store open itself (one LMDB open per process).
    """
    if not read_only:
        raise MountError("writable mounts are not supported yet")
    check_fuse()
    check_fsname(fsname)
    path = check_mountpoint(mountpoint)
    if log_file is None and run_dir is not None and not foreground:
        log_file = Path(run_dir) / "daemon.log"
    config = DaemonConfig(
        mountpoint=path,
        fsname=fsname,
        view_factory=view_factory,
        view_arg=view_arg,
        read_only=read_only,
        allow_other=allow_other,
        run_dir=os.fspath(run_dir) if run_dir is not None else None,
        revspec=revspec,
        commit=commit,
        log_file=os.fspath(log_file) if log_file is not None else None,
        debug=debug,
    )
    if foreground:
        status = serve(config)
        if status:
            raise MountError(f"the mount of {path} ended with an error (status {status})")
        return None
    return _spawn(config, timeout)


def _spawn(config: DaemonConfig, timeout: float) -> MountResult:
    env = dict(os.environ)
    # The daemon is a fresh interpreter: make sure it imports this very mlgitfs.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "mlgitfs.daemon", *config.argv(), "--timeout", str(timeout)]
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=env,
            cwd="/",
            timeout=timeout + 15,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise MountError(f"the daemon for {config.mountpoint} did not start in time") from None
    out = proc.stdout.decode(errors="replace").strip()
    err = proc.stderr.decode(errors="replace").strip()
    if proc.returncode != 0 or not out.isdigit():
        raise MountError(err or f"the mount daemon exited with status {proc.returncode}")
    return MountResult(config.mountpoint, config.fsname, int(out), config.log_file)


# -- unmount ---------------------------------------------------------------------------------


def _run_umount(path: str, lazy: bool) -> tuple[bool, str]:
    commands: list[list[str]] = []
    if shutil.which("fusermount3"):
        commands.append(["fusermount3", "-u", *(["-z"] if lazy else []), path])
    if os.geteuid() == 0:
        commands.append(["umount", *(["-l"] if lazy else []), path])
    message = "no fusermount3 found"
    for cmd in commands:
        proc = subprocess.run(cmd, capture_output=True, check=False, stdin=subprocess.DEVNULL)
        if proc.returncode == 0:
            return True, ""
        message = proc.stderr.decode(errors="replace").strip()
        if "busy" in message.lower():
            break
    return False, message


def unmount(
    mountpoint: str | os.PathLike[str],
    *,
    lazy: bool = False,
    run_dir: str | os.PathLike[str] | None = None,
    timeout: float = 10.0,
) -> None:
    """Unmount an mlgitfs mount, live or dead.

    A dead mount (its daemon was killed: ENOTCONN) is detached lazily, so the same mountpoint
    can be mounted again. A mount with files or directories still open under it is *busy*:
    by default that is a MountError naming the cause and the mount stays as it is; with
    `lazy=True` it is detached at once, open files keep reading, and the daemon exits when the
    last one is closed. Otherwise waits (up to timeout) for the daemon to exit when its pid is
    known from the registry in run_dir.
    """
    path = os.path.abspath(mountpoint)
    kernel = registry.mount_at(path)
    if kernel is None:
        raise MountError(f"{path} is not mounted")
    if not registry.is_mlgitfs(kernel):
        raise MountError(f"{path} is not an mlgitfs mount ({kernel.source}, {kernel.fstype})")
    record = registry.find_mount(Path(run_dir), path) if run_dir is not None else None
    dead = False
    try:
        os.stat(path)
    except OSError as exc:
        dead = exc.errno == errno.ENOTCONN
    ok, message = _run_umount(path, lazy=lazy or dead)
    if not ok:
        if "busy" in message.lower():
            raise MountError(
                f"{path} is busy: a process has a file, directory or working directory open "
                f"under it (see `fuser -vm {path}`); close it, or unmount lazily to detach now"
            )
        raise MountError(f"could not unmount {path}: {message}")
    deadline = time.monotonic() + timeout
    while registry.mount_at(path) is not None and time.monotonic() < deadline:
        time.sleep(0.02)
    if record is not None and not lazy:
        while registry.pid_alive(record.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    if run_dir is not None:
        registry.list_mounts(Path(run_dir))  # drops the record of a dead daemon


# -- the daemon's side -----------------------------------------------------------------------


def load_factory(spec: str) -> Callable[[Any], FsView]:
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise MountError(f"bad view factory {spec!r}: expected module:function")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise MountError(f"cannot load view factory {spec}: {exc}") from exc
    if not callable(func):
        raise MountError(f"view factory {spec} is not callable")
    factory: Callable[[Any], FsView] = func
    return factory


def raise_read_ahead(st_dev: int, kb: int = READ_AHEAD_KB) -> None:
    """As root, larger read-ahead means larger FUSE reads (design §8: 1.6x sequential)."""
    if os.geteuid() != 0:
        return
    path = f"/sys/class/bdi/{os.major(st_dev)}:{os.minor(st_dev)}/read_ahead_kb"
    try:
        with open(path, "w", encoding="ascii") as f:
            f.write(str(kb))
    except OSError as exc:
        log.debug("could not raise read-ahead at %s: %s", path, exc)


def _init_fuse(ops: FuseOps, config: DaemonConfig) -> None:
    options = {f"fsname={config.fsname}", "subtype=mlgitfs", "default_permissions"}
    if config.read_only:
        options.add("ro")
    if config.allow_other:
        options.add("allow_other")
    # libfuse explains a failed mount on fd 2 only: capture it for the error message.
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            pyfuse3.init(ops, config.mountpoint, options)
            failure: Exception | None = None
        except Exception as exc:
            failure = exc
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        said = tmp.read().decode(errors="replace").strip()
    if said:
        log.info("libfuse: %s", said)
    if failure is not None:
        raise MountError(f"could not mount {config.mountpoint}: {said or failure}")


class _Ready:
    """The readiness pipe: says OK or ERR once, then closes."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def send(self, line: str) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self.fd, line.encode(errors="replace") + b"\n")
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = None


async def _announce(ops: FuseOps, config: DaemonConfig, ready: _Ready) -> None:
    try:
        st = await trio.to_thread.run_sync(os.stat, config.mountpoint, abandon_on_cancel=True)
    except OSError as exc:
        ready.send(f"ERR the mount at {config.mountpoint} does not answer: {exc.strerror}")
        pyfuse3.terminate()
        return
    raise_read_ahead(st.st_dev)
    if config.run_dir:
        pid = os.getpid()
        run_dir = Path(config.run_dir)
        record = registry.MountRecord(
            mountpoint=config.mountpoint,
            fsname=config.fsname,
            revspec=config.revspec,
            commit=config.commit,
            pid=pid,
            control_socket=str(registry.control_socket_path(run_dir, pid)),
            read_only=config.read_only,
            log_file=config.log_file or "",
        )
        try:
            registry.write_record(run_dir, record)
        except OSError as exc:
            log.warning("could not write the mount record in %s: %s", run_dir, exc)
    log.info("mounted %s at %s (pid %d)", config.fsname, config.mountpoint, os.getpid())
    ready.send(f"OK {os.getpid()}")


async def _signals(ops: FuseOps, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    sigs = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)
    with trio.open_signal_receiver(*sigs) as receiver:
        task_status.started()
        async for signum in receiver:
            if signum == signal.SIGUSR1:
                log.info("request counts: %s", json.dumps(dict(ops.counts), sort_keys=True))
                continue
            log.info("received %s: unmounting", signal.Signals(signum).name)
            pyfuse3.terminate()
            return


async def _serve_async(ops: FuseOps, config: DaemonConfig, ready: _Ready) -> None:
    async with trio.open_nursery() as nursery:
        # Signals first: a SIGTERM right after readiness must already unmount cleanly.
        await nursery.start(_signals, ops)
        nursery.start_soon(_announce, ops, config, ready, name="announce-ready")
        await pyfuse3.main()
        nursery.cancel_scope.cancel()


def serve(config: DaemonConfig, ready_fd: int | None = None) -> int:
    """Build the view, mount it and serve until unmounted; the exit status (0 = clean)."""
    ready = _Ready(ready_fd)
    try:
        view = load_factory(config.view_factory)(config.view_arg)
        ops = FuseOps(view, read_only=config.read_only)
        _init_fuse(ops, config)
    except MlgitError as exc:
        log.error("%s", exc.message)
        ready.send(f"ERR {exc.message}")
        return 1
    except Exception as exc:
        log.error("could not open the view for %s", config.fsname, exc_info=True)
        ready.send(f"ERR could not open the view for {config.fsname}: {exc!r}")
        return 1
    status = 0
    try:
        trio.run(_serve_async, ops, config, ready)
    except BaseException:
        log.critical("the FUSE main loop failed", exc_info=True)
        status = 1
    finally:
        ready.send("ERR the daemon stopped before the mount answered")
        with contextlib.suppress(Exception):
            pyfuse3.close(unmount=True)
        close = getattr(view, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                log.warning("closing the view failed", exc_info=True)
        if config.run_dir:
            registry.remove_record(Path(config.run_dir), os.getpid())
        log.info("unmounted %s (pid %d)", config.mountpoint, os.getpid())
    return status


# -- entry point: python -m mlgitfs.daemon ---------------------------------------------------


def _parse(argv: Sequence[str] | None) -> tuple[DaemonConfig, bool, float]:
    p = argparse.ArgumentParser(prog="python -m mlgitfs.daemon", description=__doc__)
    p.add_argument("mountpoint")
    p.add_argument("--fsname", required=True, help="mlgitfs:REPO@REF")
    p.add_argument("--view-factory", required=True, help="module:function building the view")
    p.add_argument("--view-arg", default="null", help="JSON argument of the factory")
    p.add_argument("--revspec", default="")
    p.add_argument("--commit", default="")
    p.add_argument("--run-dir", help="the store's mounts/ directory (registry records)")
    p.add_argument("--log-file")
    p.add_argument("--allow-other", action="store_true")
    p.add_argument("--writable", action="store_true", help="not supported yet")
    p.add_argument("--foreground", action="store_true", help="stay attached, log to stderr")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    a = p.parse_args(argv)
    try:
        view_arg = json.loads(a.view_arg)
    except ValueError as exc:
        raise MountError(f"--view-arg is not JSON: {exc}") from None
    log_file = a.log_file
    if log_file is None and a.run_dir and not a.foreground:
        log_file = os.path.join(a.run_dir, "daemon.log")
    config = DaemonConfig(
        mountpoint=os.path.abspath(a.mountpoint),
        fsname=a.fsname,
        view_factory=a.view_factory,
        view_arg=view_arg,
        read_only=not a.writable,
        allow_other=a.allow_other,
        run_dir=os.path.abspath(a.run_dir) if a.run_dir else None,
        revspec=a.revspec,
        commit=a.commit,
        log_file=os.path.abspath(log_file) if log_file else None,
        debug=a.debug,
    )
    return config, a.foreground, a.timeout


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def _wait_ready(r: int, child: int, timeout: float, mountpoint: str) -> tuple[bool, str]:
    buf = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
            if registry.mount_at(mountpoint) is not None:
                _run_umount(mountpoint, lazy=True)
            return False, f"the mount at {mountpoint} did not answer within {timeout:g}s"
        readable, _, _ = select.select([r], [], [], left)
        if not readable:
            continue
        chunk = os.read(r, 4096)
        if not chunk:
            break
        buf += chunk
    line = buf.decode(errors="replace").strip()
    if line.startswith("OK "):
        return True, line[3:]
    if line.startswith("ERR "):
        return False, line[4:]
    return False, f"the mount daemon for {mountpoint} exited before the mount answered"


def daemon_main(argv: Sequence[str] | None = None) -> int:
    """`python -m mlgitfs.daemon MOUNTPOINT --fsname ... --view-factory mod:func [...]`."""
    try:
        config, foreground, timeout = _parse(argv)
        if not config.read_only:
            raise MountError("writable mounts are not supported yet")
        check_fuse()
        check_fsname(config.fsname)
        check_mountpoint(config.mountpoint)
    except MlgitError as exc:
        print(f"mlgitfs: {exc.message}", file=sys.stderr)
        return exc.exit_code
    if foreground:
        _setup_logging(config.debug)
        return serve(config)
    r, w = os.pipe()
    # Fork before the factory runs: nothing (LMDB above all) is open yet.
    child = os.fork()
    if child == 0:
        os.close(r)
        try:
            os.setsid()
            os.chdir("/")  # a daemon's cwd must not keep any mount busy
            if config.log_file:
                os.makedirs(os.path.dirname(config.log_file), exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
            sink = os.open(config.log_file or os.devnull, flags, 0o644)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(sink, 1)
            os.dup2(sink, 2)
            os.close(sink)
            os.close(null)
            _setup_logging(config.debug)
            status = serve(config, ready_fd=w)
        except BaseException as exc:
            _Ready(w).send(f"ERR the mount daemon failed to start: {exc!r}")
            status = 1
        os._exit(status)
    os.close(w)
    try:
        ok, message = _wait_ready(r, child, timeout, config.mountpoint)
    finally:
        os.close(r)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(child, os.WNOHANG)
    if ok:
        print(message)
        return 0
    print(f"mlgitfs: {message}", file=sys.stderr)
    return MountError.exit_code
