"""Lifecycle commands: reflog, retention, erase (docs/lifecycle.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import click

from mlgitfs import api

from . import complete, gcrender, render
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


@click.group()
def retention() -> None:
    """Retention policies: what each repo keeps of its history. A version no rule keeps
    *expires*: its metadata stays (log, lineage, diff of names and sizes work), its file
    contents may go, and reading them is an error naming the rule (see docs/lifecycle.md)."""


def _render_retention(r: api.RetentionResult, as_json: bool) -> None:
    if as_json:
        render.emit_json(r)
        return
    if not r.rules:
        click.echo(f"{r.repo}: no retention policy (every version is kept)")
    for rule in r.rules:
        click.echo(f"{r.repo}@{rule.pattern}\t{rule.description}")
    for e in r.expiring:
        state = "expired" if e.let_go_ns else "expiring"  # expired: gc let its contents go
        click.echo(f"{state}\t{e.commit[:12]}\t{e.reason}")


@retention.command("show")
@click.argument("repo", shell_complete=complete.repo)
@json_opt
@pass_ctx
def retention_show(c: Ctx, repo: str, as_json: bool) -> None:
    """Show REPO's policies, one per branch pattern, and the versions they let expire now:
    "expiring" (the next gc lets their contents go) or "expired" (gc did). A version a live
    reflog entry or a checkout names is held until that ends."""
    _render_retention(api.retention_show(c.home, repo), as_json)


def _keep(name: str, what: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return click.option(
        f"--keep-{name}", name, metavar="N", help=f"Keep {what} ('unlimited': all)."
    )


@retention.command("set")
@click.argument("target", shell_complete=complete.repo)
@_keep("last", "the last N commits")
@_keep("hourly", "the newest commit of each of the last N hours that have one")
@_keep("daily", "the newest commit of each of the last N days that have one")
@_keep("weekly", "the newest commit of each of the last N ISO weeks that have one")
@_keep("monthly", "the newest commit of each of the last N months that have one")
@_keep("yearly", "the newest commit of each of the last N years that have one")
@click.option(
    "--keep-within",
    "within",
    metavar="DURATION",
    help="Keep every commit newer than now minus DURATION (e.g. 30d, 1y6m, 12h).",
)
@click.option(
    "--keep-tags/--no-keep-tags",
    default=True,
    help="Keep the commits tags name (tags matching the pattern).",
)
@click.option("--clear", is_flag=True, help="Remove the pattern's policy.")
@json_opt
@pass_ctx
def retention_set(
    c: Ctx,
    target: str,
    last: str | None,
    hourly: str | None,
    daily: str | None,
    weekly: str | None,
    monthly: str | None,
    yearly: str | None,
    within: str | None,
    keep_tags: bool,
    clear: bool,
    as_json: bool,
) -> None:
    """Set the policy of REPO[@PATTERN]: the branches and tags whose names match PATTERN
    (fnmatch; default `*`; an exact name beats a pattern, a longer pattern a shorter one).
    The options replace the pattern's policy. Periods are UTC, as restic's `forget`: the
    newest commit of each period is kept, and while a count is not used up the oldest commit
    too. A branch's head is always kept. The policies travel with the repo on push and
    fetch (the last set wins)."""
    r = api.retention_set(c.home, target, last=last, hourly=hourly, daily=daily, weekly=weekly,
                          monthly=monthly, yearly=yearly, within=within, keep_tags=keep_tags,
                          clear=clear)  # fmt: skip
    _render_retention(r, as_json)


@click.command()
@click.argument("repo", shell_complete=complete.revspec)
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--all-versions",
    is_flag=True,
    help="Erase every content the paths ever had, not only the named version's.",
)
@click.option("-m", "--message", "why", default="", help="Why (kept in the erasure record).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--remote",
    default=None,
    help="Then push the erasure record to this remote and run its gc, so the bytes leave "
    "its packs too (waits for the grace).",
)
@click.option("--grace", default=None, help="With --remote: the remote gc's grace (as gc's).")
@json_opt
@pass_ctx
def erase(
    c: Ctx, repo: str, paths: tuple[str, ...], all_versions: bool, why: str, yes: bool,
    remote: str | None, grace: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Remove the contents of PATHs (files, or every file below a directory) from every
    version of REPO, without rewriting history: commit and tree ids, names and sizes stay,
    the bytes leave the store's segment files (a gc runs). By default the contents erased are
    the ones PATHs have in REPO (its default branch) or REPO@REF; --all-versions erases every
    content PATHs had in any version. The same bytes held by a file not erased (another path,
    another repo, a later commit) stay. Reading an erased file is an error naming the
    erasure (exit 35; EIO in a mount). An erasure record (who, when, why, which paths and
    file ids) is kept (`mlgitfs erasures`) and goes with the next push; other clones learn
    it when they fetch. Remotes keep the bytes until their next `gc --remote`, or, with
    --remote NAME, the record is pushed and that remote's gc runs now."""
    if not yes:
        click.confirm(f"erase the contents of {', '.join(paths)} from every version of "
                      f"{repo}? This cannot be undone", abort=True)  # fmt: skip
    r = api.erase(c.home, repo, list(paths), all_versions, why, remote, grace)
    if as_json:
        render.emit_json(r)
        return
    click.echo(f"erasure {r.erasure}: {len(r.files)} file contents of {r.repo} erased from "
               f"{r.versions} versions")  # fmt: skip
    for path, fid in r.files:
        click.echo(f"erased\t{fid[:12]}\t{path}")
    if r.gc is not None:
        gcrender.gc(r.gc, False)
        if r.gc.segments_busy:
            render.message("mlgitfs: warning: segments busy: run 'mlgitfs gc --threshold 1' "
                           "once writers are done to remove the last bytes")  # fmt: skip
    if r.remote_gc is not None:
        gcrender.gc_remote(r.remote_gc, False)


@click.command()
@json_opt
@pass_ctx
def erasures(c: Ctx, as_json: bool) -> None:
    """List the erasure records of the store, oldest first: number, when (UTC), who, repo,
    paths, why; --json adds the erased file ids."""
    items = api.erasures_list(c.home)
    if as_json:
        render.emit_json(items)
        return
    for r in items:
        when = dt.datetime.fromtimestamp(r.time_ns // 1_000_000_000, dt.UTC)
        click.echo(f"{r.erasure}\t{when:%Y-%m-%dT%H:%M:%SZ}\t{r.who}\t{r.repo}\t"
                   f"{', '.join(r.paths)}\t{r.why}")  # fmt: skip


COMMANDS: list[click.Command] = [reflog, retention, erase, erasures]
