"""Who is acting: the name commits record as author and the reflog as who moved a ref."""

from __future__ import annotations

import getpass
import os
import socket


def default_actor() -> str:
    """$MLGITFS_AUTHOR, else user@host."""
    env = os.environ.get("MLGITFS_AUTHOR")
    if env:
        return env
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
