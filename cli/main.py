"""The `mlgitfs` command: click parsing, one call into mlgitfs.api per command, rendering.

No logic lives here. Errors are mapped to messages and exit codes in `main` alone; data goes
to stdout, progress and messages to stderr.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from mlgitfs import api
from mlgitfs.errors import MlgitError

from . import render
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


class _Group(click.Group):
    """Maps mlgitfs errors to a message on stderr and their exit code: the one place that does."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except MlgitError as exc:
            if isinstance(ctx.obj, Ctx) and ctx.obj.verbose:
                logging.getLogger("mlgitfs").exception("failed")
            click.echo(f"mlgitfs: error: {exc.message}", err=True)
            ctx.exit(exc.exit_code)
        except BrokenPipeError:
            ctx.exit(0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    envvar="MLGITFS_HOME",
    help="Store directory (default $MLGITFS_HOME or the XDG data dir).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log details and show tracebacks.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars.")
@click.version_option(package_name="mlgitfs")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, verbose: bool, quiet: bool) -> None:
    """Version ML datasets, labels and models; mount any version as a directory."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = Ctx(home, verbose, quiet)


@cli.command()
@click.argument("name")
@click.option("--kind", type=click.Choice(["dataset", "labels", "model"]), required=True)
@click.option("--mutability", type=click.Choice(["strict", "flexible", "mutable"]), required=True)
@click.option("--category", "categories", multiple=True, help="A category (repeatable).")
@pass_ctx
def init(c: Ctx, name: str, kind: str, mutability: str, categories: tuple[str, ...]) -> None:
    """Create a repo: a dataset, labels set or model. Kind and mutability never change."""
    r = api.init(c.home, name, kind, mutability, list(categories))
    render.message(f"created {r.kind} repo {r.name} ({r.mutability})")


@cli.command()
@json_opt
@pass_ctx
def repos(c: Ctx, as_json: bool) -> None:
    """List the repos of the store."""
    render.repos(api.repos(c.home), as_json)


@cli.command("import")
@click.argument("target")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-m", "--message", required=True)
@click.option("--meta", multiple=True, help="KEY=VALUE metadata (repeatable).")
@click.option("--input", "inputs", multiple=True, help="REPO@REF this version was made from.")
@click.option("--allow-empty", is_flag=True, help="Commit even when nothing changed.")
@json_opt
@pass_ctx
def import_(
    c: Ctx,
    target: str,
    source: Path,
    message: str,
    meta: tuple[str, ...],
    inputs: tuple[str, ...],
    allow_empty: bool,
    as_json: bool,
) -> None:
    """Import directory SOURCE as a new commit on TARGET (NAME[@BRANCH], default branch main)."""
    with render.progress(c, "importing") as bar:
        r = api.import_dir(
            c.home, target, source, message, list(meta), list(inputs), bar, allow_empty
        )
    render.import_result(r, as_json)


@cli.command()
@click.argument("revspec")
@click.argument("dest", type=click.Path(path_type=Path))
@pass_ctx
def export(c: Ctx, revspec: str, dest: Path) -> None:
    """Write a version (or a path of it) into a plain directory DEST."""
    with render.progress(c, "exporting") as bar:
        r = api.export(c.home, revspec, dest, bar)
    render.message(
        f"exported {r.files} files, {r.dirs} directories, {r.symlinks} symlinks "
        f"({render.human(r.bytes)}) to {dest}"
    )


@cli.command()
@click.argument("revspec")
@click.option("--path", help="Only commits that changed this path.")
@click.option("-n", "--max-count", "limit", type=int)
@json_opt
@pass_ctx
def log(c: Ctx, revspec: str, path: str | None, limit: int | None, as_json: bool) -> None:
    """Show the history of a branch or commit."""
    render.log(api.log(c.home, revspec, path, limit), as_json)


@cli.command()
@click.argument("revspec")
@json_opt
@pass_ctx
def show(c: Ctx, revspec: str, as_json: bool) -> None:
    """Show a commit with its metadata and inputs."""
    render.show(api.show(c.home, revspec), as_json)


@cli.command()
@click.argument("revspec")
@click.option("-R", "--recursive", is_flag=True)
@json_opt
@pass_ctx
def ls(c: Ctx, revspec: str, recursive: bool, as_json: bool) -> None:
    """List a directory of a version (REPO@REF[:PATH])."""
    render.ls(api.ls(c.home, revspec, recursive), as_json)


@cli.command()
@click.argument("revspec")
@pass_ctx
def cat(c: Ctx, revspec: str) -> None:
    """Write a file of a version (REPO@REF:PATH) to stdout."""
    out = sys.stdout.buffer
    for block in api.cat(c.home, revspec):
        out.write(block)
    out.flush()


@cli.command()
@click.argument("a")
@click.argument("b")
@click.argument("paths", nargs=-1)
@click.option("--stat", is_flag=True, help="Only counts and sizes.")
@json_opt
@pass_ctx
def diff(c: Ctx, a: str, b: str, paths: tuple[str, ...], stat: bool, as_json: bool) -> None:
    """Files added, removed and modified between two versions."""
    render.diff(api.diff(c.home, a, b, list(paths)), stat, as_json)


@cli.command()
@click.argument("target")
@click.argument("start", required=False)
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
    branches of REPO (REPO or -l), or delete one (-d)."""
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


@cli.command()
@click.argument("target")
@click.argument("revspec", required=False)
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


@cli.command()
@click.argument("revspec")
@click.option("--direction", type=click.Choice(["up", "down", "both"]), default="both")
@json_opt
@pass_ctx
def lineage(c: Ctx, revspec: str, direction: str, as_json: bool) -> None:
    """The graph of inputs: what a version was made from (up) and what was made from it (down)."""
    render.lineage(api.lineage_of(c.home, revspec, direction), as_json)


@cli.command()
@click.argument("key", required=False)
@click.argument("value", required=False)
@json_opt
@pass_ctx
def config(c: Ctx, key: str | None, value: str | None, as_json: bool) -> None:
    """Show settings, or set KEY to VALUE (cache-size: the chunk cache budget, e.g. 20G)."""
    items = api.config(c.home, key, value)
    if as_json:
        render.emit_json(items)
        return
    for item in items:
        click.echo(f"{item.key}\t{item.value or '(unset)'}")


@cli.command()
@click.argument("repo", required=False)
@click.option(
    "--remote",
    "check_remote",
    is_flag=True,
    help="Also fetch and check chunks that are only on a remote.",
)
@json_opt
@pass_ctx
def fsck(c: Ctx, repo: str | None, check_remote: bool, as_json: bool) -> None:
    """Check every object reachable from every ref. Exit 1 when damage is found."""
    report = api.fsck(c.home, repo, check_remote)
    render.fsck(report, as_json)
    if not report.clean:
        sys.exit(1)


def _register_extensions() -> None:
    """Commands of later layers (mounts, remotes) live in their own modules."""
    from . import extra

    extra.register(cli)


_register_extensions()


def main() -> None:
    api.keep_freed_memory()  # a process-wide policy: this program's, not the library's
    cli(prog_name="mlgitfs")


if __name__ == "__main__":
    main()
