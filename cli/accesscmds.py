"""Access commands: access show, grant, revoke, export (docs/governance.md, "Roles and
access")."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from mlgitfs import api
from mlgitfs.errors import DestinationError

from . import render
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)
ROLES = click.Choice(["reader", "writer", "maintainer", "admin"])


@click.group()
def access() -> None:
    """Roles of the store's trust policy: identities (key ids) hold reader < writer <
    maintainer < admin for repo globs and branch patterns. Protected branches come from each
    repo's branch rules (.mlgitfs/hooks.toml). `access export` turns the policy into S3
    policy documents the object store enforces."""


def _edited(r: api.AccessResult) -> None:
    for g in r.removed:
        render.message(f"revoked {g.identity} {g.role} on repo {g.repo} branch {g.branch}")
    for g in r.added:
        render.message(f"granted {g.identity} {g.role} on repo {g.repo} branch {g.branch}")
    if not r.added and not r.removed:
        render.message("already granted; the policy is unchanged")
    render.message(f"access policy version {r.seq}")


@access.command("show")
@click.option("--remote", default=None, help="The remote's version trusted here instead.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_ctx
def access_show(c: Ctx, remote: str | None, as_json: bool) -> None:
    """Show the grants of the store's policy (with --remote, of the remote's version last
    verified here), each identity's key, and each repo's protected branch patterns."""
    r = api.access_show(c.home, remote)
    if as_json:
        render.emit_json(r)
        return
    click.echo(f"version {r.seq}" + (f"\t{r.digest[:16]}" if r.digest else ""))
    for g in r.grants:
        key = f"\tkey {g.key}" if g.key else ""
        click.echo(f"{g.identity}\t{g.role}\trepo {g.repo}\tbranch {g.branch}{key}")
    for repo, patterns in sorted(r.protected.items()):
        if patterns:
            click.echo(f"protected\t{repo}\t{', '.join(patterns)}")


@access.command("grant")
@click.argument("identity")
@click.argument("role", type=ROLES)
@click.option("--repo", default="*", show_default=True, help="Glob over repo names.")
@click.option("--branch", default="**", show_default=True, help="Glob over branch names.")
@pass_ctx
def access_grant(c: Ctx, identity: str, role: str, repo: str, branch: str) -> None:
    """Give IDENTITY ROLE on the repos matching --repo and the branches matching --branch
    (a grant of another role on the same globs is replaced)."""
    _edited(api.access_grant(c.home, identity, role, repo, branch))


@access.command("revoke")
@click.argument("identity")
@click.argument("role", type=ROLES, required=False)
@click.option("--repo", default=None, help="Only the grant on this repo glob (as written).")
@click.option("--branch", default=None, help="Only the grant on this branch glob (as written).")
@pass_ctx
def access_revoke(
    c: Ctx, identity: str, role: str | None, repo: str | None, branch: str | None
) -> None:
    """Remove IDENTITY's grants (of ROLE, --repo and --branch when given); exit 3 when it
    holds none of them."""
    _edited(api.access_revoke(c.home, identity, role, repo, branch))


@access.command("publish")
@click.option("--remote", default=None, help="The remote (default: the only one, else origin).")
@pass_ctx
def access_publish(c: Ctx, remote: str | None) -> None:
    """Publish the store's policy as the remote's next version (access/policy), signed by
    this store's signing key, which must be an admin of the version it replaces (of itself
    for the first). Fetch, pull and clone then check history against it (config trust)."""
    r = api.access_publish(c.home, remote)
    if r.published:
        render.message(f"{r.remote}: published access policy version {r.seq} ({r.digest[:16]})")
    else:
        render.message(f"{r.remote}: access policy version {r.seq} is up to date")


@access.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(["aws-iam", "seaweedfs"]), required=True,
    help="aws-iam: an IAM policy per identity; seaweedfs: an s3.json identity config.",
)  # fmt: skip
@click.option("--remote", default=None, help="Take bucket and prefix from this remote.")
@click.option("--bucket", default=None, help="The bucket (default: the remote's).")
@click.option("--prefix", default=None, help="The key prefix (default: the remote's).")
@click.option(
    "--credentials", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="seaweedfs: a JSON file {identity: {accessKey, secretKey}} to fill the identities.",
)  # fmt: skip
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Write the document to this file (default: stdout).",
)  # fmt: skip
@pass_ctx
def access_export(
    c: Ctx,
    fmt: str,
    remote: str | None,
    bucket: str | None,
    prefix: str | None,
    credentials: Path | None,
    output: Path | None,
) -> None:
    """Turn the policy into S3 policy documents for the remote's bucket and prefix: readers
    read, writers put packs and the refs of unprotected branches, maintainers move protected
    refs too, admins write the policy object. Rerun it after a grant or a branch rule
    changes; what S3 cannot express is listed in docs/governance.md."""
    r = api.access_export(c.home, fmt, remote, bucket, prefix, credentials)
    text = json.dumps(r.document, indent=2, sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    try:  # it may hold secret keys: readable by its owner only
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
    except OSError as exc:
        raise DestinationError(f"cannot write {output}: {exc.strerror}") from exc
    render.message(f"wrote {fmt} policy for s3://{r.bucket}/{r.prefix} to {output}")


COMMANDS = [access]
