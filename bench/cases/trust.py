"""Trusted history (issue 17 item 3, docs/governance.md "Trusted history"): a clone that
checks a long signed history against the remote's access policy, against the same clone
with the check off (`config trust off`).

The store is bench/signsynth.py's signed chain of COMMITS commits, plus one last commit
(signed, by import) adding `.mlgitfs/hooks.toml` with `main` protected, so the clone must
verify every commit's author statement against the policy's keys as well as the ref move.
Its key `bench` is granted admin, the policy published to an empty file:// remote, and the
history pushed. Each round clones the remote into an empty store (made first by `key
import`, as a user trusting the key would, then `config trust` refuse or off), alternating,
best of ROUNDS. Full size is 10,000 commits; ``--quick`` 1,000.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.cases.signing import _build
from bench.context import Context
from bench.ours import Mlgitfs
from bench.registry import Row, case

COMMITS, QUICK_COMMITS = 10_000, 1_000
ROUNDS = 3
HOOKS = '[[branch]]\npattern = "main"\nprotected = true\n'


def _remote(ctx: Context, commits: int) -> tuple[Path, Path]:
    """(the remote, the exported public key) of the published, pushed history."""
    root = ctx.work / "trust"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    home, remote = root / "store", root / "remote"
    _build(home, commits, True)
    log = ctx.work / "logs" / "trust.log"
    ours = Mlgitfs(home, log)
    tree = root / "tree"
    ours.run("export", "s@main", tree)
    (tree / ".mlgitfs").mkdir()
    (tree / ".mlgitfs" / "hooks.toml").write_text(HOOKS)
    ours.run("import", "s", tree, "-m", "protect main")
    ours.run("remote", "add", "origin", remote.as_uri())
    ours.run("access", "grant", "bench", "admin")
    ours.run("access", "publish")
    ours.run("promote", "s@main", "--to", "main")
    ours.run("push", "s")
    key = root / "bench.pub"
    key.write_text(ours.call("key", "export").stdout)
    return remote, key


def _clone(ctx: Context, remote: Path, key: Path, mode: str, n: int) -> float:
    home = ctx.work / "trust" / f"clone-{mode}-{n}"
    shutil.rmtree(home, ignore_errors=True)
    theirs = Mlgitfs(home, ctx.work / "logs" / "trust.log")
    theirs.run("key", "import", key, "--name", "bench")
    theirs.run("config", "trust", mode)
    ctx.settle()
    seconds = theirs.run("clone", remote.as_uri(), "s")
    shutil.rmtree(home, ignore_errors=True)
    return seconds


@case("trust_clone", "trust")
def trust_clone(ctx: Context) -> list[Row]:
    """Clone of a long signed history checked against the access policy, against unchecked."""
    commits = QUICK_COMMITS if ctx.quick else COMMITS
    remote, key = _remote(ctx, commits)
    best: dict[str, float] = {}
    for n in range(ROUNDS):
        for mode in ("refuse", "off") if n % 2 == 0 else ("off", "refuse"):
            s = _clone(ctx, remote, key, mode, n)
            best[mode] = min(best.get(mode, float("inf")), s)
    label = f"clone of {commits + 1:,} commits, main protected: policy checked / not"
    rows = [
        Row(
            "trust_clone", label, best["refuse"], best["off"], best["refuse"] / best["off"],
            None, "max", "s", "trust off", extra={"best": best},
        )
    ]  # fmt: skip
    if not ctx.keep:
        shutil.rmtree(ctx.work / "trust", ignore_errors=True)
    return rows
