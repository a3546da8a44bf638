"""Promotion commands: promote, checks (docs/governance.md)."""

from __future__ import annotations

import time

import click

from mlgitfs import api
from mlgitfs.errors import MergeConflict

from . import render
from .mergecmds import conflicts
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.command()
@click.argument("source")
@click.option("--to", "to", required=True, help="The branch to move: BRANCH or REPO@BRANCH.")
@click.option("--dry-run", is_flag=True, help="Run the checks on the candidate; move nothing.")
@json_opt
@pass_ctx
def promote(c: Ctx, source: str, to: str, dry_run: bool, as_json: bool) -> None:
    """Promote SOURCE (REPO@REF) to a branch: run the required checks of the target's rule
    (`required_checks` of its `[[branch]]` in the target head's .mlgitfs/hooks.toml), with
    its pre-merge and pre-commit hooks, on the candidate, and move the target only when all
    pass.

    The candidate is SOURCE's commit when the target's head is its ancestor, else the merge
    of SOURCE into the target (conflicts refuse it, exit 23). The move is a compare-and-swap
    on the target's head; a failing check refuses it (exit 34) and nothing moves. The checks
    the promoted commit passed are recorded (see `mlgitfs checks`); a protected branch is
    pushed only at a promoted commit. Already up to date: the checks run on the head and are
    recorded again. --dry-run runs them on a fast-forward candidate (a merge candidate is
    only checked for conflicts)."""
    try:
        r = api.promote(c.home, source, to, dry_run)
    except MergeConflict as exc:
        conflicts(exc.conflicts, as_json)
        raise
    if as_json:
        render.emit_json(r)
        return
    render.hook_results(r.checks)
    target = f"{r.repo}@{r.target}"
    need = ", ".join(r.required) or "none"
    if r.commit:
        render.message(
            f"{target}: promoted {r.source} ({r.status}) {r.old[:12]} -> {r.commit[:12]}; "
            f"required checks passed: {need}"
        )
    else:
        render.message(f"{target}: {r.status} (required checks: {need}; nothing moved)")


@click.command()
@click.argument("revspec")
@json_opt
@pass_ctx
def checks(c: Ctx, revspec: str, as_json: bool) -> None:
    """List the promotions recorded for REVSPEC's commit: the branch it was promoted to (or
    merged into, for a merges_only branch), when, and the required checks it passed."""
    r = api.checks(c.home, revspec)
    if as_json:
        render.emit_json(r)
        return
    if not r.promotions:
        render.message(f"{r.commit[:12]} of {r.repo} has no recorded promotion")
    for p in r.promotions:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(p.time))
        click.echo(f"{p.branch}\t{p.via}\t{when}Z\tfrom {p.base[:12] or '-'}")
        for ch in p.checks:
            click.echo(f"  {ch.kind} {ch.name}: {ch.status}{' (cached)' if ch.cached else ''}")


COMMANDS = [promote, checks]
