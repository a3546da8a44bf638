"""Registration point for commands of later layers (mounts, remotes), kept apart from main.py."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add the commands defined in sibling modules to `group`."""
    from . import refcmds, reviewcmds

    for cmd in [*reviewcmds.COMMANDS, *refcmds.COMMANDS]:
        group.add_command(cmd)

    from . import mountcmds

    for cmd in mountcmds.COMMANDS:
        group.add_command(cmd)

    from . import checkoutcmds

    for cmd in checkoutcmds.COMMANDS:
        group.add_command(cmd)

    from . import remotecmds

    for cmd in remotecmds.COMMANDS:
        group.add_command(cmd)

    from . import mergecmds

    for cmd in mergecmds.COMMANDS:
        group.add_command(cmd)

    from . import lifecyclecmds

    for cmd in lifecyclecmds.COMMANDS:
        group.add_command(cmd)

    from . import mountmergecmds

    for cmd in mountmergecmds.COMMANDS:
        group.add_command(cmd)

    from . import lineagecmds

    for cmd in lineagecmds.COMMANDS:
        group.add_command(cmd)

    from . import promotecmds

    for cmd in promotecmds.COMMANDS:
        group.add_command(cmd)
