"""Lifecycle commands: reflog, retention (docs/lifecycle.md)."""

from __future__ import annotations

import click

from mlgitfs import api

from . import complete, render
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.command()
@click.argument("target", shell_complete=complete.revspec)
@json_opt
@pass_ctx
def reflog(c: Ctx, target: str, as_json: bool) -> None:
    """Show every move of REPO@REF (a branch, tag or remote-tracking ref, a deleted one
    too), or of every ref of REPO, newest first: REF@{N}, when (UTC), who, old -> new id,
    why. REF@{N} names the entry's new id wherever a revspec goes, REF@{N+1} its old one:
    `mlgitfs branch REPO@NAME REPO@NAME@{1}` recreates a deleted branch. Entries are kept
    for the store's reflog-expiry (see `mlgitfs config`)."""
    items = api.reflog_show(c.home, target)
    if as_json:
        render.emit_json(items)
        return
    for r in items:
        old = r.old[:12] or "(none)"
        new = r.new[:12] or "(none)"
        click.echo(f"{r.selector}\t{r.time}\t{r.who}\t{old} -> {new}\t{r.why}")


COMMANDS: list[click.Command] = [reflog]
