"""The bench harness other benchmark cases build on (bench/harness.py, proc.py, peers.py):
bookkeeping on every row, skip rows for missing peers, ERROR rows for failures, the timed
runner. Timings themselves are measured in bench/, never asserted here."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import peers, report
from bench.context import Context
from bench.harness import Skipped, run_case
from bench.proc import CommandFailed, run
from bench.registry import Case, Row

BOOKKEEPING = {
    "loadavg_start",
    "loadavg_end",
    "caches_dropped",
    "drop_pagecache_during_case",
    "own_cache_drops",
}


def _ctx(tmp_path: Path) -> Context:
    return Context(work=tmp_path / "work", cold=False, install_peers=False)


def test_every_row_gets_the_bookkeeping_and_the_case_keeps_its_own(tmp_path: Path) -> None:
    def fn(ctx: Context) -> list[Row]:
        ctx.drop_caches()  # --warm: not dropped, not counted
        return [
            Row("t", "a", 1.0, 2.0, 0.5, 0.4, extra={"seconds": [1.0], "own_cache_drops": 7}),
            Row("t", "b", 1.0, 2.0, 0.5),
        ]

    rows = run_case(_ctx(tmp_path), Case("t", fn, "", ("t",)))
    assert [r.metric for r in rows] == ["a", "b"]
    assert all(set(r.extra) >= BOOKKEEPING for r in rows)
    assert rows[0].extra["seconds"] == [1.0] and rows[0].extra["own_cache_drops"] == 7
    assert rows[1].extra["own_cache_drops"] == 0 and rows[1].extra["caches_dropped"] is None
    assert rows[0].passed is True and rows[1].passed is None


def test_a_missing_peer_is_a_skip_row_with_its_reason_and_a_failure_an_error_row(
    tmp_path: Path,
) -> None:
    ctx = _ctx(tmp_path)

    def needs_peer(ctx: Context) -> list[Row]:
        peers.tool(ctx, "mlgitfs-no-such-peer")
        raise AssertionError("not reached")

    def broken(ctx: Context) -> list[Row]:
        raise RuntimeError("boom")

    skipped = run_case(ctx, Case("p", needs_peer, "", ("p",)))
    failed = run_case(ctx, Case("f", broken, "", ("f",)))
    assert len(skipped) == 1 and skipped[0].error is None and skipped[0].passed is None
    assert "mlgitfs-no-such-peer is not installed" in str(skipped[0].skipped)
    assert failed[0].error == "RuntimeError: boom" and failed[0].passed is False
    table = report.markdown([*skipped, *failed], {})
    assert "| skip |" in table and "| ERROR |" in table
    assert "p ((case skipped)) skipped: mlgitfs-no-such-peer" in table
    assert peers.available(ctx, "mlgitfs-no-such-peer")[0] is None
    with pytest.raises(Skipped):
        peers.tool(ctx, "mlgitfs-no-such-peer")  # remembered for the run


def test_run_captures_logs_or_raises_with_what_the_command_said(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "x.log"
    ran = run(["sh", "-c", "echo out; echo err >&2"], capture=True)
    assert (ran.stdout, ran.stderr, ran.returncode) == ("out\n", "err\n", 0)
    assert ran.seconds > 0
    assert run(["sh", "-c", "echo '{\"a\": 1}'"], capture=True).json() == {"a": 1}
    run(["sh", "-c", "echo logged"], log=log)
    assert log.read_text() == "$ sh -c echo logged\nlogged\n"
    with pytest.raises(CommandFailed, match="exited 3:\nwhy"):
        run(["sh", "-c", "echo why >&2; exit 3"])
    with pytest.raises(CommandFailed, match="logged too"):
        run(["sh", "-c", "echo logged too; exit 1"], log=log)
    assert run(["sh", "-c", "exit 2"], check=False).returncode == 2
