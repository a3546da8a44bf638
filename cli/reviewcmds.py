"""Commands that read history and versions: log, blame, show, ls, cat, diff."""

from __future__ import annotations

import csv
import sys

import click

from mlgitfs import api

from . import complete, render
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.command()
@click.argument("revspec", shell_complete=complete.revspec)
@click.option(
    "--path",
    "paths",
    multiple=True,
    help="Only commits that changed this path (vs their first parent); repeat: any of them.",
)
@click.option("--grep", help="Only commits whose message matches this regular expression.")
@click.option("--author", help="Only commits whose author matches this regular expression.")
@click.option("--since", help="Only commits made at or after this ISO 8601 date or time (UTC).")
@click.option("--until", help="Only commits made at or before this ISO 8601 date or time (UTC).")
@click.option(
    "--meta", "meta", multiple=True, help="Only commits with this KEY=VALUE metadata; repeatable."
)
@click.option(
    "--input",
    "inputs",
    multiple=True,
    shell_complete=complete.revspec,
    help="Only versions made from REPO@REF (through inputs, transitively); repeatable.",
)
@click.option(
    "-n",
    "--max-count",
    "limit",
    type=click.IntRange(min=0),
    help="Show at most N commits (0: none).  [default: all]",
)
@click.option("--oneline", is_flag=True, help="One line per commit: short id, refs, subject.")
@json_opt
@pass_ctx
def log(
    c: Ctx,
    revspec: str,
    paths: tuple[str, ...],
    grep: str | None,
    author: str | None,
    since: str | None,
    until: str | None,
    meta: tuple[str, ...],
    inputs: tuple[str, ...],
    limit: int | None,
    oneline: bool,
    as_json: bool,
) -> None:
    """Show the history of a branch or commit, newest first, with the refs naming each
    commit (origin/main for a remote-tracking ref).

    REVSPEC is REPO[@REF][:PATH] or a range REPO@A..B (commits reachable from B and not
    from A). The filters combine: a commit is shown when it passes all of them. --path
    reads the commit-graph index, so it costs about the commits that touched the path."""
    items = api.log(
        c.home,
        revspec,
        list(paths),
        limit,
        grep=grep,
        author=author,
        since=since,
        until=until,
        meta=list(meta),
        inputs=list(inputs),
    )
    render.log(items, as_json, oneline)


@click.command()
@click.argument("revspec", shell_complete=complete.revspec)
@click.option(
    "--key",
    "key",
    multiple=True,
    help="A table's key column (repeat for a composite key).  [default: the key of the "
    "path's rows rule in .mlgitfs/merge.toml]",
)
@click.option("--cells", is_flag=True, help="A table: each cell too, with the commit that set it.")
@click.option(
    "--row",
    "rows",
    multiple=True,
    metavar="VALUES",
    help="A table: only the row with this key (a composite key's values joined by commas, "
    "quoted as in CSV); repeat for several. The walk stops once each has its commit.",
)
@click.option(
    "--chunks",
    is_flag=True,
    help="A table file: blame its content-defined chunks (byte ranges), not its rows.",
)
@json_opt
@pass_ctx
def blame(
    c: Ctx,
    revspec: str,
    key: tuple[str, ...],
    cells: bool,
    rows: tuple[str, ...],
    chunks: bool,
    as_json: bool,
) -> None:
    """Show who last changed what. For a directory (REPO@REF[:DIR]), each entry with the
    commit that last changed it; for a CSV, TSV, JSONL or Parquet file, each row, by key,
    with the commit that last set it (added it or changed a cell); for any other file (or
    a table with --chunks), each content-defined chunk, a byte range START-END, with the
    commit that introduced it. Columns: short id, date, author, then the name, the key or
    the range (and the old path after an exact rename).

    "Last changed" is what `log -n 1 --path PATH` shows; one walk over the commit-graph
    index answers every entry or row. With --json: kind ("dir" or "rows"), entries (name,
    kind, commit, author, time_ns, subject, path) or key_columns and rows (key, commit,
    author, time_ns, subject, path: where it was in that commit; with --cells, cells: column,
    commit, author, time_ns, path) or chunks (start, end, chunk id, commit, author, time_ns,
    subject, path)."""
    only = [next(csv.reader([r])) if r else [""] for r in rows] or None
    render.blame(api.blame(c.home, revspec, list(key), cells, rows=only, chunks=chunks), as_json)


@click.command()
@click.argument("revspec", shell_complete=complete.revspec)
@json_opt
@pass_ctx
def show(c: Ctx, revspec: str, as_json: bool) -> None:
    """Show a commit with its metadata and inputs."""
    render.show(api.show(c.home, revspec), as_json)


@click.command()
@click.argument("revspec", shell_complete=complete.revspec)
@click.option("-R", "--recursive", is_flag=True, help="List subdirectories too, depth first.")
@json_opt
@pass_ctx
def ls(c: Ctx, revspec: str, recursive: bool, as_json: bool) -> None:
    """List a directory of a version (REPO@REF[:PATH]): kind and mode, size, mtime, name.

    With --json, each entry has path, kind (file, dir, symlink), mode, size (bytes of a
    file, length of a symlink's target, 0 for a directory), mtime_ns, id (content id; the
    target of a symlink) and entries (a directory's number of entries, else null)."""
    render.ls(api.ls(c.home, revspec, recursive), as_json)


@click.command()
@click.argument("revspec", shell_complete=complete.revspec)
@pass_ctx
def cat(c: Ctx, revspec: str) -> None:
    """Write a file of a version (REPO@REF:PATH) to stdout."""
    out = sys.stdout.buffer
    for block in api.cat(c.home, revspec):
        out.write(block)
    out.flush()


@click.command()
@click.argument("a", shell_complete=complete.revspec)
@click.argument("b", shell_complete=complete.revspec)
@click.argument("paths", nargs=-1)
@click.option("--stat", is_flag=True, help="Only counts and sizes (with --rows: per table).")
@click.option("--rows", is_flag=True, help="Tables (CSV, TSV, JSONL, Parquet) row by row.")
@click.option(
    "--key",
    "key",
    multiple=True,
    help="With --rows: a key column (repeat for a compound key).  [default: the key of the "
    "table's rows rule in .mlgitfs/merge.toml]",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "csv"]),
    default="text",
    help="With --rows: csv writes one line per cell (table, key, change, column, before, "
    "after) for a spreadsheet.",
)
@json_opt
@pass_ctx
def diff(
    c: Ctx,
    a: str,
    b: str,
    paths: tuple[str, ...],
    stat: bool,
    rows: bool,
    key: tuple[str, ...],
    fmt: str,
    as_json: bool,
) -> None:
    """Files added, removed, modified and renamed between versions A and B, with sizes;
    PATHs (inside the versions) keep only changes under them.

    Identical subtrees and pages are skipped by id, so the cost follows what differs. With
    --json: a, b (commit ids), items (change, path, old_size, new_size, old_path) and the
    counts added, removed, modified.

    With --rows: each table that differs, row by row by key: rows added (+), removed (-)
    and changed (~, each changed cell as column: before -> after), and columns added or
    removed from its header. The key is --key, else the table's rows rule's key. A table
    renamed exactly has no row changes. With --json: a, b and tables (path, change,
    old_path, key_columns, columns_added, columns_removed, added, removed, changed, rows:
    change, key, cells: column, before, after; null: no such cell)."""
    if rows:
        render.diff_rows(api.diff_rows(c.home, a, b, list(paths), key), stat, as_json, fmt)
        return
    if key or fmt != "text":
        raise click.UsageError("--key and --format go with --rows")
    render.diff(api.diff(c.home, a, b, list(paths)), stat, as_json)


COMMANDS = [log, blame, show, ls, cat, diff]
