"""Safe deletion (issue 16 item 1): the reflog and recovery from it, its expiry,
`repos rm` and `push --delete`, through the CLI, with a real mount where a guard is about one."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.meta import roots
from mlgitfs.model.ids import ObjectId
from tests.conftest import Cli, write_tree
from tests.test_cli_refs import _id, ds, needs_fuse
from tests.test_sync import Remote, remote
from tests.wmount import Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason

__all__ = ["ds", "mounter", "remote"]


@pytest.fixture
def dev(ds: Path, cli: Cli) -> Path:
    """ds (two commits on main), and a branch dev one commit ahead that nothing else holds."""
    cli("branch", "ds@dev")
    (ds / "dev.txt").write_text("only on dev\n")
    cli("import", "ds@dev", str(ds), "-m", "dev work")
    (ds / "dev.txt").unlink()
    return ds


def test_reflog_records_who_when_why_and_brings_a_deleted_branch_back(
    cli: Cli, dev: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = _id(cli, "ds@dev")
    main = _id(cli, "ds@main")
    monkeypatch.setenv("MLGITFS_AUTHOR", "alice@lab")
    before = time.time_ns()
    cli("branch", "-d", "ds@dev", "--force")
    cli("log", "ds@dev", code=4)
    log = json.loads(cli("reflog", "ds@dev", "--json").stdout)
    assert [e["why"] for e in log] == ["delete heads/dev", "commit: dev work", "create heads/dev"]
    assert [e["selector"] for e in log] == ["dev@{0}", "dev@{1}", "dev@{2}"]
    assert log[0]["old"] == dev and log[0]["new"] == "" and log[0]["who"] == "alice@lab"
    assert log[0]["time_ns"] >= before and log[0]["time"].endswith("+00:00")
    assert log[1]["new"] == dev and log[2] == {**log[2], "old": "", "new": main}
    text = cli("reflog", "ds@dev").stdout.splitlines()
    assert text[0].startswith("dev@{0}\t") and f"{dev[:12]} -> (none)" in text[0]
    # the whole repo's reflog holds main's moves too, newest first
    whole = json.loads(cli("reflog", "ds", "--json").stdout)
    assert {e["ref"] for e in whole} == {"main", "dev"} and whole[0] == log[0]
    # @{0} of a deleted branch names nothing; @{1} is its head before the delete
    assert "dev was deleted then" in cli("show", "ds@dev@{0}", code=4).stderr
    assert "@{3} is the oldest" in cli("show", "ds@dev@{4}", code=4).stderr
    cli("branch", "ds@dev", "ds@dev@{1}")
    assert _id(cli, "ds@dev") == dev
    assert b"".join(api.cat(cli.home, "ds@dev:dev.txt")) == b"only on dev\n"
    assert json.loads(cli("reflog", "ds@dev", "--json").stdout)[0]["why"] == "create heads/dev"
    # a reflog selector names a commit, never a branch to move
    assert "invalid branch name" in cli("import", "ds@dev@{1}", str(dev), "-m", "x", code=6).stderr
    cli("reflog", "ds@nothing", code=4)
    cli("reflog", "nope", code=3)
    cli("reflog", "ds~1", code=2)


def test_reflog_expiry_is_configurable_and_ends_recovery_roots(cli: Cli, dev: Path) -> None:
    assert "reflog-expiry\t30d" in cli("config").stdout
    cli("config", "reflog-expiry", "1y", code=2)
    cli("config", "reflog-expiry", "soon", code=2)
    assert "reflog-expiry\t30d" in cli("config").stdout  # a refused value changed nothing
    dev = bytes.fromhex(_id(cli, "ds@dev"))
    cli("branch", "-d", "ds@dev", "--force")
    store = api.open_store(cli.home)
    with store.env.read() as txn:
        assert dev in roots.gc_roots(txn).reflog_commits
    cli("config", "reflog-expiry", "2h")
    assert json.loads(cli("config", "reflog-expiry", "--json").stdout) == [
        {"key": "reflog-expiry", "value": "2h"}
    ]
    with store.env.read() as txn:
        assert dev in roots.gc_roots(txn).reflog_commits
        assert dev not in roots.gc_roots(txn, time.time_ns() + 7201 * 10**9).reflog_commits
    cli("gc")  # entries inside the expiry stay, and keep what they name
    assert len(json.loads(cli("reflog", "ds@dev", "--json").stdout)) == 3
    cli("branch", "ds@dev", "ds@dev@{1}")
    cli("branch", "-d", "ds@dev", "--force")
    cli("config", "reflog-expiry", "0")
    with store.env.read() as txn:
        assert dev not in roots.gc_roots(txn, time.time_ns() + 1).reflog_commits
    # gc drops the expired entries (they keep nothing) and what only they kept
    cli("gc")
    cli("reflog", "ds@dev", code=4)
    assert "no reflog for 'dev'" in cli("show", "ds@dev@{1}", code=4).stderr
    assert not api.open_store(cli.home).has_object(ObjectId(dev))


def test_repos_rm_guards_and_a_clean_restart(cli: Cli, dev: Path, tmp_path: Path) -> None:
    cli("repos", "rm", "nope", "--yes", code=3)
    cli("repos", "rm", "ds", code=1, input=b"n\n")  # not confirmed: nothing happens
    err = cli("repos", "rm", "ds", "--yes", code=22).stderr
    assert "holds commits no remote holds" in err and "--force" in err
    remote_url = (tmp_path / "remote").as_uri()
    cli("remote", "add", "origin", remote_url)
    cli("push", "ds", "--all")
    cli("tag", "ds@local-only", "ds@dev")  # pushed as a commit already: the tracking ref holds
    out = cli("repos", "rm", "ds", input=b"y\n")
    assert "removed repo ds (5 refs, 0 checkouts)" in out.stderr
    assert json.loads(cli("repos", "--json").stdout) == []
    cli("log", "ds", code=3)
    # a new repo of the same name starts clean: no refs, no reflog of the old one
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    assert json.loads(cli("reflog", "ds", "--json").stdout) == []
    assert json.loads(cli("branch", "ds", "--json").stdout) == []
    # and the old history comes back from the remote
    cli("repos", "rm", "ds", "--yes")
    cli("clone", remote_url, "ds")
    assert _id(cli, "ds@dev") == _id(cli, "ds@origin/dev")


@needs_fuse
def test_repos_rm_refused_while_mounted_and_drops_checkouts(
    home: Path, cli: Cli, dev: Path, mounter: Mounter
) -> None:
    api.close_store(home)
    ro = mounter("ds@main~1", "ro")
    err = mlgitfs(home, "repos", "rm", "ds", "--yes", "--force", check=False)
    assert err.returncode == 11 and "is mounted at" in err.stderr
    mlgitfs(home, "unmount", str(ro))
    mp = mounter("ds@dev", "dev")
    (mp / "draft.txt").write_text("uncommitted\n")
    err = mlgitfs(home, "repos", "rm", "ds", "--yes", "--force", check=False)
    assert err.returncode == 11 and "is mounted at" in err.stderr
    mlgitfs(home, "unmount", str(mp))
    out = mlgitfs(home, "repos", "rm", "ds", "--yes", "--force")
    assert "1 checkouts" in out.stderr
    overlays = home / "overlays"
    assert not overlays.exists() or list(overlays.iterdir()) == []
    # a repo of the same name, its branch of the same name: no old overlay comes back
    mlgitfs(home, "init", "ds", "--kind", "dataset", "--mutability", "mutable")
    mlgitfs(home, "import", "ds", str(dev), "-m", "fresh")
    mlgitfs(home, "branch", "ds@dev")
    mp = mounter("ds@dev", "dev2")
    assert not (mp / "draft.txt").exists()
    st = json.loads(mlgitfs(home, "status", str(mp), "--json").stdout)
    assert st["changes"] == []


def test_push_delete_guards_and_effect(cli: Cli, dev: Path, remote: Remote, tmp_path: Path) -> None:
    cli("remote", "add", "origin", remote.url, *remote.add_args())
    cli("push", "ds", "--all")
    cli("tag", "ds@v1", "ds~1")
    cli("push", "ds", "--all")
    cli("push", "ds@gone", "--delete", code=4)
    err = cli("push", "ds@main", "--delete", code=22).stderr
    assert "default branch" in err
    cli("push", "ds@dev", "--force", code=2)  # --force goes with --delete
    # another store moves dev on the remote: this store has not seen it
    other = Cli(tmp_path / "other")
    other("clone", remote.url, "ds", *remote.add_args())
    src = write_tree(tmp_path / "o", {"o.txt": "other\n"})
    other("import", "ds@dev", str(src), "-m", "other's work")
    other("push", "ds@dev")
    err = cli("push", "ds@dev", "--delete", code=12).stderr
    assert "fetch and look first" in err
    cli("fetch", "ds")
    out = cli("push", "ds@dev", "--delete")
    assert out.stdout.startswith("deleted\tds@dev\t")
    keys = remote.remote_keys()
    assert "refs/ds/heads/dev" not in keys and "refs/ds/heads/main" in keys
    assert not [b for b in json.loads(cli("branch", "ds", "--json").stdout)
                if b["name"] == "origin/dev"]  # fmt: skip
    cli("show", "ds@origin/dev", code=4)
    cli("show", "ds@dev")  # the local branch stays
    out = cli("push", "ds@v1", "--delete", "--json")
    assert json.loads(out.stdout)["updates"][0]["status"] == "deleted"
    assert "refs/ds/tags/v1" not in remote.remote_keys()
    # a fresh clone sees neither
    third = Cli(tmp_path / "third")
    third("clone", remote.url, "ds", *remote.add_args())
    assert [b["name"] for b in json.loads(third("branch", "ds", "--json").stdout)] == ["main"]
    assert json.loads(third("tag", "ds", "--json").stdout) == []
    other("fetch", "ds")
    other("show", "ds@origin/dev", code=4)
    # --force: a ref moved since our fetch, and the default branch
    other("import", "ds@main", str(src), "-m", "moves main")
    other("push", "ds@main")
    cli("push", "ds@main", "--delete", code=22)  # moved too: --force overrides both
    cli("push", "ds@main", "--delete", "--force")
    assert not [k for k in remote.remote_keys() if k.startswith("refs/")]
    cli("show", "ds@main")  # the local branch stays, and can be pushed again
    cli("push", "ds@main")
    assert "refs/ds/heads/main" in remote.remote_keys()


def test_reading_an_expired_version_names_the_rule(
    home: Path, cli: Cli, tmp_path: Path, mounter: Mounter
) -> None:
    """Retention expires ds~2 and ds~1, gc lets their own contents go: reading them is
    VersionExpired (exit 26) naming the rule, in the CLI; EIO in a mount, with the rule in the
    daemon log and in `mounts`. Their history, names and sizes remain."""
    src = write_tree(tmp_path / "src", {"shared.txt": "in every version\n"})
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    for i in range(3):
        (src / "own.bin").write_bytes(bytes([i]) * 300_000 + b"%d" % i)
        cli("import", "ds", str(src), "-m", f"v{i}")
    old = _id(cli, "ds~2")
    cli("retention", "set", "ds", "--keep-last", "1")
    cli("config", "reflog-expiry", "0")
    assert [e["let_go_ns"] for e in json.loads(cli("retention", "show", "ds", "--json").stdout)[
        "expiring"]] == [0, 0]  # fmt: skip
    cli("gc")
    shown = cli("retention", "show", "ds").stdout
    assert f"expired\t{old[:12]}\tretention of ds@*" in shown and "expiring" not in shown
    rule = "retention of ds@* (keep-last 1, tags kept)"
    err = cli("cat", "ds~2:own.bin", code=26).stderr
    assert f"ds@{old[:12]} has expired" in err and rule in err and "UTC" in err
    assert cli("cat", "ds~2:shared.txt").stdout == "in every version\n"  # a kept version's
    out = tmp_path / "out"
    assert rule in cli("export", "ds~2", str(out), code=26).stderr
    assert not out.exists()  # what the export made is removed
    assert [c["message"] for c in json.loads(cli("log", "ds", "--json").stdout)] == [
        "v2", "v1", "v0"]  # fmt: skip
    sizes = {e["path"]: e["size"] for e in json.loads(cli("ls", "ds~2", "--json").stdout)}
    assert sizes["own.bin"] == 300_001
    assert "0 added, 1 modified" in cli("diff", "ds~2", "ds").stdout
    assert cli("cat", "ds:own.bin").stdout_bytes == b"\x02" * 300_000 + b"2"
    if fuse_skip_reason() is not None:
        return
    api.close_store(home)
    mp = mounter(f"ds@{old}", "old")
    assert (mp / "shared.txt").read_text() == "in every version\n"
    with pytest.raises(OSError) as caught:
        (mp / "own.bin").read_bytes()
    assert caught.value.errno == 5  # EIO
    listed = json.loads(mlgitfs(home, "mounts", "--json").stdout)
    assert rule in listed[0]["expired"]
    assert f"expired: ds@{old[:12]} has expired" in mlgitfs(home, "mounts").stdout
    log = (home / "mounts" / "daemon.log").read_text()
    assert "own.bin" in log and rule in log
