"""Mount commands (mount, unmount, mounts); filled in by the daemon layer."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
