"""The live mounts registry: one small JSON record per running daemon, and the kernel's mount table.

Each daemon writes `<run_dir>/<pid>.json` once its mount answers and removes it when it exits.
`list_mounts` trusts a record only while its pid is alive (not a zombie) *and* its mountpoint is
in the kernel's mount table with an `mlgitfs:` fsname; other records are stale (a killed daemon)
and are removed as they are found. The run dir is the store home's `mounts/` directory, passed
in by the caller. The control socket path is reserved in the record; the protocol comes later.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

FSNAME_PREFIX = "mlgitfs:"
FSTYPE = "fuse.mlgitfs"
RECORD_SUFFIX = ".json"


@dataclass(frozen=True, slots=True)
class MountRecord:
    """What a running daemon tells the rest of the system about itself."""

    mountpoint: str
    fsname: str
    revspec: str
    commit: str  # full hex of the mounted commit ("" when the view has no commit)
    pid: int
    control_socket: str  # reserved: the Unix socket of the control protocol (later issue)
    read_only: bool = True
    log_file: str = ""
    # The writable branches of a mount of several versions: their directory in the mount
    # (`@dev`, `labels/@dev`) → REPO@BRANCH, the view's key on the control socket.
    checkouts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class KernelMount:
    """One line of /proc/self/mountinfo, the fields we need."""

    mountpoint: str
    fstype: str
    source: str
    dev: str = ""  # "MAJOR:MINOR", without touching the mount (a hung daemon cannot block it)


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    if "\\" not in field:
        return field
    out = bytearray()
    raw = field.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(raw):
        if raw[i] == 0x5C and i + 3 < len(raw) and raw[i + 1 : i + 4].isdigit():
            out.append(int(raw[i + 1 : i + 4], 8))
            i += 4
        else:
            out.append(raw[i])
            i += 1
    return out.decode("utf-8", "surrogateescape")


def kernel_mounts(mountinfo: str = "/proc/self/mountinfo") -> list[KernelMount]:
    """The mounts of this process's mount namespace."""
    mounts: list[KernelMount] = []
    with open(mountinfo, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            left, sep, right = line.partition(" - ")
            if not sep:
                continue
            fields = left.split()
            tail = right.split()
            if len(fields) < 5 or len(tail) < 2:
                continue
            mount = KernelMount(_unescape(fields[4]), tail[0], _unescape(tail[1]), fields[2])
            mounts.append(mount)
    return mounts


def mount_at(mountpoint: str | os.PathLike[str]) -> KernelMount | None:
    """The topmost kernel mount whose mountpoint is exactly this path, if any."""
    path = os.path.abspath(mountpoint)
    found = None
    for m in kernel_mounts():
        if m.mountpoint == path:
            found = m  # later lines are mounted on top of earlier ones
    return found


def is_mlgitfs(m: KernelMount) -> bool:
    return m.source.startswith(FSNAME_PREFIX) or m.fstype == FSTYPE


def is_dead(mountpoint: str | os.PathLike[str]) -> bool:
    """True for a FUSE mount whose daemon is gone. statfs always reaches the daemon, while
    stat may be answered from the kernel's attribute cache even after the daemon died."""
    try:
        os.statvfs(mountpoint)
    except OSError as exc:
        # ECONNABORTED: a request caught in flight while the connection was being aborted.
        return exc.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    return False


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (nobody may reap a killed daemon)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        return True
    # The state letter follows the command name, which is in parentheses and may hold spaces.
    state = stat.rpartition(")")[2].split()[:1]
    return bool(state) and state[0] not in ("Z", "X")


def record_path(run_dir: Path, pid: int) -> Path:
    return run_dir / f"{pid}{RECORD_SUFFIX}"


def control_socket_path(run_dir: Path, pid: int) -> Path:
    return run_dir / f"{pid}.sock"


def write_record(run_dir: Path, record: MountRecord) -> Path:
    """Write the record atomically (tmp + rename) so readers never see half a file."""
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = record_path(run_dir, record.pid)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(record), sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)
    return path


def remove_record(run_dir: Path, pid: int) -> None:
    for path in (record_path(run_dir, pid), control_socket_path(run_dir, pid)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _read_record(path: Path) -> MountRecord | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return MountRecord(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("unreadable mount record %s: %s", path, exc)
        return None


def mount_states(run_dir: Path) -> list[tuple[MountRecord, bool]]:
    """Mounts recorded under run_dir with whether their daemon is alive, by mountpoint.

    A record whose mountpoint left the kernel's table is stale and removed; one whose daemon
    died while the kernel still holds the mount is kept and reported dead (until unmount)."""
    if not run_dir.is_dir():
        return []
    points = {m.mountpoint for m in kernel_mounts() if is_mlgitfs(m)}
    out: list[tuple[MountRecord, bool]] = []
    for path in sorted(run_dir.glob(f"*{RECORD_SUFFIX}")):
        record = _read_record(path)
        if record is None:
            continue
        if record.mountpoint in points:
            out.append((record, pid_alive(record.pid)))
        else:
            log.info("removing stale mount record of pid %d (%s)", record.pid, record.mountpoint)
            remove_record(run_dir, record.pid)
    return sorted(out, key=lambda ra: ra[0].mountpoint)


def list_mounts(run_dir: Path) -> list[MountRecord]:
    """Live mounts recorded under run_dir, sorted by mountpoint; stale records are removed."""
    return [record for record, alive in mount_states(run_dir) if alive]


def find_mount(run_dir: Path, mountpoint: str | os.PathLike[str]) -> MountRecord | None:
    path = os.path.abspath(mountpoint)
    for record in list_mounts(run_dir):
        if record.mountpoint == path:
            return record
    return None
