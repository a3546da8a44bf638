"""Shell completion of revspecs (repos, refs, paths) and remote names, through click's own
completion protocol; `mlgitfs completion SHELL` prints the script to load.

A completion never fails and never creates anything: with no store at the home it offers
nothing, and any error ends the completion quietly (the shell shows no candidates).
"""

from __future__ import annotations

from pathlib import Path

import click
from click.shell_completion import CompletionItem

from mlgitfs import api
from mlgitfs.errors import MlgitError


def _home(ctx: click.Context) -> Path | None:
    """--home as typed so far (before or after the command), else the environment's."""
    while ctx is not None:
        home = ctx.params.get("home")
        if home:
            return Path(home)
        ctx = ctx.parent  # type: ignore[assignment]
    return None


def _revspecs(home: Path | None, incomplete: str) -> list[str]:
    if ":" in incomplete:
        head, _, path = incomplete.partition(":")
        where, _, _ = path.rpartition("/")
        spec = f"{head}:{where}" if where else head
        out = []
        for e in api.ls(home, spec):
            out.append(f"{head}:{e.path}" + ("/" if e.kind == "dir" else ""))
        return out
    if "@" in incomplete:
        repo = incomplete.partition("@")[0]
        names = [r.name for r in api.branch_list(home, repo)]
        names += [r.name for r in api.tag_list(home, repo)]
        return [f"{repo}@{n}" for n in names] + [f"{repo}@{n}:" for n in names]
    return [r.name for r in api.repos(home)] + [f"{r.name}@" for r in api.repos(home)]


def revspec(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Complete REPO, then REPO@REF (branches and tags), then REPO@REF:PATH one level at a time."""
    try:
        found = _revspecs(_home(ctx), incomplete)
    except (MlgitError, OSError):
        return []
    return [CompletionItem(c, type="plain") for c in found if c.startswith(incomplete)]


def repo(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        names = [r.name for r in api.repos(_home(ctx))]
    except (MlgitError, OSError):
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def remote(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        names = [r.name for r in api.remote_list(_home(ctx))]
    except (MlgitError, OSError):
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


SHELLS = ("bash", "zsh", "fish")


def script(shell: str, cli: click.Command) -> str:
    """The completion script for `shell`, as click writes it for the `mlgitfs` program
    (`cli`, its root group: passed in, since main.py imports this module)."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    if cls is None:
        raise click.UsageError(f"no completion for {shell}: choose one of {', '.join(SHELLS)}")
    env_var = "_MLGITFS_COMPLETE"
    return str(cls(cli, {}, "mlgitfs", env_var).source())
