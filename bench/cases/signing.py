"""Signed history (issue 17 item 3): push and clone of COMMITS commits with every commit
signed and the pushed ref signed, against the same history unsigned (target: under 5% more
time each).

Two stores hold the same commits (bench/signsynth.py), one with an author's statement per
commit and a key that signs the push's ref move. Each round copies each store afresh,
pushes it to an empty file:// remote (the statement pack goes up in the signed push), and
clones that remote into an empty store; the signed clone's store trusts the signer's key
first, so the clone checks the ref's statement and every commit's statement as it fetches
them (those the pack's seal covers by its one signature: docs/remotes.md, "Seals"). Signed
and unsigned alternate, best of ROUNDS; the CPU (user + system) of each command is recorded
too (a shared machine's load swings wall time more). `verify --all-history` of
the signed clone (one ed25519 verification per commit) is measured too, for information:
it is a separate command, not part of the clone. Full size is 10,000 commits; ``--quick``
(the CI smoke size) 1,000.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from bench.context import Context
from bench.ours import Mlgitfs
from bench.proc import children_cpu_seconds, run_module
from bench.registry import Row, case

COMMITS, QUICK_COMMITS = 10_000, 1_000
ROUNDS = 3
TARGET = 1.05


def _build(home: Path, commits: int, sign: bool) -> dict[str, Any]:
    out: dict[str, Any] = run_module(
        "signsynth", "build", str(home), str(commits), *(["--sign"] if sign else [])
    )
    return out


Timing = tuple[float, float]  # (wall s, CPU s: user + system of the command's process)


def _timed(ours: Mlgitfs, *args: str) -> Timing:
    cpu = children_cpu_seconds()
    wall = ours.run(*args)
    return wall, children_cpu_seconds() - cpu


def _round(ctx: Context, base: Path, sign: bool, n: int) -> tuple[Timing, Timing, Timing | None]:
    """(push, clone, verify or None) of one fresh copy of the store at `base`."""
    tag = f"{'signed' if sign else 'unsigned'}-{n}"
    work = ctx.work / "signing" / tag
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    home, clone_home, remote = work / "store", work / "clone", work / "remote"
    shutil.copytree(base, home)
    log = ctx.work / "logs" / "signing.log"
    ours = Mlgitfs(home, log)
    ours.run("remote", "add", "origin", remote.as_uri())
    ctx.settle()
    push = _timed(ours, "push", "s")
    theirs = Mlgitfs(clone_home, log)
    if sign:  # the cloner trusts the key first, so the clone checks every signature
        exported = ours.call("key", "export").stdout
        key_file = work / "bench.pub"
        key_file.write_text(exported)
        theirs.run("key", "import", str(key_file), "--name", "bench")
    clone = _timed(theirs, "clone", remote.as_uri(), "s")
    verify = _timed(theirs, "verify", "s@main", "--all-history") if sign else None
    shutil.rmtree(work, ignore_errors=True)
    return push, clone, verify


@case("signing_push_clone", "signing")
def signing_push_clone(ctx: Context) -> list[Row]:
    """Push and clone of a long signed history against the same history unsigned."""
    commits = QUICK_COMMITS if ctx.quick else COMMITS
    bases = {s: ctx.work / "signing" / ("base-signed" if s else "base-unsigned") for s in (0, 1)}
    info = {}
    for sign, base in bases.items():
        shutil.rmtree(base, ignore_errors=True)
        base.parent.mkdir(parents=True, exist_ok=True)
        info[sign] = _build(base, commits, bool(sign))
    ctx.log(f"signing: {commits} commits built in {info[0]['seconds']:.0f}s / "
            f"{info[1]['seconds']:.0f}s (signed)")  # fmt: skip
    best: dict[tuple[int, str], float] = {}
    cpu: dict[tuple[int, str], float] = {}  # least CPU seconds, for information
    runs: list[dict[str, Any]] = []
    for n in range(ROUNDS):
        for sign in (0, 1) if n % 2 == 0 else (1, 0):
            push, clone, verify = _round(ctx, bases[sign], bool(sign), n)
            for what, got in (("push", push), ("clone", clone), ("verify", verify)):
                if got is not None:
                    best[(sign, what)] = min(best.get((sign, what), float("inf")), got[0])
                    cpu[(sign, what)] = min(cpu.get((sign, what), float("inf")), got[1])
                    runs.append({"round": n, "signed": bool(sign), "what": what,
                                 "wall": got[0], "cpu": got[1]})  # fmt: skip
    label = f"{commits:,} commits"

    def named(d: dict[tuple[int, str], float]) -> dict[str, float]:
        return {f"{'signed' if k[0] else 'unsigned'} {k[1]}": v for k, v in d.items()}

    extra = {"build": info, "best": named(best), "cpu": named(cpu), "runs": runs}
    rows = [
        Row(
            "signing_push_clone", f"push of {label}: signed / unsigned",
            best[(1, "push")], best[(0, "push")], best[(1, "push")] / best[(0, "push")],
            TARGET, "max", "s", "unsigned", extra=extra,
        ),
        Row(
            "signing_push_clone", f"clone of {label}: signed / unsigned",
            best[(1, "clone")], best[(0, "clone")], best[(1, "clone")] / best[(0, "clone")],
            TARGET, "max", "s", "unsigned",
        ),
        Row(
            "signing_push_clone", f"CPU (user + system) of the clone of {label}: signed / "
            "unsigned", cpu[(1, "clone")], cpu[(0, "clone")],
            cpu[(1, "clone")] / cpu[(0, "clone")], None, "max", "s", "unsigned",
        ),
        Row(
            "signing_push_clone", f"verify --all-history of {label} / unsigned clone",
            best[(1, "verify")], best[(0, "clone")], best[(1, "verify")] / best[(0, "clone")],
            None, "max", "s", "unsigned clone",
        ),
    ]  # fmt: skip
    if not ctx.keep:
        shutil.rmtree(ctx.work / "signing", ignore_errors=True)
    return rows
