"""Mount commands: mount, unmount, mounts, doctor."""

from __future__ import annotations

from pathlib import Path

import click

from mlgitfs import api

from . import render
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)


@click.command()
@click.argument("revspec")
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.option("--foreground", is_flag=True, help="Stay attached and log to stderr.")
@click.option("--allow-other", is_flag=True, help="Let other users read the mount.")
@click.option("--cache-size", help="Decoded-chunk memory cache of the daemon (e.g. 512M).")
@click.option("--read-only", is_flag=True, help="Mount a branch read-only.")
@pass_ctx
def mount(
    c: Ctx,
    revspec: str,
    mountpoint: Path,
    foreground: bool,
    allow_other: bool,
    cache_size: str | None,
    read_only: bool,
) -> None:
    """Mount REVSPEC (REPO@REF) at MOUNTPOINT; returns once the mount answers."""
    info = api.mount(
        c.home,
        revspec,
        mountpoint,
        foreground=foreground,
        allow_other=allow_other,
        cache_size=cache_size,
        read_only=read_only,
    )
    if info is not None:
        mode = "read-only" if info.read_only else "writable"
        render.message(
            f"mounted {info.revspec} ({info.commit[:12]}, {mode}) at "
            f"{info.mountpoint}, daemon pid {info.pid}"
        )


@click.command()
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.option("-l", "--lazy", is_flag=True, help="Detach now even if files are open.")
@pass_ctx
def unmount(c: Ctx, mountpoint: Path, lazy: bool) -> None:
    """Unmount an mlgitfs mount (also one whose daemon died)."""
    api.unmount(c.home, mountpoint, lazy)
    render.message(f"unmounted {mountpoint}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def mounts(c: Ctx, as_json: bool) -> None:
    """List live mounts of this store."""
    items = api.mounts(c.home)
    if as_json:
        render.emit_json(items)
        return
    for m in items:
        mode = "ro" if m.read_only else "rw"
        click.echo(f"{m.mountpoint}\t{m.revspec}\t{m.commit[:12]}\t{mode}\tpid {m.pid}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json: bool) -> None:
    """Check what mounts need: the pyfuse3 build (patched or stock) and FUSE."""
    render.doctor(api.doctor(), as_json)


COMMANDS: list[click.Command] = [mount, unmount, mounts, doctor]
