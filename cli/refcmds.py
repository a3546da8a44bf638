"""Ref commands: branch and tag."""

from __future__ import annotations

import click

from mlgitfs import api

from . import complete, render
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.command()
@click.argument("target", shell_complete=complete.revspec)
@click.argument("start", required=False, shell_complete=complete.revspec)
@click.option("-d", "--delete", is_flag=True, help="Delete the branch REPO@BRANCH.")
@click.option(
    "-f",
    "--force",
    is_flag=True,
    help="With -d: delete even the default branch, a branch with uncommitted changes in its "
    "checkout, or one holding commits no other ref or remote holds.",
)
@click.option("-l", "--list", "list_", is_flag=True, help="List the branches of REPO.")
@json_opt
@pass_ctx
def branch(
    c: Ctx, target: str, start: str | None, delete: bool, force: bool, list_: bool, as_json: bool
) -> None:
    """Create REPO@BRANCH at START (default REPO@main; @REF is a ref of REPO), list the
    branches of REPO (REPO or -l), or delete one (-d).

    A deleted branch comes back from its reflog (see `mlgitfs reflog`) until its entries
    expire: `mlgitfs branch REPO@NAME REPO@NAME@{1}` (NAME@{N}: NAME's value N moves ago)."""
    if delete:
        d = api.branch_delete(c.home, target, force)
        dropped = ", its checkout with it" if d.checkout_dropped else ""
        render.message(f"deleted branch {d.name} (was {d.commit[:12]}{dropped})")
    elif force:
        raise click.UsageError("--force goes with -d")
    elif list_ or "@" not in target:
        render.refs(api.branch_list(c.home, target.split("@")[0]), as_json)
    else:
        r = api.branch_create(c.home, target, start)
        render.message(f"created branch {r.name} at {r.commit[:12]}")


@click.command()
@click.argument("target", shell_complete=complete.revspec)
@click.argument("revspec", required=False, shell_complete=complete.revspec)
@click.option("-d", "--delete", is_flag=True, help="Delete the tag REPO@TAG.")
@json_opt
@pass_ctx
def tag(c: Ctx, target: str, revspec: str | None, delete: bool, as_json: bool) -> None:
    """Create tag REPO@TAG at REVSPEC (default REPO@main; @REF is a ref of REPO), list the
    tags of REPO, or delete one (-d). Tags never move."""
    if delete:
        r = api.tag_delete(c.home, target)
        render.message(f"deleted tag {r.name} (was {r.commit[:12]})")
    elif "@" not in target:
        render.refs(api.tag_list(c.home, target), as_json)
    else:
        r = api.tag_create(c.home, target, revspec)
        render.message(f"created tag {r.name} at {r.commit[:12]}")


COMMANDS = [branch, tag]
