"""Rendering of api results: text for people, JSON for programs, progress bars on stderr."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mlgitfs import api

if TYPE_CHECKING:  # types only: a command imports the library parts it runs, no more
    from rich.console import Console

    from mlgitfs.repo.gate import HookResult
    from mlgitfs.repo.lineage import LineageNode


@dataclass
class Ctx:
    """The global options; set before the subcommand or after it (`mlgitfs log X -v`)."""

    home: Path | None
    verbose: bool
    quiet: bool


def _stderr() -> Console:
    from rich.console import Console  # imported when drawn: it is a third of the start-up time

    return Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")))


def message(text: str) -> None:
    click.echo(text, err=True)


def emit_json(value: Any) -> None:
    def default(o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return dataclasses.asdict(o)
        if isinstance(o, bytes):
            return o.hex()
        raise TypeError(type(o).__name__)

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    click.echo(json.dumps(value, default=default, indent=None))


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def when(ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ns / 1e9))


class _Bar:
    """A progress callback drawing one rich task: done/total in the operation's unit, a
    percentage, bytes, a byte rate and the time left once the total is known."""

    def __init__(self, bar: Any, task: Any) -> None:
        self.bar = bar
        self.task = task
        self.t0 = time.monotonic()
        self.total_bytes: int | None = None

    def __call__(self, done: int, nbytes: int) -> None:
        if not nbytes:  # an operation that counts no bytes (fsck): items alone
            self.bar.update(self.task, completed=done)
            return
        rate = nbytes / max(time.monotonic() - self.t0, 1e-3)
        of = f" of {human(self.total_bytes)}" if self.total_bytes else ""
        self.bar.update(self.task, completed=done, size=f"{human(nbytes)}{of}",
                        rate=f"{human(rate)}/s")  # fmt: skip

    def total(self, items: int | None, nbytes: int | None) -> None:
        self.total_bytes = nbytes
        self.bar.update(self.task, total=items)


@contextmanager
def progress(c: Ctx, what: str, unit: str) -> Iterator[Callable[[int, int], None] | None]:
    """A progress callback (done in `unit`, bytes) drawing on stderr, or None when quiet or
    not a terminal. Told the totals (mlgitfs.progress.Totals), it shows how far and how long."""
    if c.quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn(what),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn(unit),
        TaskProgressColumn(),
        TextColumn("{task.fields[size]} {task.fields[rate]}"),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=_stderr(),
        transient=True,
    )
    task = bar.add_task(what, total=None, size="", rate="")
    with bar:
        yield _Bar(bar, task)


def repos(items: list[api.RepoResult], as_json: bool) -> None:
    if as_json:
        emit_json(items)
        return
    for r in items:
        cats = f" [{', '.join(r.categories)}]" if r.categories else ""
        click.echo(
            f"{r.name}\t{r.kind}\t{r.mutability}\t{r.branches} branches\t{r.tags} tags{cats}"
        )


no_verify_opt = click.option(
    "--no-verify",
    is_flag=True,
    help="Skip the branch's hooks and checks (refused, exit 15, where allow_skip = false).",
)

inputs_from_opt = click.option(
    "--inputs-from",
    metavar="NAME",
    help="Attach recording NAME (`mlgitfs run --record NAME`): the versions it read become "
    "inputs, its files read the version's read set (`lineage --files`).",
)


def hook_results(results: Sequence[HookResult]) -> None:
    """One line per hook or check on stderr; a failed post-commit hook as a warning."""
    for h in results:
        cached = ", cached" if h.cached and not h.attested else ""
        attested = f", attested by key {h.attested[:16]}" if h.attested else ""
        message(f"{h.event} {h.kind} {h.name}: {h.status}{cached}{attested}")
        if not h.ok or h.output.startswith("skipped"):
            for line in h.output.splitlines()[-20:]:
                message(f"  {line}")


def import_result(r: api.ImportResult, as_json: bool) -> None:
    if as_json:
        emit_json(r)
        return
    hook_results(r.hooks)
    click.echo(r.commit.id)
    if not r.changed:
        message(
            f"nothing changed: {r.repo}@{r.branch} stays at {r.commit.id[:12]} "
            f"({r.files} files checked, {r.files_read} read); --allow-empty commits anyway"
        )
        return
    message(
        f"{r.repo}@{r.branch} {r.commit.id[:12]}: {r.files} files ({human(r.bytes)}), "
        f"{r.files_read} read, {human(r.bytes_stored)} new in the store, {r.seconds:.2f}s"
    )


def _commit_text(ci: api.CommitInfo) -> None:
    refs = f" ({', '.join(ci.refs)})" if ci.refs else ""
    click.echo(f"commit {ci.id}{refs}")
    if len(ci.parents) > 1:
        click.echo("merge " + " ".join(p[:12] for p in ci.parents))
    click.echo(f"author {ci.author}")
    click.echo(f"date   {when(ci.time_ns)}")
    for k, v in ci.meta.items():
        click.echo(f"meta   {k}={v}")
    for repo, cid in ci.inputs:
        click.echo(f"input  {repo}@{cid[:12]}")
    click.echo("")
    for line in ci.message.splitlines() or [""]:
        click.echo("    " + line)


def log(items: list[api.CommitInfo], as_json: bool, oneline: bool = False) -> None:
    if as_json:
        emit_json(items)
        return
    if oneline:
        for ci in items:
            refs = f" ({', '.join(ci.refs)})" if ci.refs else ""
            subject = ci.message.splitlines()[0] if ci.message else ""
            click.echo(f"{ci.id[:12]}{refs} {subject}")
        return
    for i, ci in enumerate(items):
        if i:
            click.echo("")
        _commit_text(ci)


def blame(r: api.BlameResult, as_json: bool) -> None:
    if as_json:
        emit_json(r)
        return
    authors = [e.author for e in r.entries] + [row.author for row in r.rows]
    authors += [c.author for c in r.chunks]
    width = max(map(len, authors), default=0)
    for e in r.entries:
        mark = "/" if e.kind == "dir" else ""
        moved = "" if e.path == e.name or e.path.endswith("/" + e.name) else f"  (was {e.path})"
        click.echo(
            f"{e.commit[:12]}  {when(e.time_ns)}  {e.author:<{width}}  {e.name}{mark}{moved}"
        )
    for ch in r.chunks:
        moved = f"  (was {ch.path})" if ch.path != r.path else ""
        click.echo(
            f"{ch.commit[:12]}  {when(ch.time_ns)}  {ch.author:<{width}}  "
            f"{ch.start}-{ch.end}  ({ch.end - ch.start} bytes){moved}"
        )
    for row in r.rows:
        moved = f"  (was in {row.path})" if row.path != r.path else ""
        key = ",".join(row.key)
        click.echo(f"{row.commit[:12]}  {when(row.time_ns)}  {row.author:<{width}}  {key}{moved}")
        for cell in row.cells:
            click.echo(
                f"{cell.commit[:12]}  {when(cell.time_ns)}  {cell.author:<{width}}  "
                f"{key}.{cell.column}"
            )


def show(ci: api.CommitInfo, as_json: bool) -> None:
    if as_json:
        emit_json(ci)
    else:
        _commit_text(ci)


def ls(items: Iterable[api.LsEntry], as_json: bool) -> None:
    if as_json:
        emit_json(list(items))
        return
    for e in items:
        mark = "/" if e.kind == "dir" else ""
        target = f" -> {e.id}" if e.kind == "symlink" else ""
        size = "-" if e.kind == "dir" else str(e.size)
        click.echo(
            f"{e.kind[0]}{e.mode:04o}  {size:>12}  {when(e.mtime_ns)}  {e.path}{mark}{target}"
        )


CHANGE_SIGN = {"added": "A", "modified": "M", "renamed": "R", "deleted": "D"}


def diff(d: api.DiffResult, stat: bool, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "a": d.a,
                "b": d.b,
                "items": d.items,
                "added": d.added,
                "modified": d.modified,
                "renamed": d.renamed,
                "deleted": d.deleted,
            }
        )
        return
    if not stat:
        for i in d.items:
            sizes = {
                "added": human(i.new_size),
                "deleted": human(i.old_size),
                "modified": f"{human(i.old_size)} -> {human(i.new_size)}",
                "renamed": f"from {i.old_path}",
            }[i.change]
            click.echo(f"{CHANGE_SIGN[i.change]}  {i.path}  ({sizes})")
    grow = sum(i.new_size - i.old_size for i in d.items)
    click.echo(
        f"{d.added} added, {d.modified} modified, {d.renamed} renamed, {d.deleted} deleted, "
        f"{'+' if grow >= 0 else '-'}{human(abs(grow))}"
    )


def diff_rows(d: api.RowDiffResult, stat: bool, as_json: bool, fmt: str) -> None:
    if as_json:
        emit_json(
            {
                "a": d.a,
                "b": d.b,
                "tables": [
                    dict(dataclasses.asdict(t), added=t.added, removed=t.removed, changed=t.changed)
                    for t in d.tables
                ],
            }
        )
        return
    if fmt == "csv":
        sys.stdout.buffer.write(d.to_csv())
        sys.stdout.buffer.flush()
        return
    for t in d.tables:
        moved = f" (from {t.old_path})" if t.old_path else ""
        counts = f"{t.added} added, {t.removed} removed, {t.changed} changed"
        click.echo(f"{CHANGE_SIGN[t.change]}  {t.path}{moved}: {counts}")
        if t.columns_added or t.columns_removed:
            cols = [f"+{c}" for c in t.columns_added] + [f"-{c}" for c in t.columns_removed]
            click.echo(f"   columns {' '.join(cols)}")
        if stat:
            continue
        for r in t.rows:
            key = ", ".join(r.key)
            if r.change == "changed":
                click.echo(f"~  {key}")
                for c in r.cells:
                    click.echo(f"     {c.column}: {_cell(c.before)} -> {_cell(c.after)}")
            else:
                sign = "+" if r.change == "added" else "-"
                cells = ", ".join(
                    f"{c.column}={_cell(c.after if sign == '+' else c.before)}" for c in r.cells
                )
                click.echo(f"{sign}  {key}  {cells}")


def _cell(v: str | None) -> str:
    return "(none)" if v is None else repr(v)


def refs(items: list[api.RefResult], as_json: bool) -> None:
    if as_json:
        emit_json(items)
        return
    for r in items:
        click.echo(f"{r.name}\t{r.commit[:12]}")


def _tree(node: LineageNode, depth: int, arrow: str) -> None:
    names = f" ({', '.join(node.refs)})" if node.refs else ""
    lead = "  " * depth + (arrow + " " if depth else "")
    first = node.message.splitlines()[0] if node.message else ""
    click.echo(f"{lead}{node.repo}@{node.commit.hex()[:12]}{names}  {first}")
    for child in node.children:
        _tree(child, depth + 1, arrow)


def _node_json(node: LineageNode, edges: str) -> dict[str, Any]:
    """A node with its neighbours under `edges`: "inputs" upstream (what it was made from),
    "used_by" downstream (what was made from it)."""
    return {
        "repo": node.repo,
        "commit": node.commit.hex(),
        "message": node.message,
        "refs": list(node.refs),
        edges: [_node_json(c, edges) for c in node.children],
    }


def lineage(items: list[api.LineageResult], as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                r.direction: _node_json(
                    r.root, "inputs" if r.direction == "upstream" else "used_by"
                )
                for r in items
            }
        )
        return
    for r in items:
        click.echo(f"{r.direction}:")
        _tree(r.root, 1, "<-" if r.direction == "upstream" else "->")


def lineage_files(r: api.LineageFilesResult, as_json: bool) -> None:
    if as_json:
        emit_json(r)
        return
    rs = r.readset
    if rs is None:
        message(f"{r.repo}@{r.commit[:12]} has no read set attached (--inputs-from)")
        return
    click.echo(f"{r.repo}@{r.commit[:12]} read by {rs.name}: {rs.files} files")
    for i in rs.inputs:
        click.echo(f"{i.repo}@{i.commit.hex()[:12]}: {len(i.files)} files")
        for f in i.files:
            click.echo(f"  {f.path}\t{f.bytes_read}")
