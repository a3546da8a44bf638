"""Key and signature commands: key (generate, list, export, import, remove) and verify."""

from __future__ import annotations

import sys
from typing import TextIO

import click

from mlgitfs import api

from . import complete, render
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.group()
def key() -> None:
    """The store's key ring: your ed25519 signing keys and the public keys you trust.

    With a signing key, commits (import, commit, merge, revert, cherry-pick, promote) are
    signed by it and pushes sign each ref they move (`config sign-commits`, `signing-key`).
    `mlgitfs verify` checks signatures against the keys listed here."""


def _line(k: api.KeyResult) -> str:
    marks = ("private" if k.own else "public") + (", signs" if k.signing else "")
    return f"{k.name}\t{k.short_id}\t{marks}"


@key.command("generate")
@click.option("--name", help="Name of the key (default: your user name).")
@json_opt
@pass_ctx
def key_generate(c: Ctx, name: str | None, as_json: bool) -> None:
    """Make a new ed25519 key pair; its private key stays in the store (mode 0600)."""
    k = api.key_generate(c.home, name)
    if as_json:
        render.emit_json(k)
        return
    render.message(f"generated key {k.name} ({k.short_id}); share it with: mlgitfs key export")
    click.echo(k.public)


@key.command("list")
@json_opt
@pass_ctx
def key_list(c: Ctx, as_json: bool) -> None:
    """List the known keys: name, short key id, private or public, which one signs."""
    keys = api.key_list(c.home)
    if as_json:
        render.emit_json(keys)
        return
    for k in keys:
        click.echo(_line(k))


@key.command("export")
@click.argument("name", required=False)
@pass_ctx
def key_export(c: Ctx, name: str | None) -> None:
    """Print the public key NAME (default: the key that signs) as one line for
    `key import`. Never prints a private key."""
    click.echo(api.key_export(c.home, name).public)


@key.command("import")
@click.argument("file", type=click.File("r"))
@click.option("--name", required=True, help="The name to know the key by.")
@json_opt
@pass_ctx
def key_import(c: Ctx, file: TextIO, name: str, as_json: bool) -> None:
    """Trust the public key in FILE ("-": stdin), one line as `key export` prints it.
    Fetches and clones then check the signatures it made; import keys before a clone (the
    store is made if there is none)."""
    where = "stdin" if file.name == "<stdin>" else f"key file {file.name}"
    k = api.key_import(c.home, file.read(), name, where)
    if as_json:
        render.emit_json(k)
        return
    render.message(f"imported key {k.name} ({k.short_id})")


@key.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_ctx
def key_remove(c: Ctx, name: str, yes: bool) -> None:
    """Forget the key NAME (its private key too, if the store holds it: asked first, since
    nothing can sign as it afterwards)."""
    if not yes and api.key_export(c.home, name).own:
        click.confirm(f"delete the private key {name}? Nothing can sign as it afterwards",
                      abort=True)  # fmt: skip
    k = api.key_remove(c.home, name)
    render.message(f"removed key {k.name} ({k.short_id})")


@click.command()
@click.argument("revspec", shell_complete=complete.revspec)
@click.option("--all-history", is_flag=True, help="Every commit REVSPEC reaches, not only it.")
@json_opt
@pass_ctx
def verify(c: Ctx, revspec: str, all_history: bool, as_json: bool) -> None:
    """Check the signed statements of REVSPEC's commit: each signature valid, by a key of
    the key ring, about this commit, and the commit signed by its author. Exits 0 when all
    hold, else with the first failure's code: VerificationFailed 38, SignatureInvalid 39,
    UnknownKey 40, Unsigned 41 (a damaged commit: CorruptObject 7). Where a trust policy is
    in force, each signer is also shown with its identity and its role on the repo."""
    r = api.verify(c.home, revspec, all_history)
    if as_json:
        render.emit_json({"revspec": r.revspec, "ok": r.error is None, "commits": r.commits})
    else:
        for cv in r.commits:
            state = "signed" if cv.error is None else f"{cv.error}: {cv.message}"
            click.echo(f"{cv.commit[:12]}  {state}")
            for s in cv.statements:
                who = f"{s.signer_name} ({s.signer})" if s.signer_name else s.signer
                if s.identity:
                    who += f" [{s.identity}: {s.role or 'no role'}]"
                extra = "" if s.status == "valid" else f": {s.message}"
                click.echo(f"  {s.kind:<12} {who}  {s.status}{extra}")
    if r.error is not None:
        if as_json:
            sys.exit(r.error.exit_code)
        raise r.error


COMMANDS = [key, verify]
