"""Merges into a writable mount: resolve, update, conflicts; and how `merge --into MOUNTPOINT`
and `status` show them (docs/merge.md, "Resolving in a mount")."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from mlgitfs import api
from mlgitfs.errors import UnmergedPaths

from . import render
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def _side(s: api.MountConflict | None, name: str) -> str:
    side = getattr(s, name)
    if side is None:
        return "-"
    ident = side.id if side.kind == "symlink" else side.id[:12]
    size = render.human(side.size) if side.kind == "file" else side.size
    return f"{side.kind} {ident} {size} {side.mode:o}"


def show_conflicts(items: tuple[api.MountConflict, ...], cells: bool = True) -> None:
    """`U  path  (kind)`, the three sides, and a table's conflicting cells."""
    for c in items:
        click.echo(f"U  {c.path}  ({c.kind}{': ' + c.detail if c.detail and not c.cells else ''})")
        for name in ("base", "ours", "theirs"):
            click.echo(f"     {name:<6} {_side(c, name)}")
        if cells:
            for x in c.cells:
                sides = ", ".join(
                    f"{n} {'(none)' if v is None else repr(v)}"
                    for n, v in (("base", x.base), ("ours", x.ours), ("theirs", x.theirs))
                )
                click.echo(f"     key {x.key}, column {x.column!r}: {sides} ({x.kind})")


def show_merging(m: api.MergeInfo | None) -> None:
    if m is None:
        return
    what = "merging" if m.kind == "merge" else "updating to"
    left = len(m.conflicts)
    render.message(
        f"{what} {m.source} ({m.theirs[:12]}): "
        + (
            f"{left} unmerged path(s); resolve them, then commit"
            if left
            else "all conflicts resolved; commit to conclude"
        )  # fmt: skip
        + " (or `mlgitfs merge --abort`)"
    )
    show_conflicts(m.conflicts)


def mount_result(r: api.MountMergeResult, as_json: bool) -> None:
    """The result; a merge or update that left conflicts then exits 27 (UnmergedPaths)."""
    _render(r, as_json)
    if r.status == "conflicts" and r.merging is not None:
        raise UnmergedPaths(
            f"{len(r.merging.conflicts)} conflicted path(s) left in {r.mountpoint}: resolve "
            "each (`mlgitfs resolve PATH`), then commit; or `mlgitfs merge --abort`"
        )


def _render(r: api.MountMergeResult, as_json: bool) -> None:
    if as_json:
        render.emit_json(r)
        return
    for p in r.paths:
        click.echo(f"M  {p}" if r.status != "aborted" else f"   {p}")
    if r.status == "up to date":
        render.message(f"{r.mountpoint} is up to date")
    elif r.status == "aborted":
        render.message(f"merge aborted: {r.mountpoint} is as it was before it")
    else:
        render.message(f"{r.repo}@{r.branch} at {r.mountpoint}: {r.status}")
    show_merging(r.merging)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--ours", "side", flag_value="ours", help="Take the mount's version (before the merge)."
)
@click.option("--theirs", "side", flag_value="theirs", help="Take the merged commit's version.")
@click.option("--base", "side", flag_value="base", help="Take the merge base's version.")
@json_opt
@pass_ctx
def resolve(c: Ctx, paths: tuple[Path, ...], side: str | None, as_json: bool) -> None:
    """Mark conflicted PATHs of a writable mount resolved.

    With --ours, --theirs or --base that side's version (of the whole file) is put at the
    path (absent on that side: the path is removed); without, the file as it is in the mount
    (edited by you) is taken. `commit` concludes the merge once no path is unmerged."""
    mount_result(api.resolve(c.home, list(paths), side), as_json)


@click.command()
@click.argument("mountpoint", required=False, type=click.Path(path_type=Path))
@click.option(
    "--strategy",
    type=click.Choice(["ours", "theirs"]),
    help="How to resolve conflicts that no rule of .mlgitfs/merge.toml covers.",
)
@json_opt
@pass_ctx
def update(c: Ctx, mountpoint: Path | None, strategy: str | None, as_json: bool) -> None:
    """Move a writable mount to its branch's head (which a pull, merge, import or another
    mount moved), carrying its uncommitted changes over by a three-way merge against its old
    base. Overlapping changes become conflicts (`U` in status; resolve, then commit; `merge
    --abort` undoes the update)."""
    mount_result(api.update(c.home, mountpoint, strategy), as_json)


@click.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--side",
    type=click.Choice(["base", "ours", "theirs"]),
    help="Write this side's version of the conflicted file PATH to stdout.",
)
@click.option(
    "--cells",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the conflicting cells of the conflicted table PATH here as a CSV table.",
)
@json_opt
@pass_ctx
def conflicts(
    c: Ctx, path: Path | None, side: str | None, cells: Path | None, as_json: bool
) -> None:
    """The unmerged paths of the merge in progress in a writable mount (PATH: the mount, or
    a path inside it; default the current directory): kind, the base, ours and theirs
    sides, and a table's conflicting cells (key, column, base, ours, theirs). With --side,
    the bytes of that version of the conflicted file PATH; with --cells FILE, the
    conflicting cells of the table PATH as a CSV table for a spreadsheet."""
    if cells is not None:
        if path is None:
            raise click.UsageError("--cells needs the conflicted table's PATH")
        cells.write_bytes(api.conflict_cells_csv(c.home, path))
        return
    if side is not None:
        if path is None:
            raise click.UsageError("--side needs the conflicted file's PATH")
        out = sys.stdout.buffer
        for part in api.conflict_side(c.home, path, side):
            out.write(part)
        out.flush()
        return
    r = api.status(c.home, path)
    items = r.merging.conflicts if r.merging is not None else ()
    if as_json:
        render.emit_json({"mountpoint": r.mountpoint, "conflicts": list(items)})
        return
    if r.merging is None:
        render.message(f"no merge is in progress in {r.mountpoint}")
    show_conflicts(items)


COMMANDS: list[click.Command] = [resolve, update, conflicts]
