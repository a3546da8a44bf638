"""The daemon process: builds the view, mounts it with pyfuse3 under trio, serves until unmounted.

`daemon_main` is the entry point (`python -m mlgitfs.daemon MOUNTPOINT --fsname mlgitfs:REPO@REF
--view-factory module:function --view-arg JSON [...]`). Without `--foreground` it forks at once,
before the view factory runs (nothing, LMDB above all, is open yet), and the parent waits on a
readiness pipe: it exits 0 printing the daemon's pid once the mount answers, or prints the
child's error and exits non-zero. The order of readiness and signals is in mount.py's docstring.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import importlib
import json
import logging
import os
import select
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import pyfuse3
import trio

from mlgitfs import memory
from mlgitfs.daemon import registry
from mlgitfs.daemon.control import serve_control
from mlgitfs.daemon.fuse_ops import FuseOps
from mlgitfs.daemon.fuse_write import WritableFuseOps
from mlgitfs.daemon.mount import (
    DEFAULT_TIMEOUT,
    DaemonConfig,
    check_fsname,
    check_fuse,
    check_mountpoint,
    detach,
)
from mlgitfs.daemon.recorder import Recorder
from mlgitfs.errors import MlgitError, MountError
from mlgitfs.model.ids import InodeNo
from mlgitfs.store.segfile import Buffer
from mlgitfs.vfs.inodes import InodeSpace
from mlgitfs.vfs.prefill import Prefill
from mlgitfs.vfs.types import FsView, ViewContext

log = logging.getLogger(__name__)

READ_AHEAD_KB = 4096
# After each request the FUSE fd is polled this long before trio sleeps on it: a loader's
# next request (each buffered open() sends an isatty ioctl the kernel never caches) then
# skips a sleep and a wake-up on both sides. 77-84 -> 41-46 µs per cached file opened;
# 20 µs was too short to catch the next request, 100 µs no better than 50.
SPIN_NS = 50_000


def load_factory(spec: str) -> Callable[[Any, ViewContext], FsView]:
    module_name, sep, func_name = spec.partition(":")
    if not sep or not module_name or not func_name:
        raise MountError(f"bad view factory {spec!r}: expected module:function")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise MountError(f"cannot load view factory {spec}: {exc}") from exc
    if not callable(func):
        raise MountError(f"view factory {spec} is not callable")
    factory: Callable[[Any, ViewContext], FsView] = func
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
    """The readiness pipe to the waiting parent: says MOUNTED or ERR once, then closes."""

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


async def _announce(config: DaemonConfig, ready: _Ready, initialized: trio.Event) -> None:
    """Mounted: raise read-ahead, write the record, tell the waiting parent.

    Waits for the kernel's INIT to be answered: the INIT reply resets the read-ahead. Never
    touches the mount itself: a thread of the daemon waiting on its own mount cannot be killed
    (the kernel waits for an answer only this process can give), so the parent is the one
    that checks that the mount answers."""
    # The INIT reply is written synchronously right after ops.init() returns, and the kernel
    # applies it within that write: once this task runs again, the reply is in.
    await initialized.wait()
    kernel = registry.mount_at(config.mountpoint)
    if kernel is not None and kernel.dev:
        major, _, minor = kernel.dev.partition(":")
        raise_read_ahead(os.makedev(int(major), int(minor)))
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
            checkouts=dict(config.checkouts),
        )
        try:
            registry.write_record(run_dir, record)
        except OSError as exc:
            log.warning("could not write the mount record in %s: %s", run_dir, exc)
    log.info("mounted %s at %s (pid %d)", config.fsname, config.mountpoint, os.getpid())
    ready.send(f"MOUNTED {os.getpid()}")


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


async def _serve_async(
    ops: FuseOps, config: DaemonConfig, ready: _Ready, initialized: trio.Event,
    context: ViewContext,
) -> None:  # fmt: skip
    async with trio.open_nursery() as nursery:
        # Signals first: a SIGTERM right after readiness must already unmount cleanly.
        await nursery.start(_signals, ops)
        nursery.start_soon(_announce, config, ready, initialized, name="announce-mounted")
        # Views with background work (read-ahead) run it in this nursery.
        ops.view.attach(nursery)
        if config.run_dir:
            # The control socket answers before the record naming it is written.
            # The checkouts the views entered when made (none on a read-only mount).
            path = str(registry.control_socket_path(Path(config.run_dir), os.getpid()))
            views = context.checkouts
            await nursery.start(serve_control, path, views, ops.invalidate, ops.recorder)
        set_spin = getattr(pyfuse3, "set_spin", None)  # our pyfuse3 build (packaging/pyfuse3)
        if set_spin is not None:
            set_spin(SPIN_NS)
        await pyfuse3.main()
        nursery.cancel_scope.cancel()


def _store_pages(ino: int, data: bytes | memoryview) -> None:
    """A whole file's bytes into the kernel's page cache (FUSE_NOTIFY_STORE); thread-safe."""
    # pyfuse3 takes any contiguous buffer (PyObject_GetBuffer); its stub says bytes
    pyfuse3.notify_store(ino, 0, cast(bytes, data))


def _prefill(counts: collections.Counter[str], recorder: Recorder) -> Prefill:
    def prefill(ino: InodeNo, data: Buffer) -> None:
        _store_pages(ino, data)
        if recorder.active:
            # Pages handed over ahead are read without a read request: a recorded open of
            # the file counts them (daemon/recorder.py).
            recorder.prefilled(ino, len(data))
        counts["prefilled"] += 1  # files prefilled, logged with the request counts

    return prefill


def _close_view(view: FsView) -> None:
    try:
        view.close()
    except Exception:
        log.warning("closing the view failed", exc_info=True)


def serve(config: DaemonConfig, ready_fd: int | None = None) -> int:
    """Build the view, mount it and serve until unmounted; the exit status (0 = clean)."""
    ready = _Ready(ready_fd)
    memory.keep_freed_memory()  # before any thread starts
    view: FsView | None = None
    try:
        counts: collections.Counter[str] = collections.Counter()
        recorder = Recorder()
        recorder.keep_opens = config.recordable
        # Only a read-only view prefills: a version never changes, so a page is never stale.
        prefill = _prefill(counts, recorder) if config.read_only else None
        # One inode space for every view this daemon serves (vfs/inodes.py).
        context = ViewContext(prefill=prefill, inodes=InodeSpace())
        view = load_factory(config.view_factory)(config.view_arg, context)
        initialized = trio.Event()
        writable = view.writable()
        if config.read_only:
            ops = FuseOps(
                view, read_only=True, on_init=initialized.set, counts=counts, recorder=recorder
            )
        elif writable is not None:
            ops = WritableFuseOps(
                writable, on_init=initialized.set, counts=counts, recorder=recorder
            )
        else:
            raise MountError(f"the view of {config.fsname} is read-only: mount it read-only")
        _init_fuse(ops, config)
    except Exception as exc:
        if isinstance(exc, MlgitError):
            message = exc.message
            log.error("%s", message)
        else:
            message = f"could not open the view for {config.fsname}: {exc!r}"
            log.error("%s", message, exc_info=True)
        ready.send(f"ERR {message}")
        if view is not None:
            _close_view(view)
        return 1
    status = 0
    try:
        trio.run(_serve_async, ops, config, ready, initialized, context)
    except BaseException:
        log.critical("the FUSE main loop failed", exc_info=True)
        status = 1
    finally:
        ready.send("ERR the daemon stopped before the mount answered")
        with contextlib.suppress(Exception):
            pyfuse3.close(unmount=True)
        _close_view(view)
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
    p.add_argument("--writable", action="store_true", help="serve a writable view (a branch)")
    p.add_argument(
        "--recordable", action="store_true", help="keep opens: read sets can be recorded later"
    )
    p.add_argument(
        "--checkouts", default="{}", help="JSON: each writable branch's directory -> REPO@BRANCH"
    )
    p.add_argument("--foreground", action="store_true", help="stay attached, log to stderr")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT)
    a = p.parse_args(argv)
    try:
        view_arg = json.loads(a.view_arg)
        checkouts = {str(k): str(v) for k, v in dict(json.loads(a.checkouts)).items()}
    except (ValueError, TypeError) as exc:
        raise MountError(f"--view-arg or --checkouts is not the JSON expected: {exc}") from None
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
        recordable=a.recordable,
        checkouts=checkouts,
    )
    return config, a.foreground, a.timeout


def open_log(path: str) -> int:
    """The daemon's log, appended to: 0600 in a 0700 directory (a log line may name files of
    its owner; it never holds their contents, see fuse_ops._describe)."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)  # made by an older version, or by makedirs under a umask
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def _reap(child: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(child, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
            time.sleep(0.01)


def _give_up(child: int, mountpoint: str, message: str) -> tuple[bool, str]:
    """The daemon did not make a mount that answers: kill it, detach whatever it mounted."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(child, signal.SIGKILL)
    _reap(child, 5.0)
    if registry.mount_at(mountpoint) is not None:
        detach(mountpoint, lazy=True)
    return False, message


def _read_line(r: int, deadline: float) -> str | None:
    """Everything the child writes before closing the pipe; None on timeout."""
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        readable, _, _ = select.select([r], [], [], left)
        if readable:
            chunk = os.read(r, 4096)
            if not chunk:
                return buf.decode(errors="replace").strip()
            buf += chunk


def _probe(mountpoint: str, timeout: float) -> str | None:
    """Stat the new mount from a thread: None when it answers, else what went wrong."""
    outcome: list[str | None] = []

    def stat() -> None:
        try:
            os.stat(mountpoint)
            outcome.append(None)
        except OSError as exc:
            outcome.append(f"the mount at {mountpoint} does not answer: {exc.strerror}")

    # A daemon thread: if the mount hangs, this process may still exit.
    thread = threading.Thread(target=stat, name="probe-mount", daemon=True)
    thread.start()
    thread.join(max(timeout, 0.0))
    if not outcome:
        return f"the mount at {mountpoint} did not answer within the timeout"
    return outcome[0]


def _wait_ready(r: int, child: int, timeout: float, mountpoint: str) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    line = _read_line(r, deadline)
    if line is None:
        return _give_up(
            child, mountpoint, f"the mount at {mountpoint} was not made in {timeout:g}s"
        )
    if line.startswith("ERR "):
        return False, line[4:]
    if not line.startswith("MOUNTED "):
        return False, f"the mount daemon for {mountpoint} exited before the mount answered"
    pid = line.removeprefix("MOUNTED ")
    problem = _probe(mountpoint, deadline - time.monotonic())
    if problem is not None:
        problem = problem.replace("the timeout", f"{timeout:g}s")
        return _give_up(child, mountpoint, f"{problem} (daemon pid {pid} stopped)")
    return True, pid


def daemon_main(argv: Sequence[str] | None = None) -> int:
    """`python -m mlgitfs.daemon MOUNTPOINT --fsname ... --view-factory mod:func [...]`."""
    try:
        config, foreground, timeout = _parse(argv)
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
                sink = open_log(config.log_file)
            else:
                sink = os.open(os.devnull, os.O_WRONLY)
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
