"""Mount commands: mount, unmount, mounts, doctor."""

from __future__ import annotations

from pathlib import Path

import click

from mlgitfs import api

from . import complete, render
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)


@click.command()
@click.argument("revspecs", nargs=-1, required=True, shell_complete=complete.revspec)
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.option("--foreground", is_flag=True, help="Stay attached and log to stderr.")
@click.option("--allow-other", is_flag=True, help="Let other users read the mount.")
@click.option(
    "--memory",
    metavar="SIZE",
    default="256M",
    help="The daemon's memory for chunks fetched from a remote and not yet read (read-ahead "
    "windows). Not the disk budget of the store's chunk cache: that is "
    "'mlgitfs config cache-size'.",
)
@click.option("--cache-size", "old_cache_size", hidden=True, help="Old name of --memory.")
@click.option("--read-only", is_flag=True, help="Mount a branch read-only.")
@click.option(
    "--write",
    "write",
    multiple=True,
    metavar="BRANCH",
    help="In a mount of several versions, show this branch writable: @BRANCH/ is its "
    "checkout (an overlay, as a mount of the branch alone), committed with 'mlgitfs commit "
    "MOUNTPOINT/@BRANCH'. Repeatable; REPO@BRANCH when the mount shows several repos.",
)
@click.option(
    "--recordable",
    is_flag=True,
    help="Let `mlgitfs run --record` record reads here at any time (read-only mounts: the "
    "kernel keeps sending opens, one more request per file opened).",
)
@pass_ctx
def mount(
    c: Ctx,
    revspecs: tuple[str, ...],
    mountpoint: Path,
    foreground: bool,
    allow_other: bool,
    memory: str,
    old_cache_size: str | None,
    read_only: bool,
    write: tuple[str, ...],
    recordable: bool,
) -> None:
    """Mount REVSPECS at MOUNTPOINT; returns once the mount answers.

    A branch (REPO@BRANCH) mounts writable (a copy-on-write overlay) unless --read-only,
    one writable mount per branch and store; a tag, a commit id or REF~N mounts read-only.
    REPO@REF:PATH mounts one directory of a version, read-only. REPO alone mounts all its
    versions read-only, as @BRANCH/, @TAG/ and @COMMIT/ directories opened on first access
    (a branch bob/x is @bob/x/); --write BRANCH makes @BRANCH/ that branch's writable
    checkout, the rest staying read-only. Several revspecs mount read-only side by side,
    each under its repo's name. A version carrying history that breaks its remote's access
    policy (let through by a fetch under `config trust warn`) is not mounted under trust =
    refuse (exit 44), and mounted with a warning under warn. See docs/mount.md for caching
    and training from a mount."""
    if old_cache_size is not None:
        render.message("mlgitfs: warning: mount --cache-size is now --memory (the daemon's "
                       "memory); the disk budget is 'mlgitfs config cache-size'")  # fmt: skip
        memory = old_cache_size
    info = api.mount(
        c.home,
        revspecs,
        mountpoint,
        foreground=foreground,
        allow_other=allow_other,
        cache_size=memory,
        read_only=read_only,
        recordable=recordable,
        write=write,
    )
    if info is not None:
        mode = "read-only" if info.read_only else "writable"
        if info.checkouts:
            mode = f"read-only but {', '.join(sorted(info.checkouts))}: writable"
        what = f"{info.commit[:12]}, {mode}" if info.commit else mode
        render.message(
            f"mounted {info.revspec} ({what}) at {info.mountpoint}, daemon pid {info.pid}"
        )
        if info.expired:
            render.message(f"mlgitfs: warning: {info.expired}: reading its files gives EIO")


@click.command()
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.option("-l", "--lazy", is_flag=True, help="Detach now even if files are open.")
@pass_ctx
def unmount(c: Ctx, mountpoint: Path, lazy: bool) -> None:
    """Unmount an mlgitfs mount; a busy mount (open files) is refused unless --lazy; a
    mount whose daemon died is cleaned up."""
    api.unmount(c.home, mountpoint, lazy)
    render.message(f"unmounted {mountpoint}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def mounts(c: Ctx, as_json: bool) -> None:
    """List the mounts of the store: mountpoint, revspec, commit (for a writable mount,
    the commit its overlay is based on now; "-" for a mount of several versions, whose
    revspec lists what it shows), ro/rw, and the daemon's pid, or "dead" for a mount whose
    daemon died ('mlgitfs unmount' cleans it up). --json adds alive: false. A mount of
    several versions with writable branches (mount --write) is rw, each branch's directory
    on a line below ("writable: @dev (ds@dev)"; `checkouts` in --json). A version
    that expired (retention; gc let its file contents go) has a line saying so below its own,
    and `expired` (the reason) in --json."""
    items = api.mounts(c.home)
    if as_json:
        render.emit_json(items)
        return
    for m in items:
        mode = "ro" if m.read_only else "rw"
        state = f"pid {m.pid}" if m.alive else f"dead (pid {m.pid} gone: 'mlgitfs unmount' it)"
        click.echo(f"{m.mountpoint}\t{m.revspec}\t{m.commit[:12] or '-'}\t{mode}\t{state}")
        for where, ref in sorted(m.checkouts.items()):
            click.echo(f"  writable: {where} ({ref})")
        if m.expired:
            click.echo(f"  expired: {m.expired}")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json: bool) -> None:
    """Check what mounts need: the installed pyfuse3 and whether it is the patched build
    (each of the four patches, and what a mount loses without it), /dev/fuse, fusermount3,
    and what to do about anything missing. mount warns on stderr when pyfuse3 lacks the
    patches."""
    _doctor(api.doctor(), as_json)


def _doctor(r: api.DoctorResult, as_json: bool) -> None:
    if as_json:
        render.emit_json(r)
        return
    if r.pyfuse3_version is None:
        click.echo("pyfuse3: not installed")
    else:
        kind = (
            "patched"
            if r.patched
            else "stock"
            if not any(p.present for p in r.patches)
            else ("partly patched")
        )
        click.echo(f"pyfuse3: {r.pyfuse3_version} ({kind}; mlgitfs pins {r.pyfuse3_required})")
    for p in r.patches:
        mark = "yes" if p.present else "NO "
        click.echo(f"  {mark} {p.name:9} {p.gives if p.present else 'without it: ' + p.without}")
    click.echo(f"/dev/fuse: {'present' if r.fuse_device else 'missing'}")
    click.echo(f"fusermount3: {r.fusermount or 'missing'}")
    for line in r.advice:
        click.echo(f"to do: {line}")


COMMANDS: list[click.Command] = [mount, unmount, mounts, doctor]
