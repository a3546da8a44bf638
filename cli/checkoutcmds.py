"""Checkout commands of writable branch mounts: commit, status, restore, unlock."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from mlgitfs import api

from . import render
from .mountmergecmds import show_merging
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)


def _show_changes(items: tuple[api.StatusItem, ...]) -> None:
    for c in items:
        suffix = "/" if c.kind == "dir" else ""
        if c.change == "renamed":
            click.echo(f"{render.CHANGE_SIGN[c.change]}  {c.old_path}{suffix} -> {c.path}{suffix}")
        else:
            click.echo(f"{render.CHANGE_SIGN[c.change]}  {c.path}{suffix}")


@click.command()
@click.argument("mountpoint", required=False, type=click.Path(path_type=Path))
@click.option("-m", "--message", required=True, help="The commit message.")
@click.option("--meta", multiple=True, help="KEY=VALUE metadata (repeatable).")
@click.option("--input", "inputs", multiple=True, help="REPO@REF this version was made from.")
@click.option("--dry-run", is_flag=True, help="Show what would be committed; change nothing.")
@render.inputs_from_opt
@render.no_verify_opt
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def commit(
    c: Ctx,
    mountpoint: Path | None,
    message: str,
    meta: tuple[str, ...],
    inputs: tuple[str, ...],
    dry_run: bool,
    inputs_from: str | None,
    no_verify: bool,
    as_json: bool,
) -> None:
    """Commit what a writable mount changed (MOUNTPOINT: default the mount around the
    current directory). Prints the commit id.

    The branch moves only if it is still at the mount's base (else exit 14, the overlay
    kept). --dry-run lists what would be committed. The mount's daemon runs the branch's
    pre-commit hooks and checks: a refusal shows their output, exits 34 and keeps the
    overlay."""
    r = api.commit(
        c.home, mountpoint, message, list(meta), list(inputs), dry_run, no_verify, inputs_from
    )
    if as_json:
        render.emit_json(r)
        return
    render.hook_results(r.hooks)
    if dry_run:
        _show_changes(r.changes)
        render.message(
            f"dry run: {len(r.changes)} changes would be committed to {r.repo}@{r.branch}"
        )
    elif r.commit is None:
        render.message(f"nothing to commit in {r.mountpoint}")
    else:
        click.echo(r.commit.id)
        render.message(
            f"committed {r.commit.id[:12]} to {r.repo}@{r.branch}: "
            f"{r.files_hashed} files hashed ({render.human(r.bytes_hashed)}), "
            f"{render.human(r.bytes_stored)} stored, {r.seconds:.2f}s"
        )


@click.command()
@click.argument("mountpoint", required=False, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def status(c: Ctx, mountpoint: Path | None, as_json: bool) -> None:
    """What a writable mount changed against its base commit: added (A), modified (M),
    deleted (D), renamed (R) paths, by content: exactly what the next commit changes (a
    file replaced by a rename with other bytes is M, with the same bytes not shown); the
    merge in progress and its unmerged paths (U, with the three sides and a table's
    conflicting cells); whether the branch moved under the mount (behind: see `update`);
    then the changes the mount refused since the last status, with the reason. The cost
    follows the changes."""
    r = api.status(c.home, mountpoint)
    if as_json:
        render.emit_json({**dataclasses.asdict(r), "behind": r.behind})
        return
    render.message(f"{r.repo}@{r.branch} ({r.mutability}) at {r.mountpoint}, base {r.base[:12]}")
    if r.behind:
        render.message(
            f"behind: {r.repo}@{r.branch} moved to {r.head[:12]}; `mlgitfs update` brings the "
            "mount there (a commit now is refused, exit 14)"
        )
    if not r.changes:
        render.message("nothing changed")
    _show_changes(r.changes)
    show_merging(r.merging)
    if r.refused or r.refused_dropped:
        click.echo(f"refused since the last status ({len(r.refused) + r.refused_dropped}):")
        for op, path, why in r.refused:
            click.echo(f"!  {op} {path}: {why}")
        if r.refused_dropped:
            click.echo(f"!  ... and {r.refused_dropped} more")


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--source",
    help="The version to restore from: REPO@REF, or @REF for a ref of the mount's repo.  "
    "[default: the mount's base commit]",
)
@pass_ctx
def restore(c: Ctx, paths: tuple[Path, ...], source: str | None) -> None:
    """Put PATHs of a writable mount back as in a version (no PATH: the whole tree).

    A path the source lacks but the mount has is removed (as git restore); a path that
    neither has is an error (exit 4) and nothing changes."""
    r = api.restore(c.home, list(paths), source)
    render.message(f"restored {len(r.paths)} paths in {r.mountpoint}")


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@pass_ctx
def unlock(c: Ctx, paths: tuple[Path, ...]) -> None:
    """Allow changes to committed files of a flexible repo (by path: writes, renames over,
    unlink and create) until the next commit; strict repos refuse: add new files instead."""
    r = api.unlock(c.home, list(paths))
    render.message(f"unlocked {len(r.paths)} files in {r.mountpoint}")


COMMANDS: list[click.Command] = [commit, status, restore, unlock]
