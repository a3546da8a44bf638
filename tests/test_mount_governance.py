"""Governance on the paths beside import (docs/governance.md): a writable mount's commit
judged by a `signed_by` rule as an import is; `mount` applying the trust policy to the
version it serves (refused or warned, by `trust`); revert, cherry-pick and reset meeting the
direct-commit refusal of protected, merges-only and signed_by branches. Every refusal
changes nothing."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mlgitfs.daemon import registry
from mlgitfs.model.ids import short_hex
from tests.conftest import Cli, write_tree
from tests.test_hooks import head
from tests.test_trust import change, refs, team
from tests.wmount import OLD, Mounter, mlgitfs, mounter
from testsupport.mounts import detach, fuse_skip_reason, is_mounted, stop_pid

__all__ = ["mounter"]  # a fixture


def fuse(test: Callable[..., None]) -> Callable[..., None]:
    skip = pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason()))
    return pytest.mark.fuse(skip(test))


SIGNED = '[[branch]]\npattern = "main"\nsigned_by = "maintainer"\n'


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, "mlgitfs.repo.refsign")  # keys a ring lacks: warned
    caplog.set_level(logging.ERROR, "mlgitfs.repo.trustcheck")  # trust = warn: warned


def _sh(mp: Path, script: str) -> None:
    subprocess.run(["sh", "-c", script], cwd=mp, check=True, timeout=60)


def _changes(home: Path, mp: Path) -> list[str]:
    doc = json.loads(mlgitfs(home, "status", str(mp), "--json").stdout)
    return sorted(c["path"] for c in doc["changes"])


def _error(stderr: str) -> str:
    (line,) = [x for x in stderr.splitlines() if x.startswith("mlgitfs: error: ")]
    return line


# --- 1. signed_by on a writable mount's commit ----------------------------------------------


@fuse
def test_mount_commit_on_a_signed_by_branch(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    mlgitfs(home, "init", "ds", "--kind", "dataset", "--mutability", "mutable")
    src = write_tree(tmp_path / "src", {".mlgitfs/hooks.toml": SIGNED, "a.txt": "one\n",
                                        "b.txt": "two\n"}, mtime_ns=OLD)  # fmt: skip
    mlgitfs(home, "import", "ds@main", str(src), "-m", "first")  # a first version: no rule yet
    first = head(home)
    (src / "x.txt").write_text("x")
    # an import is refused (this store signs nothing) before the mount holds changes (with
    # them, an import is refused for that: UnsafeOperation)
    imp = mlgitfs(home, "import", "ds@main", str(src), "-m", "x", check=False)
    assert imp.returncode == 36, imp.stderr
    mp = mounter("ds@main")
    _sh(mp, "echo more >> a.txt && echo new > c.txt && rm b.txt")
    held = ["a.txt", "b.txt", "c.txt"]
    com = mlgitfs(home, "commit", str(mp), "-m", "from the mount", check=False)
    assert com.returncode == 36, com.stderr  # as the import: BranchProtected
    said = _error(com.stderr)
    assert "branch rule 'main' in .mlgitfs/hooks.toml: signed_by = 'maintainer'" in said
    assert said == _error(imp.stderr).replace("an import", "a commit in a writable mount")
    assert head(home) == first and _changes(home, mp) == held
    mlgitfs(home, "key", "generate", "--name", "walt")
    mlgitfs(home, "access", "grant", "walt", "writer", "--repo", "ds")
    com = mlgitfs(home, "commit", str(mp), "-m", "from the mount", check=False)
    assert com.returncode == 36, com.stderr
    assert "this store signs as walt, who holds writer there: a commit in a writable mount is " \
        "refused; nothing was changed" in _error(com.stderr)  # fmt: skip
    assert head(home) == first and _changes(home, mp) == held
    assert (mp / "a.txt").read_text() == "one\nmore\n"
    mlgitfs(home, "access", "grant", "walt", "maintainer", "--repo", "ds", "--branch", "main")
    out = mlgitfs(home, "commit", str(mp), "-m", "signed by a maintainer")
    assert head(home) != first, out.stderr
    assert _changes(home, mp) == []
    (cv,) = json.loads(mlgitfs(home, "verify", "ds@main", "--json").stdout)["commits"]
    who = {(s["kind"], s["identity"], s["status"]) for s in cv["statements"]}
    assert who == {("commit", "walt", "valid")}


# --- 2. mount applies the trust policy ------------------------------------------------------


@pytest.fixture
def mounts(home: Path) -> Iterator[list[Path]]:
    """Mount points a test mounted itself (to read the mount's stderr): torn down after."""
    made: list[Path] = []
    yield made
    for mp in made:
        for rec in registry.list_mounts(home / "mounts"):
            if rec.mountpoint == str(mp):
                stop_pid(rec.pid)
        detach(mp)


def _mount(home: Path, tmp_path: Path, spec: str, name: str, *extra: str) -> tuple[int, str]:
    mp = tmp_path / name
    mp.mkdir(exist_ok=True)
    out = mlgitfs(home, "mount", spec, str(mp), *extra, check=False)
    return out.returncode, out.stderr


@fuse
def test_mount_refuses_or_warns_history_that_breaks_the_policy(
    home: Path, tmp_path: Path, mounts: list[Path]
) -> None:
    url, ada, walt, _ = team(tmp_path)
    me = Cli(home)
    me("clone", url, "ds")
    clean = refs(me)["heads/main"]
    change(walt, tmp_path, "walt", "w.txt")
    walt("promote", "ds@walt", "--to", "main")
    walt("config", "trust", "off")  # past his own client's checks: a writer moves main
    walt("push", "ds")
    me("fetch", "ds", code=44)  # refused: nothing moved, nothing recorded
    me("config", "trust", "warn")
    me("fetch", "ds")  # let through, and recorded against the commit it moved main to
    me("pull", "ds")  # main fast-forwards to it
    assert refs(me)["heads/main"] == refs(walt)["heads/main"] != clean
    me("config", "trust", "refuse")
    mounts.append(tmp_path / "refused")  # torn down should a mount be made
    for spec in ("ds@origin/main", "ds@main"):  # read-only and writable alike
        code, err = _mount(home, tmp_path, spec, "refused")
        assert code == 44, err
        assert f"{spec} ({short_hex(refs(walt)['heads/main'])})" in err
        assert "moving it needs maintainer" in err and "nothing was mounted" in err
        assert not is_mounted(tmp_path / "refused")
        assert list((tmp_path / "refused").iterdir()) == []
    code, err = _mount(home, tmp_path, "ds", "refused", "--write", "main")  # @main/ writable
    assert code == 44 and "ds@main (" in err and "nothing was mounted" in err, err
    assert registry.list_mounts(home / "mounts") == []
    mounts.append(tmp_path / "old")  # a version before the breach mounts, unwarned
    code, err = _mount(home, tmp_path, f"ds@{clean.hex()}", "old")
    assert code == 0 and "WARNING" not in err, err

    me("config", "trust", "warn")
    mounts.append(tmp_path / "warned")
    code, err = _mount(home, tmp_path, "ds@main", "warned")
    assert code == 0, err
    assert "WARNING mlgitfs.repo.mounttrust: ds@main: " in err
    assert "moving it needs maintainer" in err and "mounted all the same" in err
    assert (tmp_path / "warned" / "w.txt").read_text() == "w.txt"
    me("config", "trust", "off")  # nothing checked
    mounts.append(tmp_path / "off")
    code, err = _mount(home, tmp_path, "ds@origin/main", "off")
    assert code == 0 and "WARNING" not in err, err


@fuse
def test_a_commit_that_breaks_the_policy_taints_what_contains_it(
    home: Path, tmp_path: Path, mounts: list[Path]
) -> None:
    """An unsigned commit on protected main (written past every client): a version built on
    it carries the breach; the ref move alone does not reach a later version."""
    from mlgitfs.store import packs
    from mlgitfs.store.transports import open_transport

    url, ada, walt, _ = team(tmp_path)
    me = Cli(home)
    me("clone", url, "ds")
    mallory = Cli(tmp_path / "mallory")
    mallory("clone", url, "ds")
    change(mallory, tmp_path, "m", "m.txt")  # unsigned: she has no key
    mallory("push", "ds@m")
    t = open_transport(url)
    t.put(packs.ref_key("ds", "heads/main"), packs.encode_ref(refs(mallory)["heads/m"]))
    me("config", "trust", "warn")
    me("fetch", "ds")
    me("branch", "ds@dev", "ds@origin/main")
    work = tmp_path / "dev-work"
    me("export", "ds@dev", str(work))
    (work / "d.txt").write_text("d")
    me("import", "ds@dev", str(work), "-m", "on top of mallory's commit")
    me("config", "trust", "refuse")
    mounts += [tmp_path / "dev", tmp_path / "om"]  # torn down should a mount be made
    code, err = _mount(home, tmp_path, "ds@dev", "dev", "--read-only")
    assert code == 44 and "carries no author's signature (on protected ds@main)" in err, err
    assert "without a signature (no ref statement)" not in err  # that move was origin/main's
    code, err = _mount(home, tmp_path, "ds@origin/main", "om", "--read-only")
    assert code == 44 and "without a signature (no ref statement)" in err, err
    assert registry.list_mounts(home / "mounts") == []


# --- 3. revert, cherry-pick and reset meet the direct-commit refusal ------------------------


CHECK = '[[check]]\nname = "small"\ntype = "max-size"\nsize = 1000\n'
RULES = {
    "protected": '[[branch]]\npattern = "main"\nprotected = true\n',
    "merges_only": CHECK + '[[branch]]\npattern = "main"\nmerges_only = true\n'
    'required_checks = ["small"]\n',
    "signed_by": SIGNED,
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_revert_cherry_pick_and_reset_are_direct_commits(
    cli: Cli, home: Path, tmp_path: Path, rule: str
) -> None:
    src = write_tree(tmp_path / "src", {".mlgitfs/hooks.toml": RULES[rule], "a.txt": "a"})
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    if rule == "signed_by":  # walt signs, and holds writer only
        cli("key", "generate", "--name", "walt")
        cli("access", "grant", "walt", "writer", "--repo", "ds")
    cli("import", "ds@main", str(src), "-m", "first")  # a first version: no rule yet
    cli("branch", "ds@dev", "ds@main")
    (src / "b.txt").write_text("b")
    cli("import", "ds@dev", str(src), "-m", "add b")
    before = refs(cli)
    imp = cli("import", "ds@main", str(src), "-m", "direct", code=36)
    ops = {
        "a revert": ("revert", "ds@dev", "--into", "ds@main"),
        "a cherry-pick": ("cherry-pick", "ds@dev", "--into", "ds@main"),
        "a reset": ("reset", "ds@main", "ds@dev"),
    }
    for via, args in ops.items():
        res = cli(*args, code=36)
        assert _error(res.stderr) == _error(imp.stderr).replace("an import", via), via
        assert refs(cli) == before
    if rule == "signed_by":  # held by a maintainer's key, each goes through, signed
        cli("access", "grant", "walt", "maintainer", "--repo", "ds")
        cli("cherry-pick", "ds@dev", "--into", "ds@main")
        (cv,) = json.loads(cli("verify", "ds@main", "--json").stdout)["commits"]
        assert {(s["kind"], s["identity"]) for s in cv["statements"]} == {("commit", "walt")}
        cli("revert", "ds@dev", "--into", "ds@main")
        cli("reset", "ds@main", "ds@dev", "--force")
        assert refs(cli)["heads/main"] == before["heads/dev"]
