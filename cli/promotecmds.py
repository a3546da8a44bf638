"""Promotion commands: promote, checks (docs/governance.md)."""

from __future__ import annotations

import time

import click

from mlgitfs import api
from mlgitfs.errors import MergeConflict

from . import render
from .mergecmds import conflicts
from .render import Ctx

pass_ctx = click.make_pass_decorator(Ctx)
json_opt = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


@click.command()
@click.argument("source")
@click.option("--to", "to", required=True, help="The branch to move: BRANCH or REPO@BRANCH.")
@click.option("--dry-run", is_flag=True, help="Run the checks on the candidate; move nothing.")
@json_opt
@pass_ctx
def promote(c: Ctx, source: str, to: str, dry_run: bool, as_json: bool) -> None:
    """Promote SOURCE (REPO@REF) to a branch: run the required checks of the target's rule
    (`required_checks` of its `[[branch]]` in the target head's .mlgitfs/hooks.toml), with
    its pre-merge and pre-commit hooks, on the candidate, and move the target only when all
    pass.

    The candidate is SOURCE's commit when the target's head is its ancestor, else the merge
    of SOURCE into the target (conflicts refuse it, exit 23). The move is a compare-and-swap
    on the target's head; a failing check refuses it (exit 34) and nothing moves. The checks
    the promoted commit passed, and the promotion, are attested: signed with the store's key
    (none: refused, exit 2) and attached to the commit, they travel with it (see `mlgitfs
    checks`); a protected branch is pushed only at a commit with a valid promotion
    attestation. A required check already attested on the candidate by a key of the key ring
    (same definition and hooks file) is not run again. Already up to date: the checks run
    on the head (or are found attested) and the promotion is attested. --dry-run runs them
    on a fast-forward candidate (a merge candidate is only checked for conflicts)."""
    try:
        r = api.promote(c.home, source, to, dry_run)
    except MergeConflict as exc:
        conflicts(exc.conflicts, as_json)
        raise
    if as_json:
        render.emit_json(r)
        return
    render.hook_results(r.checks)
    target = f"{r.repo}@{r.target}"
    need = ", ".join(r.required) or "none"
    if r.commit:
        render.message(
            f"{target}: promoted {r.source} ({r.status}) {r.old[:12]} -> {r.commit[:12]}; "
            f"required checks passed: {need}"
        )
    else:
        render.message(f"{target}: {r.status} (required checks: {need}; nothing moved)")


@click.command()
@click.argument("revspec")
@click.option(
    "--verify", is_flag=True, help="Fail (the problem's exit code) if any attestation is invalid."
)
@click.option(
    "--run",
    "run_for",
    metavar="BRANCH",
    help="First run what promoting the commit to BRANCH would, and attest the passes.",
)
@json_opt
@pass_ctx
def checks(c: Ctx, revspec: str, verify: bool, run_for: str | None, as_json: bool) -> None:
    """List the attestations of REVSPEC's commit (the checks it passed, the branches it was
    promoted to) and re-verify each offline: signer in the key ring, signature, about this
    commit, naming its tree. Where the store has a trust policy, each also shows its
    signer's identity and role, and counts only if that role suffices (writer for a check,
    maintainer of the branch for a promotion; docs/governance.md).

    --verify exits with the first problem's code (SignatureInvalid 39, UnknownKey 40,
    AttestationMoved 45, AttestationTreeMismatch 46, SignerLacksRole 47, CorruptObject 7),
    naming every invalid attestation. --run BRANCH first runs the BRANCH rule's required
    checks and its pre-merge and pre-commit hooks on the commit (as `promote` would; a
    failure exits 34 and attests nothing) and attests each pass with the store's signing
    key: a promotion of this commit to BRANCH, here or in a clone that trusts the key, then
    needs not run them again."""
    r = api.checks(c.home, revspec, verify, run_for)
    if as_json:
        render.emit_json(r)
        return
    render.hook_results(r.ran)
    if not r.attestations:
        render.message(f"{r.commit[:12]} of {r.repo} has no attestation")
    for a in r.attestations:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(a.time))
        state = "valid" if a.valid else f"INVALID ({a.error}): {a.problem}"
        if a.identity:
            state = f"by {a.identity} ({a.role or 'no role'})\t{state}"
        if a.kind == "promotion":
            click.echo(f"promotion {a.name}\t{a.event}\t{when}Z\tfrom {a.base[:12] or '-'}\t"
                       f"key {a.signer[:16]}\t{state}")  # fmt: skip
            for ch in a.checks:
                click.echo(f"  requires {ch.name}: attested by key {ch.signer[:16]}")
        elif a.kind:
            click.echo(f"{a.kind} {a.name}: {a.result}\t{a.event}\t{when}Z\t{a.validator}\t"
                       f"key {a.signer[:16]}\t{state}")  # fmt: skip
        else:
            click.echo(f"attestation {a.statement[:12]}\tkey {a.signer[:16]}\t{state}")


COMMANDS = [promote, checks]
