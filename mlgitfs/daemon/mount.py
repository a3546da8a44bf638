"""Mount lifecycle, the caller's side: check a mountpoint, start the daemon, unmount.

`mount()` runs the daemon (`python -m mlgitfs.daemon`, see serve.py) and returns once the mount
answers; `unmount()` detaches a live, busy or dead mount. pyfuse3 is not imported here: the
serving happens in the daemon process.

Ordering (readiness and signals):

1. The caller checks /dev/fuse, the fsname and the mountpoint, then runs the daemon, always as a
   fresh process. That process forks *before* anything opens the store (LMDB must not cross a
   fork); the child builds the view from an importable factory (`module:function`, called with
   a JSON argument), so the store is only ever opened in the process that serves it.
2. The child installs its signal receivers, starts the FUSE main loop, then stats the
   mountpoint from a worker thread. Only when that answers does it raise the read-ahead,
   write its registry record and write `OK <pid>` to the readiness pipe. The waiting parent
   then prints the pid and exits 0; on `ERR <message>`, EOF or timeout it prints the message and
   exits non-zero (killing a child that did not answer and detaching its mount), and `mount()`
   raises `MountError` with that message.
3. SIGTERM, SIGINT, SIGHUP to the daemon: the main loop ends, `pyfuse3.close` unmounts (lazily
   as root, so processes with open files are not stuck), the view is closed and the record
   removed. SIGUSR1 logs the request counts per handler (a debug probe).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlgitfs.daemon import registry
from mlgitfs.errors import MountError

log = logging.getLogger(__name__)

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
    recordable: bool = False  # keep opens from the start (daemon/recorder.py)
    # A mount of several versions: each writable branch's directory → REPO@BRANCH (its record)
    checkouts: dict[str, str] = field(default_factory=dict)

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
        if self.recordable:
            out.append("--recordable")
        if self.checkouts:
            out += ["--checkouts", json.dumps(self.checkouts)]
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
    existing = registry.mount_at(path)
    if existing is not None:
        if registry.is_dead(path):
            raise MountError(
                f"{path} is a dead mount (its daemon is gone): run `mlgitfs unmount {path}` first"
            )
        raise MountError(f"{path} is already a mount point ({existing.source}, {existing.fstype})")
    try:
        os.stat(path)
    except FileNotFoundError:
        raise MountError(f"mountpoint {path} does not exist") from None
    except OSError as exc:
        raise MountError(f"cannot use mountpoint {path}: {exc.strerror}") from None
    if not os.path.isdir(path):
        raise MountError(f"mountpoint {path} is not a directory")
    if os.path.ismount(path):
        raise MountError(f"{path} is already a mount point")
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
    recordable: bool = False,
    checkouts: dict[str, str] | None = None,
) -> MountResult | None:
    """Mount the view built by `view_factory(view_arg)` at mountpoint.

    `view_factory` is "module:function"; the daemon imports it and calls function(view_arg)
    (view_arg must be JSON-serialisable) after its fork, so the store is opened there. In the
    background (default), returns once the mount answers, with the daemon's pid; the daemon
    logs to `log_file` (default `<run_dir>/daemon.log`). With `foreground=True`, the daemon
    stays attached, logs to stderr, and this returns None once it is unmounted. `checkouts`:
    the writable branches of a mount of several versions, for its record.
    """
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
        recordable=recordable,
        run_dir=os.fspath(run_dir) if run_dir is not None else None,
        revspec=revspec,
        commit=commit,
        log_file=os.fspath(log_file) if log_file is not None else None,
        debug=debug,
        checkouts=dict(checkouts or {}),
    )
    if foreground:
        _run_attached(config)
        return None
    return _spawn(config, timeout)


def _daemon_env() -> dict[str, str]:
    env = dict(os.environ)
    # The daemon is a fresh interpreter: make sure it imports this very mlgitfs.
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


def _run_attached(config: DaemonConfig) -> None:
    """--foreground: the daemon stays attached (stderr inherited) until it is unmounted."""
    cmd = [sys.executable, "-m", "mlgitfs.daemon", *config.argv(), "--foreground"]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, env=_daemon_env(), cwd="/")
    while True:
        try:
            status = proc.wait()
            break
        except KeyboardInterrupt:
            # Ctrl-C reached the daemon too (same process group): let it unmount, then return.
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
    if status:
        raise MountError(f"the mount of {config.mountpoint} ended with an error (status {status})")


def _spawn(config: DaemonConfig, timeout: float) -> MountResult:
    cmd = [sys.executable, "-m", "mlgitfs.daemon", *config.argv(), "--timeout", str(timeout)]
    env = _daemon_env()
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
    err = proc.stderr.decode(errors="replace").strip().removeprefix("mlgitfs: ")
    if proc.returncode != 0 or not out.isdigit():
        raise MountError(err or f"the mount daemon exited with status {proc.returncode}")
    return MountResult(config.mountpoint, config.fsname, int(out), config.log_file)


# -- unmount ---------------------------------------------------------------------------------


def detach(path: str, lazy: bool) -> tuple[bool, str]:
    """fusermount3 -u [-z], or umount [-l] as root: (done, error message)."""
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
    dead = registry.is_dead(path)
    ok, message = detach(path, lazy=lazy or dead)
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
