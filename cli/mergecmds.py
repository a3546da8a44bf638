"""Merge commands: merge, merge-base, reset, revert, cherry-pick (docs/merge.md)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import click

from mlgitfs import api
from mlgitfs.errors import MergeConflict
from mlgitfs.model.conflicts import Conflict, SideInfo

from . import render
from .mountmergecmds import mount_result
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
into_opt = click.option("--into", help="The branch to change, REPO@BRANCH (default REPO@main).")
merge_into_opt = click.option(
    "--into",
    help="The branch to change, REPO@BRANCH (default REPO@main), or a writable mount's "
    "MOUNTPOINT (conflicts then stay in the mount to resolve).",
)
strategy_opt = click.option(
    "--strategy",
    type=click.Choice(["ours", "theirs"]),
    help="How to resolve conflicts that no rule of .mlgitfs/merge.toml covers.",
)
dry_opt = click.option("--dry-run", is_flag=True, help="Report what would happen; change nothing.")


def _side(s: SideInfo | None) -> str:
    if s is None:
        return "-"
    ident = s.id if s.kind == "symlink" else s.id[:12]
    return f"{s.kind} {ident} {render.human(s.size) if s.kind == 'file' else s.size} {s.mode:o}"


def conflicts(items: Sequence[Conflict], as_json: bool) -> None:
    """Each conflict on stdout: path, kind and the base, ours and theirs sides."""
    if as_json:
        render.emit_json({"status": "conflicts", "conflicts": list(items)})
        return
    for c in items:
        click.echo(f"C  {c.path}  ({c.kind.value}{': ' + c.detail if c.detail else ''})")
        for name, side in (("base", c.base), ("ours", c.ours), ("theirs", c.theirs)):
            click.echo(f"     {name:<6} {_side(side)}")


def _run(as_json: bool, call: Callable[[], api.MergeResult]) -> None:
    try:
        r = call()
    except MergeConflict as exc:
        conflicts(exc.conflicts, as_json)
        raise
    if as_json:
        render.emit_json(r)
        return
    render.hook_results(r.hooks)
    for old, new in r.renames:
        click.echo(f"R  {new}  (from {old}, followed)")
    for item in r.resolved:
        click.echo(f"S  {item.path}  ({item.kind} resolved: {item.strategy})")
    target = f"{r.repo}@{r.branch}"
    if r.status == "up to date":
        render.message(f"{target} is up to date with {r.source}")
    elif r.dry_run:
        render.message(f"{target}: {r.status} would be made (dry run, nothing changed)")
    elif r.status == "fast-forward":
        render.message(f"{target}: fast-forward {r.ours[:12]} -> {r.commit[:12]}")
    else:
        render.message(f"{target}: {r.status} {r.commit[:12]} (was {r.ours[:12]})")


@click.command()
@click.argument("source", required=False)
@merge_into_opt
@click.option("-m", "--message", help="The commit message.  [default: one naming the change]")
@click.option("--ff-only", is_flag=True, help="Refuse unless it is a fast-forward.")
@click.option("--no-ff", is_flag=True, help="A merge commit even when a fast-forward would do.")
@strategy_opt
@dry_opt
@render.no_verify_opt
@click.option(
    "--abort", is_flag=True, help="Undo the merge in progress in a mount (SOURCE: the mount)."
)
@json_opt
@pass_ctx
def merge(
    c: Ctx,
    source: str | None,
    into: str | None,
    message: str | None,
    ff_only: bool,
    no_ff: bool,
    strategy: str | None,
    dry_run: bool,
    no_verify: bool,
    abort: bool,
    as_json: bool,
) -> None:
    """Merge SOURCE (REPO@REF: a branch, tag, commit or origin/main) into a branch, or into
    a writable mount.

    Into a branch: a fast-forward when the branch has nothing SOURCE lacks (unless --no-ff),
    else a three-way merge against their merge base committed with two parents, the branch
    moved by compare-and-swap. Conflicts are listed per path (kind; base, ours and theirs: id,
    size, mode) on stdout, exit 23, and change nothing. --ff-only refuses anything else
    (exit 12). The branch's pre-merge and pre-commit hooks gate the result (a refusal exits
    34).

    Into a MOUNTPOINT: the mount's tree with its uncommitted changes is merged with SOURCE;
    the clean part goes into the mount, conflicted paths stay (`U` in status) for `mlgitfs
    resolve`, and `commit` concludes the merge with two parents. `merge --abort MOUNTPOINT`
    puts the mount back as it was."""
    if abort:
        where = into or source
        mount_result(api.merge_abort(c.home, Path(where) if where else None), as_json)
        return
    if source is None:
        raise click.UsageError("name the SOURCE to merge (REPO@REF)")
    if api.is_mountpoint(into):
        assert into is not None
        if message or ff_only or no_ff or dry_run:
            raise click.UsageError(
                "-m, --ff-only, --no-ff and --dry-run are for merges into a branch; a merge "
                "into a mount is concluded by `mlgitfs commit -m ...`"
            )
        mount_result(api.merge_into_mount(c.home, source, Path(into), strategy), as_json)
        return
    _run(
        as_json,
        lambda: api.merge(
            c.home, source, into, message, ff_only, no_ff, strategy, dry_run, no_verify
        ),
    )


@click.command("merge-base")
@click.argument("a")
@click.argument("b")
@click.option("--all", "all_", is_flag=True, help="Every best common ancestor (criss-cross).")
@json_opt
@pass_ctx
def merge_base(c: Ctx, a: str, b: str, all_: bool, as_json: bool) -> None:
    """The commit a merge of A and B is made against (--all: every best common ancestor of
    a criss-cross history, the chosen one first). Exit 1 when they share no history."""
    r = api.merge_base(c.home, a, b)
    if as_json:
        render.emit_json(r)
    else:
        for oid in r.bases if all_ else r.bases[:1]:
            click.echo(oid)
    if not r.bases:
        raise click.exceptions.Exit(1)


@click.command()
@click.argument("target")
@click.argument("revspec")
@click.option("--force", is_flag=True, help="Even when commits no other ref holds are left.")
@json_opt
@pass_ctx
def reset(c: Ctx, target: str, revspec: str, force: bool, as_json: bool) -> None:
    """Move branch TARGET (REPO@BRANCH) to REVSPEC.

    Refused (exit 22) when the commits it leaves are held by no other branch, tag or
    remote-tracking ref, unless --force; always refused while its checkout has uncommitted
    changes (exit 22) or a writable mount of it is live (exit 11)."""
    r = api.reset(c.home, target, revspec, force)
    if as_json:
        render.emit_json(r)
        return
    note = " (the commits it left are held by no ref now)" if r.dropped else ""
    render.message(f"{r.repo}@{r.branch}: {r.old[:12]} -> {r.new[:12]}{note}")


def _pick(name: str, doc: str, fn: Callable[..., api.MergeResult]) -> click.Command:
    @click.command(name, help=doc)
    @click.argument("revspec")
    @into_opt
    @click.option("-m", "--message", help="The commit message.  [default: one naming the change]")
    @strategy_opt
    @dry_opt
    @json_opt
    @pass_ctx
    def cmd(
        c: Ctx,
        revspec: str,
        into: str | None,
        message: str | None,
        strategy: str | None,
        dry_run: bool,
        as_json: bool,
    ) -> None:
        _run(as_json, lambda: fn(c.home, revspec, into, message, strategy, dry_run))

    return cmd


revert = _pick(
    "revert",
    "A new commit on a branch that undoes REVSPEC's changes against its first parent (a "
    "three-way merge: later changes to the same paths conflict).",
    lambda *a: api.revert(*a),  # looked up when run: importing the CLI imports no verb
)
cherry_pick = _pick(
    "cherry-pick",
    "A new commit on a branch that makes REVSPEC's changes again (against its first parent).",
    lambda *a: api.cherry_pick(*a),
)


@click.command("merge-table")
@click.argument("base", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("ours", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("theirs", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key", "-k", multiple=True, help="A key column (repeat; none: the whole row).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the merged table here.  [default: not written]",
)
@click.option(
    "--conflicts",
    "conflicts_table",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write conflicts here as a CSV table (key, column, base, ours, theirs).",
)
@click.option("--name", help="The name whose extension says the format.  [default: OURS']")
@click.option("--no-base", is_flag=True, help="BASE is ignored: both sides added the table.")
@json_opt
def merge_table(
    base: Path,
    ours: Path,
    theirs: Path,
    key: tuple[str, ...],
    output: Path | None,
    conflicts_table: Path | None,
    name: str | None,
    no_base: bool,
    as_json: bool,
) -> None:
    """Merge two versions of a table file row by row against BASE, outside any store.

    The `rows` strategy of docs/merge.md on plain files (.csv, .tsv, .jsonl, .ndjson,
    .parquet): rows matched by --key, ours' order and dialect kept. Conflicts are listed
    by key and column (and written with --conflicts), exit 23, and nothing is written."""
    r = api.merge_table_files(
        None if no_base else base, ours, theirs, key, output, conflicts_table, name
    )
    if as_json:
        render.emit_json(r)
    else:
        for c in r.conflicts:
            click.echo(f"C  {c}")
        if r.merged:
            where = f" -> {r.output}" if r.output else ""
            render.message(f"merged: {r.rows_changed} rows changed or added in ours{where}")
    if not r.merged:
        raise click.exceptions.Exit(MergeConflict.exit_code)


COMMANDS: list[click.Command] = [merge, merge_base, reset, revert, cherry_pick, merge_table]
