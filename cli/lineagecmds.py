"""Read-set lineage commands: run --record (docs/review.md, "Lineage from what a job read")."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mlgitfs import api

from . import render
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)
mount_opt = click.option(
    "--mount",
    "mounts",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Record only in the mount at this mountpoint (repeatable; default: every mount).",
)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--record", "name", required=True, help="Store the read set under NAME.")
@mount_opt
@click.option("--json", "as_json", is_flag=True, help="Print the read set as JSON on stdout.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_ctx
def run(
    c: Ctx, name: str, mounts: tuple[Path, ...], as_json: bool, command: tuple[str, ...]
) -> None:
    """Run COMMAND (after --) while the store's mounts record which files it and every
    process it starts open, with the bytes the daemons serve them: the read set, stored
    under NAME for `import`/`commit --inputs-from NAME`. Exits with COMMAND's status.

    A read-only mount records only if the kernel still sends it opens: a mount made with
    --recordable, or one no file was opened in before the first recording."""
    r = api.run_recorded(c.home, name, list(command), list(mounts))
    if as_json:
        render.emit_json(r.readset)
    else:
        render.message(
            f"recorded {name}: {r.readset.files} files of {len(r.readset.inputs)} versions "
            f"in {len(r.mounts)} mounts"
        )
    sys.exit(r.returncode)


@click.group()
def record() -> None:
    """Record a read set around commands you run yourself (as `run --record` does for one
    command): `record start NAME`, run the job, `record stop NAME`."""


@record.command("start")
@click.argument("name")
@click.option(
    "--pid",
    type=int,
    help="Record this process and its descendants (default: the shell that runs this).",
)
@mount_opt
@pass_ctx
def record_start(c: Ctx, name: str, pid: int | None, mounts: tuple[Path, ...]) -> None:
    """Start recording NAME: the store's mounts attribute the opens of process PID and its
    descendants (default: this command's parent, the shell) until `record stop NAME`."""
    r = api.record_start(c.home, name, os.getppid() if pid is None else pid, list(mounts))
    render.message(f"recording {r.name} for pid {r.pid} in {len(r.mounts)} mounts")


@record.command("stop")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the read set as JSON on stdout.")
@pass_ctx
def record_stop(c: Ctx, name: str, as_json: bool) -> None:
    """Stop recording NAME in every mount and store its read set (for `--inputs-from NAME`)."""
    rs = api.record_stop(c.home, name)
    if as_json:
        render.emit_json(rs)
    else:
        render.message(f"recorded {name}: {rs.files} files of {len(rs.inputs)} versions")


COMMANDS = [run, record]
