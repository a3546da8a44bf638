"""The `mlgitfs` command: click parsing, one call into mlgitfs.api per command, rendering.

No logic lives here. Errors are mapped to messages and exit codes in `report` alone; data
goes to stdout, progress and messages to stderr.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from mlgitfs import api
from mlgitfs.errors import MlgitError

from . import complete, gcrender, render
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


def report(exc: BaseException, verbose: bool) -> int:
    """Print what went wrong on stderr and return the exit code: the one place that maps
    errors to messages and codes. Tracebacks only with -v."""
    if isinstance(exc, KeyboardInterrupt):
        click.echo("mlgitfs: interrupted; what the command had half made was undone", err=True)
        return INTERRUPTED
    if verbose:
        logging.getLogger("mlgitfs").error("failed", exc_info=exc)
    if isinstance(exc, MlgitError):
        click.echo(f"mlgitfs: error: {exc.message}", err=True)
        return exc.exit_code
    hint = "" if verbose else " (run with -v for the traceback)"
    text = " ".join(str(exc).split())  # one line, whatever the library put in its message
    click.echo(f"mlgitfs: internal error: {type(exc).__name__}: {text}{hint}", err=True)
    return MlgitError.exit_code


class _Group(click.Group):
    """Maps every failure of a subcommand through `report`."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own: usage errors (exit 2), --help, ctx.exit
        except BrokenPipeError:
            ctx.exit(0)
        except (KeyboardInterrupt, Exception) as exc:
            verbose = isinstance(ctx.obj, Ctx) and ctx.obj.verbose
            ctx.exit(report(exc, verbose))


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
        force=True,
    )


HOME_HELP = (
    "The store directory. Default: $MLGITFS_HOME, else $XDG_DATA_HOME/mlgitfs, else "
    "~/.local/share/mlgitfs. Only init and clone create a store."
)
VERBOSE_HELP = "Log details on stderr and show tracebacks."
QUIET_HELP = "No progress bars."


def _late(field: str) -> Any:
    """The callback of a global option given after the subcommand: it updates the Ctx."""

    def set_it(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        obj = ctx.find_object(Ctx)
        if obj is None or value is None or value is False:
            return
        setattr(obj, field, value)
        if field == "verbose":
            _configure_logging(True)

    return set_it


def global_params() -> list[click.Parameter]:
    """--home, -v and -q for a subcommand, so they work after it as before it."""
    return [
        click.Option(["--home"], type=click.Path(path_type=Path), help=HOME_HELP,
                     callback=_late("home"), expose_value=False),
        click.Option(["-v", "--verbose"], is_flag=True, help=VERBOSE_HELP,
                     callback=_late("verbose"), expose_value=False),
        click.Option(["-q", "--quiet"], is_flag=True, help=QUIET_HELP,
                     callback=_late("quiet"), expose_value=False),
    ]  # fmt: skip


def add_global_params(cmd: click.Command) -> None:
    cmd.params.extend(global_params())
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            add_global_params(sub)


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.option("--home", type=click.Path(path_type=Path), envvar="MLGITFS_HOME", help=HOME_HELP)
@click.option("-v", "--verbose", is_flag=True, help=VERBOSE_HELP)
@click.option("-q", "--quiet", is_flag=True, help=QUIET_HELP)
@click.version_option(package_name="mlgitfs")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, verbose: bool, quiet: bool) -> None:
    """Version ML datasets, labels and models; mount any version as a directory.

    The global options (--home, -v, -q) go before or after the command."""
    _configure_logging(verbose)
    ctx.obj = Ctx(home, verbose, quiet)


@cli.command()
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(["dataset", "labels", "model"]),
    required=True,
    help="What the repo versions: a dataset, a set of labels, or a model.",
)
@click.option(
    "--mutability",
    type=click.Choice(["strict", "flexible", "mutable"]),
    required=True,
    help="Whether committed files may change in later versions (see above).",
)
@click.option("--category", "categories", multiple=True, help="A category (repeatable).")
@pass_ctx
def init(c: Ctx, name: str, kind: str, mutability: str, categories: tuple[str, ...]) -> None:
    """Create a repo NAME: a dataset, labels set or model. Kind and mutability never change.

    \b
    Mutability, the rule for files already committed:
      strict    a committed file's content never changes in a later version: add
                new files instead (edits, truncation, renames over it, an import of
                other content at its path are refused)
      flexible  committed files change only after 'mlgitfs unlock PATH' in a
                writable mount, until the next commit, or 'import --unlock PATH'
      mutable   any file may change at any time, like a plain directory"""
    r = api.init(c.home, name, kind, mutability, list(categories))
    render.message(f"created {r.kind} repo {r.name} ({r.mutability})")


@cli.group(invoke_without_command=True)
@json_opt
@click.pass_context
def repos(ctx: click.Context, as_json: bool) -> None:
    """List the repos of the store: name, kind, mutability, branch and tag counts,
    categories. `repos rm NAME` removes one."""
    c = ctx.find_object(Ctx)
    if ctx.invoked_subcommand is None and c is not None:
        render.repos(api.repos(c.home), as_json)


@repos.command("rm")
@click.argument("name", shell_complete=complete.repo)
@click.option("--force", is_flag=True, help="Remove it even when a ref holds commits no "
              "remote holds.")  # fmt: skip
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def repos_rm(c: Ctx, name: str, force: bool, yes: bool) -> None:
    """Remove repo NAME: its refs, reflog, checkouts and retention rules (its objects stay
    in the store). Refused while any mount of it is live, and, without --force, while a branch
    or tag holds commits that no remote-tracking ref holds."""
    if not yes:
        click.confirm(f"remove repo {name} with all its branches and tags?", abort=True)
    r = api.repos_rm(c.home, name, force)
    render.message(f"removed repo {r.name} ({r.refs} refs, {r.checkouts} checkouts)")


@cli.command("import")
@click.argument("target", shell_complete=complete.revspec)
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-m", "--message", required=True, help="The commit message.")
@click.option("--meta", multiple=True, help="KEY=VALUE metadata (repeatable).")
@click.option(
    "--input",
    "inputs",
    multiple=True,
    help="REPO@REF this version was made from (repeatable; @REF: a ref of this repo).",
)
@click.option("--allow-empty", is_flag=True, help="Commit even when nothing changed.")
@click.option(
    "--unlock",
    "unlock",
    multiple=True,
    metavar="PATH",
    help="Flexible repo: let this committed file's content change (a path of the version or "
    "a glob, `*` matching `/` too; repeatable): the import's 'mlgitfs unlock'. Strict repos "
    "refuse it.",
)
@render.inputs_from_opt
@render.no_verify_opt
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
    inputs_from: str | None,
    no_verify: bool,
    as_json: bool,
    unlock: tuple[str, ...],
) -> None:
    """Import directory SOURCE as a new commit on TARGET (REPO[@BRANCH], default branch
    main, created on the first import; a tag's name is refused).

    When nothing changed no commit is made (like git) unless --allow-empty. Only files whose
    size, mtime, inode or ctime changed since the last import are read. Symlinks are stored,
    never followed; sockets, FIFOs and devices are refused naming the path; an unreadable
    file stops the import and nothing is committed. The branch's pre-commit hooks and checks
    (.mlgitfs/hooks.toml) gate the commit: a refusal shows their output, exits 34 and
    commits nothing. The repo's mutability applies as at a mount's commit: a committed file
    given other content is refused in a strict repo, and in a flexible one unless --unlock
    names it (exit 15, listing the paths, nothing imported); adding and removing files are
    not content changes. A branch whose writable mount holds uncommitted changes is refused
    (exit 22): commit or restore them there first. Prints the commit id."""
    with render.progress(c, "importing", "files") as bar:
        r = api.import_dir(
            c.home, target, source, message, list(meta), list(inputs), bar, allow_empty,
            no_verify, inputs_from, list(unlock),
        )  # fmt: skip
    render.import_result(r, as_json)


@cli.command()
@click.argument("revspec", shell_complete=complete.revspec)
@click.argument("dest", type=click.Path(path_type=Path))
@pass_ctx
def export(c: Ctx, revspec: str, dest: Path) -> None:
    """Write a version (or a path of it) into DEST, with modes, mtimes and symlinks.

    DEST is absent (its missing parents are created) or an empty directory; a file path is
    written into an existing directory. A failure or Ctrl-C removes what the export made."""
    with render.progress(c, "exporting", "files") as bar:
        r = api.export(c.home, revspec, dest, bar)
    render.message(
        f"exported {r.files} files, {r.dirs} directories, {r.symlinks} symlinks "
        f"({render.human(r.bytes)}) to {dest}"
    )


@cli.command()
@click.argument("revspec", shell_complete=complete.revspec)
@click.option(
    "--direction",
    type=click.Choice(["up", "down", "both"]),
    default="both",
    help="up: the inputs it was made from; down: the versions made from it; both.",
)
@click.option(
    "--files", is_flag=True, help="The files it was made from: the read set attached to it."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["tree", "openlineage", "dot"]),
    default="tree",
    help="openlineage: run events, one JSON object a line; dot: a Graphviz digraph.",
)
@json_opt
@pass_ctx
def lineage(c: Ctx, revspec: str, direction: str, files: bool, fmt: str, as_json: bool) -> None:
    """The graph of inputs: what a version was made from (up: its --inputs, transitively)
    and what was made from it (down).

    With --json: {"upstream": NODE, "downstream": NODE}, a NODE being repo, commit, message,
    refs, and its neighbours: "inputs" upstream, "used_by" downstream. --files lists the
    files read of each input version (`import`/`commit --inputs-from` attach them; see
    docs/review.md). --format openlineage writes OpenLineage run events of the upstream
    graph for a lineage server (Marquez); --format dot the graph for Graphviz
    (`| dot -Tsvg`)."""
    if files:
        render.lineage_files(api.lineage_files(c.home, revspec), as_json)
    elif fmt != "tree":
        click.echo(api.lineage_export(c.home, revspec, fmt, direction), nl=False)
    else:
        render.lineage(api.lineage_of(c.home, revspec, direction), as_json)


@cli.command()
@click.argument("key", required=False)
@click.argument("value", required=False)
@json_opt
@pass_ctx
def config(c: Ctx, key: str | None, value: str | None, as_json: bool) -> None:
    """Show the store's settings, or set KEY to VALUE.

    \b
    cache-size  the disk budget of the store's chunk cache (20G; none: no
                budget). Over it, whole segments holding only chunks a remote
                has are evicted, oldest first; chunks not yet pushed never
                are. $MLGITFS_CACHE_SIZE overrides it. (A mount daemon's
                memory is another setting: mount --memory.)
    reflog-expiry  how long a reflog entry keeps the commits it names
                (30d; e.g. 90d, 12h, 0). A deleted branch can be recreated
                from its reflog until then, and no longer kept after.
    signing-key  the key of the key ring that signs (default: the only
                private key; none: back to that default).
    sign-commits  auto (sign when the key ring holds a private key), true
                (refuse to commit unsigned), false.
    verify-refs  warn: a ref on a remote moved by an unknown key, or
                unsigned, is logged; refuse: fetch, pull and clone refuse
                it (exit 40 or 41). A bad signature is always refused.
    trust       refuse (default): fetch, pull and clone refuse history that
                breaks the remote's access policy (exit 44) or a policy
                replayed or not signed by an admin (exit 42, 43), and mount
                refuses a version carrying what a fetch let through (exit
                44); warn: log it and go on; off: check nothing."""
    items = api.config(c.home, key, value)
    if as_json:
        render.emit_json(items)
        return
    for item in items:
        click.echo(f"{item.key}\t{item.value or '(unset)'}")


@cli.command()
@click.argument("repo", required=False, shell_complete=complete.repo)
@click.option(
    "--remote",
    "check_remote",
    is_flag=True,
    help="Also fetch and check chunks that are only on a remote.",
)
@click.option(
    "--rebuild-index",
    is_flag=True,
    help="Write the commit-graph index (log's changed-path filters) again from the commits, "
    "and blame's quote parities of CSV and TSV chunks from the chunks read.",
)
@json_opt
@pass_ctx
def fsck(c: Ctx, repo: str | None, check_remote: bool, rebuild_index: bool, as_json: bool) -> None:
    """Check every object reachable from every ref (of REPO, or all): present, hashing to
    its id, canonical and valid; every local chunk readable. Chunks only on a remote are
    counted, and fetched and checked with --remote. Exit 0 when clean, 1 with a report
    naming each damaged object and a path that reaches it."""
    with render.progress(c, "checking", "chunks") as bar:
        report = api.fsck(c.home, repo, check_remote, bar, rebuild_index)
    gcrender.fsck(report, as_json)
    if not report.clean:
        sys.exit(1)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Say what each step would free; change nothing.")
@click.option(
    "--threshold",
    type=float,
    default=0.95,
    show_default=True,
    help="Rewrite a segment file whose live fraction is below this.",
)
@click.option(
    "--remote",
    "remote",
    metavar="NAME",
    default=None,
    help="Reclaim packs on remote NAME instead of the local store.",
)
@click.option(
    "--grace",
    metavar="DURATION",
    default=None,
    help="With --remote: wait this long between condemning packs and deleting them "
    "(90s, 30m, 1h; default 1h). Longer than any push.",
)
@json_opt
@pass_ctx
def gc(
    c: Ctx, dry_run: bool, threshold: float, remote: str | None, grace: str | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Delete what no ref, reflog entry, checkout or unpushed chunk reaches: objects and
    chunk locations from the database, then segment files with nothing live; files whose
    live fraction is under --threshold are rewritten, so the disk space comes back. Safe
    while mounts read, imports write and mounts commit. With --dry-run, print what each
    step would free and change nothing.

    With --remote NAME: the same for the remote's packs, while others push, fetch and
    mount (no lock a push waits for): mark from every ref of every repo there (retention
    as the remote's rules say), repack packs whose live fraction is under --threshold,
    condemn, wait --grace, then delete. One gc per remote at a time (exit 14)."""
    if remote is not None:
        gcrender.gc_remote(api.gc_remote(c.home, remote, dry_run, threshold, grace), as_json)
        return
    if grace is not None:
        raise click.UsageError("--grace applies to gc --remote only")
    gcrender.gc(api.gc(c.home, dry_run, threshold), as_json)


@cli.command()
@click.argument("shell", type=click.Choice(complete.SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL: commands, options, repos, refs
    (REPO@<TAB>), paths (REPO@REF:<TAB>) and remotes complete.

    \b
    bash:  eval "$(mlgitfs completion bash)"     (in ~/.bashrc)
    zsh:   eval "$(mlgitfs completion zsh)"      (in ~/.zshrc)
    fish:  mlgitfs completion fish | source      (in config.fish)"""
    click.echo(complete.script(shell, cli))


def _register_extensions() -> None:
    """Commands of later layers (mounts, remotes) live in their own modules."""
    from . import extra

    extra.register(cli)
    for cmd in cli.commands.values():
        add_global_params(cmd)


_register_extensions()


def main() -> None:
    api.keep_freed_memory()  # a process-wide policy: this program's, not the library's
    cli(prog_name="mlgitfs")


if __name__ == "__main__":
    main()
