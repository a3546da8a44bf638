"""Remote commands: remote add/list/remove, push, fetch, pull, clone, prefetch."""

from __future__ import annotations

from pathlib import Path

import click

from mlgitfs import api
from mlgitfs.errors import MergeConflict

from . import complete, render
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
endpoint_opt = click.option(
    "--endpoint-url",
    help="S3-compatible endpoint (default: the AWS chain, e.g. AWS_ENDPOINT_URL).",
)


@click.group()
def remote() -> None:
    """Manage remotes: s3://BUCKET/PREFIX or file:///DIR (see docs/remotes.md). The
    default remote of push, fetch and pull is the only one, else origin."""


@remote.command("add")
@click.argument("name")
@click.argument("url")
@endpoint_opt
@pass_ctx
def remote_add(c: Ctx, name: str, url: str, endpoint_url: str | None) -> None:
    """Add remote NAME at URL after checking it answers and enforces conditional writes."""
    r = api.remote_add(c.home, name, url, endpoint_url)
    render.message(f"added remote {r.name} ({r.url})")
    if r.conditional_writes is None:
        render.message(
            f"note: these credentials may not write to {r.url}, so whether it enforces "
            "conditional writes is checked by the first push"
        )
    elif not r.conditional_writes:
        render.message(
            f"warning: {r.url} ignores conditional writes (If-None-Match/If-Match): "
            "two pushers could lose commits, so pushes to it will be refused"
        )


@remote.command("list")
@json_opt
@pass_ctx
def remote_list(c: Ctx, as_json: bool) -> None:
    """List the remotes of the store."""
    items = api.remote_list(c.home)
    if as_json:
        render.emit_json(items)
        return
    for r in items:
        extra = f"\tendpoint {r.endpoint_url}" if r.endpoint_url else ""
        flag = {True: "", None: "\t(read-only so far: the first push probes it)"}.get(
            r.conditional_writes, "\t(no conditional writes: push refused)"
        )
        click.echo(f"{r.name}\t{r.url}{extra}{flag}")


@remote.command("remove")
@click.argument("name")
@pass_ctx
def remote_remove(c: Ctx, name: str) -> None:
    """Forget remote NAME (its contents are left alone)."""
    r = api.remote_remove(c.home, name)
    render.message(f"removed remote {r.name} ({r.url})")


def _updates(r: api.SyncResult, as_json: bool) -> None:
    if as_json:
        render.emit_json(r)
        return
    for u in r.updates:
        old = (u.old or "")[:12] or "-"
        new = (u.new or "")[:12] or "-"
        click.echo(f"{u.status}\t{r.repo}@{u.ref.split('/', 1)[1]}\t{old} -> {new}")
    if r.verb == "push" and any(u.status != "deleted" for u in r.updates):
        render.message(
            f"{r.remote}: uploaded {r.chunks} chunks in {r.packs} packs and {r.objects} objects "
            f"in {r.meta_packs} packs ({render.human(r.bytes)}) in {r.seconds:.2f}s"
        )


@click.command()
@click.argument("target", shell_complete=complete.revspec)
@click.argument("remote_name", required=False, shell_complete=complete.remote)
@click.option("--all", "all_refs", is_flag=True, help="Push every branch and tag of REPO.")
@click.option("--delete", is_flag=True, help="Delete branch or tag REPO@REF on REMOTE.")
@click.option(
    "--force",
    is_flag=True,
    help="With --delete: delete the default branch too, or a ref that moved since the last fetch.",
)
@render.no_verify_opt
@json_opt
@pass_ctx
def push(
    c: Ctx,
    target: str,
    remote_name: str | None,
    all_refs: bool,
    delete: bool,
    force: bool,
    no_verify: bool,
    as_json: bool,
) -> None:
    """Upload REPO[@BRANCH] to REMOTE (default: the only remote, or origin), or delete a
    branch or tag there (--delete; its objects stay on the remote). Each branch's pre-push
    hooks gate an upload first: a refusal exits 34 and sends nothing."""
    if delete:
        _updates(api.push_delete(c.home, target, remote_name, force), as_json)
        return
    if force:
        raise click.UsageError("--force goes with --delete")
    with render.progress(c, "pushing", "chunks") as bar:
        r = api.push(c.home, target, remote_name, all_refs, bar, no_verify)
    _updates(r, as_json)


@click.command()
@click.argument("repo", shell_complete=complete.repo)
@click.argument("remote_name", required=False, shell_complete=complete.remote)
@json_opt
@pass_ctx
def fetch(c: Ctx, repo: str, remote_name: str | None, as_json: bool) -> None:
    """Fetch the refs of REPO and the history they name (not file contents): they become
    remote-tracking refs, REPO@REMOTE/BRANCH (REPO@origin/main)."""
    with render.progress(c, "fetching", "objects") as bar:
        r = api.fetch(c.home, repo, remote_name, bar)
    _updates(r, as_json)


@click.command()
@click.argument("target", shell_complete=complete.revspec)
@click.argument("remote_name", required=False, shell_complete=complete.remote)
@click.option("--ff-only", is_flag=True, help="Refuse instead of merging a diverged branch.")
@click.option(
    "--strategy",
    type=click.Choice(["ours", "theirs"]),
    help="How a merge resolves conflicts that no rule of .mlgitfs/merge.toml covers.",
)
@click.option(
    "--into",
    "mountpoint",
    type=click.Path(path_type=Path),
    help="Merge into this writable mount of the branch instead (conflicts stay there).",
)
@json_opt
@pass_ctx
def pull(
    c: Ctx,
    target: str,
    remote_name: str | None,
    ff_only: bool,
    strategy: str | None,
    mountpoint: Path | None,
    as_json: bool,
) -> None:
    """Fetch, then fast-forward REPO[@BRANCH] to the remote's branch, or merge it in when
    the two diverged (conflicts: listed, exit 23, nothing changed). With --into MOUNTPOINT
    the remote's branch is merged into that writable mount, its uncommitted changes
    included, as `merge --into MOUNTPOINT` does (conflicts stay there to resolve, exit 27)."""
    from .mergecmds import conflicts

    if mountpoint is not None:
        from .mountmergecmds import mount_result

        if ff_only:
            raise click.UsageError("--ff-only is for pulls into a branch, not --into a mount")
        mount_result(
            api.pull_into_mount(c.home, target, mountpoint, remote_name, strategy), as_json
        )
        return

    try:
        with render.progress(c, "pulling", "objects") as bar:
            r = api.pull(c.home, target, remote_name, ff_only, strategy, bar)
    except MergeConflict as exc:
        conflicts(exc.conflicts, as_json)
        raise
    _updates(r, as_json)


@click.command()
@click.argument("url")
@click.argument("repo", required=False, shell_complete=complete.repo)
@click.argument("local_name", required=False)
@endpoint_opt
@click.option(
    "--remote",
    "remote_name",
    default="origin",
    show_default=True,
    help="Name of the remote to record (an existing one with the same URL is reused).",
)
@click.option(
    "--trust", "trust_key", default=None, metavar="KEYID",
    help="Pin the remote's access policy to this admin key (its id, or a key ring name).",
)  # fmt: skip
@json_opt
@pass_ctx
def clone(
    c: Ctx,
    url: str,
    repo: str,
    local_name: str | None,
    endpoint_url: str | None,
    remote_name: str,
    trust_key: str | None,
    as_json: bool,
) -> None:
    """Clone REPO from URL as LOCAL_NAME (default REPO): refs and history now (the progress
    bar counts those objects, commits and root trees), file contents on demand. The only
    command besides init that creates a store; a clone that fails or is interrupted leaves
    nothing behind (no store, no remote, no directory).

    `clone FILE [NAME]` restores a bundle (`mlgitfs bundle`) as NAME (default the bundled
    repo's name), contents included; a truncated or altered bundle is refused (exit 37)
    before anything is created."""
    if "://" not in url:
        if local_name is not None:
            raise click.UsageError("clone FILE [NAME]: a bundle holds one repo, name it once")
        b = api.clone_bundle(c.home, Path(url), repo)
        if as_json:
            render.emit_json(b)
            return
        render.message(
            f"cloned {b.repo.name} from bundle {url} ({b.repo.kind}, {b.repo.mutability}): "
            f"{b.repo.branches} branches, {b.repo.tags} tags; {b.objects} objects, "
            f"{b.chunks} chunks ({render.human(b.bytes)}) in {b.seconds:.2f}s"
        )
        return
    if repo is None:
        raise click.UsageError("clone URL REPO [LOCAL_NAME]: name the repo to clone")
    with render.progress(c, "cloning", "objects") as bar:
        r = api.clone(c.home, url, repo, local_name, endpoint_url, remote_name, bar, trust_key)
    if as_json:
        render.emit_json(r)
        return
    render.message(
        f"cloned {repo} from {url} as {r.repo.name} ({r.repo.kind}, {r.repo.mutability}): "
        f"{r.repo.branches} branches, {r.repo.tags} tags, remote {r.remote}; "
        f"{r.fetch.objects} objects ({render.human(r.fetch.bytes)}) in {r.fetch.seconds:.2f}s"
    )


@click.command()
@click.argument("revspec", shell_complete=complete.revspec)
@json_opt
@pass_ctx
def prefetch(c: Ctx, revspec: str, as_json: bool) -> None:
    """Download the contents of REVSPEC[:PATH] into the local cache ahead of a job."""
    with render.progress(c, "prefetching", "chunks") as bar:
        r = api.prefetch(c.home, revspec, bar)
    if as_json:
        render.emit_json(r)
        return
    render.message(
        f"fetched {r.chunks} chunks ({render.human(r.bytes)}) in {r.requests} requests, "
        f"{r.seconds:.2f}s"
    )


@click.command()
@click.argument("repo", shell_complete=complete.repo)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@json_opt
@pass_ctx
def bundle(c: Ctx, repo: str, file: Path, as_json: bool) -> None:
    """Write REPO's branches, tags, history, file contents and retention rules to one FILE,
    for cold storage; `mlgitfs clone FILE` restores it. FILE is replaced atomically: a bundle
    that fails or is killed leaves FILE as it was, and a rerun finishes."""
    r = api.bundle(c.home, repo, file)
    if as_json:
        render.emit_json(r)
        return
    render.message(
        f"bundled {r.repo} into {r.file}: {r.refs} refs, {r.objects} objects, {r.chunks} "
        f"chunks, {render.human(r.bytes)} in {r.seconds:.2f}s"
    )


@click.command()
@click.argument("source")
@click.argument("target")
@click.option(
    "--prune",
    is_flag=True,
    help="Also delete refs and records TARGET has and SOURCE no longer has.",
)
@click.option("--source-endpoint-url", help="S3 endpoint of a SOURCE given as an s3:// URL.")
@click.option("--target-endpoint-url", help="S3 endpoint of a TARGET given as an s3:// URL.")
@json_opt
@pass_ctx
def mirror(
    c: Ctx,
    source: str,
    target: str,
    prune: bool,
    source_endpoint_url: str | None,
    target_endpoint_url: str | None,
    as_json: bool,
) -> None:
    """Copy every repo, ref, pack, retention rule and erasure record of the remote SOURCE
    into TARGET (each a remote name of the store or a URL: s3://BUCKET/PREFIX, file:///DIR),
    for backups. Incremental: a second run copies only packs that are new. A killed mirror
    leaves TARGET consistent (refs are written after the packs they need) and a rerun
    finishes. Safe while others push to SOURCE: refs are read before its packs are listed.
    Packs are never deleted; refs deleted at SOURCE stay on TARGET unless --prune."""
    with render.progress(c, "mirroring", "packs") as bar:
        r = api.mirror(c.home, source, target, prune, bar, source_endpoint_url, target_endpoint_url)
    if as_json:
        render.emit_json(r)
        return
    pruned = f", {r.refs_pruned} refs pruned" if prune else ""
    render.message(
        f"mirrored {source} to {target}: {r.packs} packs copied ({render.human(r.bytes)}), "
        f"{r.packs_present} already there, {r.records} records, {r.refs_updated} refs "
        f"updated{pruned} in {r.seconds:.2f}s"
    )


COMMANDS: list[click.Command] = [remote, push, fetch, pull, clone, prefetch, bundle, mirror]
