"""What fsck and gc (local and remote) print: the store's checks and what its collection
freed, with `--json` the results as they are."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from mlgitfs import api

from .render import emit_json, human, message

if TYPE_CHECKING:  # types only: rendering imports no library part it does not run
    from mlgitfs.repo.fsck import FsckReport


def fsck(report: FsckReport, as_json: bool) -> None:
    if as_json:
        emit_json(report)
        return
    for d in report.damage:
        click.echo(f"damaged {d.object}: {d.reason} (at {d.path})")
    state = "clean" if report.clean else f"{len(report.damage)} problems"
    message(
        f"checked {report.repos} repos, {report.commits} commits, {report.trees} trees, "
        f"{report.files} files, {report.chunks} chunks ({human(report.bytes)})"
        + (f", {report.remote_chunks} chunks only on a remote" if report.remote_chunks else "")
        + (f", {report.index_rebuilt} index records rebuilt" if report.index_rebuilt else "")
        + (f", {report.expired} expired versions (contents let go)" if report.expired else "")
        + (
            f", {report.erased} erased files ({report.erasures} erasures)"
            if report.erasures
            else ""
        )
        + f": {state}"
    )


def _expired(expired: Sequence[str], dry_run: bool) -> str:
    """List the versions a gc (local or remote) let go of under the retention rules; the
    word for what it frees."""
    for c in expired:
        click.echo(f"expired {c}: its file contents go, its history stays")
    return "to free" if dry_run else "freed"


def gc(r: api.GcResult, as_json: bool) -> None:
    if as_json:
        emit_json(r)
        return
    would = _expired(r.expired, r.dry_run)
    click.echo(f"objects   {r.objects:>10,}  {human(r.object_bytes):>10}  ({would}; database)")
    click.echo(f"chunks    {r.chunks:>10,}  {human(r.chunk_bytes):>10}  ({would}; in segments)")
    click.echo(
        f"segments  {r.segments_deleted:>5} deleted, {r.segments_rewritten} rewritten: "
        f"{human(r.segment_bytes_freed)} of disk {would}"
    )
    message(
        f"kept {r.live_objects:,} objects and {r.live_chunks:,} chunks; chunk cache "
        f"{human(r.bytes_before)} -> {human(r.bytes_after)}"
        + (f"; {r.segments_busy} segments busy (skipped)" if r.segments_busy else "")
    )


def gc_remote(r: api.RemoteGcResult, as_json: bool) -> None:
    if as_json:
        emit_json(r)
        return
    would = _expired(r.expired, r.dry_run)
    click.echo(f"packs     {r.packs_dead:>5} dead, {r.packs_repacked} sparse (repacked into "
               f"{r.packs_written}), {r.packs_unindexed} without index, {r.packs_revived} "
               "revived")  # fmt: skip
    click.echo(f"remote    {human(r.bytes_before)} -> {human(r.bytes_after)}: "
               f"{human(r.bytes_freed)} {would} ({human(r.bytes_copied)} copied)")  # fmt: skip
    message(
        f"{r.remote}: {r.refs} refs keep {r.live_objects:,} objects and {r.live_chunks:,} "
        f"chunks" + ("" if r.dry_run else f"; grace {r.grace:g} s; gc {r.gc_id}")
    )
