"""A checkout's overlay directory and its lock (its records live in meta/checkouts.py).

A checkout is one writable mount's state of one branch (design §2); its record, inode table
and overlay delta are LMDB records (`mlgitfs.meta.checkouts`); its materialized files live
under `<home>/overlays/<id>/files/`, locked by the one writable daemon.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from mlgitfs.errors import MountError
from mlgitfs.meta.checkouts import CheckoutRecord


def overlay_dir(home: Path, checkout_id: int) -> Path:
    return home / "overlays" / str(checkout_id)


class CheckoutLock:
    """An exclusive flock on the checkout's lock file, held by the one writable daemon."""

    def __init__(self, path: Path, what: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = os.pread(self.fd, 64, 0).decode().strip()
            os.close(self.fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                by = f" by daemon pid {holder}" if holder else ""
                raise MountError(
                    f"{what} is already mounted writable{by}; a branch has one writable "
                    "mount per store: use that mount, unmount it, or mount with --read-only"
                ) from None
            raise MountError(f"cannot lock {path}: {exc.strerror}") from exc
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def try_lock(home: Path, rec: CheckoutRecord, what: str) -> CheckoutLock | None:
    """The checkout's lock when no daemon holds it (None: a writable mount is live)."""
    try:
        return CheckoutLock(overlay_dir(home, rec.id) / "lock", what)
    except MountError:
        return None
