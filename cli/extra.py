"""Registration point for commands of later layers (mounts, remotes), kept apart from main.py."""

from __future__ import annotations

import click

from . import (
    accesscmds,
    checkoutcmds,
    keycmds,
    lifecyclecmds,
    lineagecmds,
    mergecmds,
    mountcmds,
    mountmergecmds,
    promotecmds,
    refcmds,
    remotecmds,
    reviewcmds,
)

_MODULES = (reviewcmds, refcmds, mountcmds, checkoutcmds, remotecmds, mergecmds,
            lifecyclecmds, mountmergecmds, lineagecmds, promotecmds, accesscmds,
            keycmds)  # fmt: skip


def register(group: click.Group) -> None:
    """Add the commands defined in sibling modules to `group`."""
    for module in _MODULES:
        for cmd in module.COMMANDS:
            group.add_command(cmd)
