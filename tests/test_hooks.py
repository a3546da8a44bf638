"""Hooks (.mlgitfs/hooks.toml): every event with a passing, failing, timed-out and crashing
command; what a hook sees (environment, changed paths, the read-only view); refusals that
change nothing; --no-verify and the branch rules; cached results."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.errors import HookRefused
from mlgitfs.meta import db
from tests.conftest import Cli, write_tree
from tests.test_sync import Remote, remote

HOOK = """\
import json, os, signal, sys, time
from pathlib import Path
mode, log = sys.argv[1], Path(sys.argv[2])
env = {k: v for k, v in os.environ.items() if k.startswith("MLGITFS_")}
doc = json.load(sys.stdin)
view = Path(env["MLGITFS_VIEW"])
seen = {c["path"]: (view / c["path"]).read_bytes().decode() for c in doc["changes"]
        if c["change"] != "deleted" and c["path"].endswith(".txt")}
try:
    (view / "written-by-hook").write_text("x")
    wrote = True
except OSError:
    wrote = False
with log.open("a") as f:
    f.write(json.dumps({"env": env, "stdin": doc, "seen": seen, "wrote": wrote,
                        "cwd": os.getcwd(), "pid": os.getpid()}) + "\\n")
if mode == "fail":
    print("labels are bad: row 7 has no label", file=sys.stderr)
    sys.exit(3)
if mode == "timeout":
    time.sleep(60)
if mode == "crash":
    os.kill(os.getpid(), signal.SIGSEGV)
"""


def hooks_toml(tmp_path: Path, mode: str, events: str, timeout: float = 30) -> str:
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    argv = [sys.executable, str(script), mode, str(tmp_path / "hook.log")]
    return (
        f'[[hook]]\nname = "probe"\nevents = {events}\n'
        f"command = {json.dumps(argv)}\ntimeout = {timeout}\n"
    )


def runs(tmp_path: Path) -> list[dict[str, object]]:
    log = tmp_path / "hook.log"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def head(home: Path, branch: str = "main") -> bytes | None:
    store = api.open_store(home)
    with store.env.read() as txn:
        return db.get_ref(txn, "ds", "heads/" + branch)


def setup(cli: Cli, tmp_path: Path, toml: str, files: dict[str, bytes | str] | None = None) -> Path:
    """ds@main with the hooks committed (the first commit is not gated: no head yet)."""
    src = write_tree(
        tmp_path / "src",
        {".mlgitfs/hooks.toml": toml, "a.txt": "one", "b.txt": "two", **(files or {})},
    )
    # mutable: these tests import changed files again (mutability: test_import_policy.py)
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "v1")
    return src


__all__ = ["remote"]
MODES = ["pass", "fail", "timeout", "crash"]
# What the edits of the pre-commit tests (import and mount) change, as a hook's stdin says.
EDITS = [("added", "c.txt"), ("deleted", "b.txt"), ("modified", "a.txt")]


def _expect(res_stderr: str, mode: str) -> None:
    want = {
        "fail": "failed (exit 3)",
        "timeout": "timed out",
        "crash": "crashed (killed by SIGSEGV)",
    }[mode]
    assert f"pre-commit hook 'probe' {want}" in res_stderr or want in res_stderr
    if mode == "fail":
        assert "labels are bad: row 7 has no label" in res_stderr
    assert "nothing was changed" in res_stderr


@pytest.mark.parametrize("mode", MODES)
def test_pre_commit_on_import(cli: Cli, tmp_path: Path, home: Path, mode: str) -> None:
    src = setup(cli, tmp_path, hooks_toml(tmp_path, mode, '["pre-commit"]', timeout=1.5))
    before = head(home)
    reflog = list(api.log(home, "ds@main"))
    assert runs(tmp_path) == []  # the first commit had no head to read hooks from
    (src / "a.txt").write_text("changed")
    (src / "c.txt").write_text("new")
    (src / "b.txt").unlink()
    if mode == "pass":
        res = cli("import", "ds", str(src), "-m", "v2")
        assert "pre-commit hook probe: passed" in res.stderr
        assert head(home) != before
    else:
        res = cli("import", "ds", str(src), "-m", "v2", code=34)
        _expect(res.stderr, mode)
        assert head(home) == before
        assert list(api.log(home, "ds@main")) == reflog
    (run,) = runs(tmp_path)
    env = run["env"]
    assert isinstance(env, dict)
    assert env["MLGITFS_REPO"] == "ds" and env["MLGITFS_BRANCH"] == "main"
    assert env["MLGITFS_EVENT"] == "pre-commit"
    assert before is not None and env["MLGITFS_BASE"] == before.hex()
    assert len(env["MLGITFS_CANDIDATE"]) == 64 and len(env["MLGITFS_TREE"]) == 64
    assert run["cwd"] == env["MLGITFS_VIEW"]
    stdin = run["stdin"]
    assert isinstance(stdin, dict)
    assert sorted((c["change"], c["path"]) for c in stdin["changes"]) == EDITS
    assert run["seen"] == {"a.txt": "changed", "c.txt": "new"}  # the candidate, read
    assert run["wrote"] is False  # the view is read-only
    if mode == "pass":
        assert env["MLGITFS_CANDIDATE"] == head(home).hex()  # type: ignore[union-attr]
    if mode == "timeout":  # the process group was killed, not left behind
        with pytest.raises(ProcessLookupError):
            os.kill(int(str(run["pid"])), 0)
    assert api.mounts(home) == []  # the view is gone


def test_export_view_where_fuse_is_missing(
    cli: Cli, tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLGITFS_HOOK_VIEW", "export")
    src = setup(cli, tmp_path, hooks_toml(tmp_path, "pass", '["pre-commit"]'))
    (src / "a.txt").write_text("exported")
    cli("import", "ds", str(src), "-m", "v2")
    (run,) = runs(tmp_path)
    assert run["seen"] == {"a.txt": "exported"}
    assert run["wrote"] is (os.geteuid() == 0)  # modes are all an export has (root passes)
    assert not Path(str(run["cwd"])).exists()  # removed after


@pytest.mark.parametrize("mode", MODES)
def test_pre_merge(cli: Cli, tmp_path: Path, home: Path, mode: str) -> None:
    src = setup(cli, tmp_path, hooks_toml(tmp_path, mode, '["pre-merge"]', timeout=1.5))
    cli("branch", "ds@dev", "ds@main")
    (src / "d.txt").write_text("from dev")
    cli("import", "ds@dev", str(src), "-m", "dev work")  # pre-merge hooks only: not gated
    main_src = write_tree(tmp_path / "main2", {})
    cli("export", "ds@main", str(main_src / "t"))
    (main_src / "t" / "m.txt").write_text("on main")
    cli("import", "ds@main", str(main_src / "t"), "-m", "main work")
    assert runs(tmp_path) == []
    before = head(home)
    if mode == "pass":
        res = cli("merge", "ds@dev", "--into", "ds@main")
        assert "pre-merge hook probe: passed" in res.stderr
        assert head(home) != before
    else:
        res = cli("merge", "ds@dev", "--into", "ds@main", code=34)
        assert head(home) == before
        assert "nothing was changed" in res.stderr
    (run,) = runs(tmp_path)
    stdin = run["stdin"]
    assert isinstance(stdin, dict)
    # What the merge changes on main: dev's new file, not main's own work.
    assert [(c["change"], c["path"]) for c in stdin["changes"]] == [("added", "d.txt")]
    assert run["seen"] == {"d.txt": "from dev"}


def test_pre_commit_gates_merge_commits_and_picks(cli: Cli, tmp_path: Path, home: Path) -> None:
    src = setup(cli, tmp_path, hooks_toml(tmp_path, "pass", '["pre-commit"]'))
    cli("branch", "ds@dev", "ds@main")
    (src / "d.txt").write_text("from dev")
    cli("import", "ds@dev", str(src), "-m", "dev work")
    other = tmp_path / "other"
    cli("export", "ds@main", str(other))
    (other / "m.txt").write_text("on main")
    cli("import", "ds@main", str(other), "-m", "main work")
    assert len(runs(tmp_path)) == 2  # both imports were commits of a branch with the hook
    cli("merge", "ds@dev", "--into", "ds@main")
    merged = runs(tmp_path)[-1]
    env, stdin = merged["env"], merged["stdin"]
    assert isinstance(env, dict) and isinstance(stdin, dict)
    assert env["MLGITFS_EVENT"] == "pre-commit"
    assert [(c["change"], c["path"]) for c in stdin["changes"]] == [("added", "d.txt")]
    # Reverting the merge gives back main's earlier tree, checked already: no hook spawned.
    res = cli("revert", "ds@main", "--into", "ds@main")
    assert "pre-commit hook probe: passed, cached" in res.stderr
    assert len(runs(tmp_path)) == 3


def test_fast_forward_merge_is_gated(cli: Cli, tmp_path: Path, home: Path) -> None:
    src = setup(cli, tmp_path, hooks_toml(tmp_path, "fail", '["pre-merge"]'))
    cli("branch", "ds@dev", "ds@main")
    (src / "a.txt").write_text("ff")
    cli("import", "ds@dev", str(src), "-m", "dev")
    before = head(home)
    cli("merge", "ds@dev", "--into", "ds@main", code=34)
    assert head(home) == before


def test_pre_merge_skip_and_branch_rules(cli: Cli, tmp_path: Path, home: Path) -> None:
    toml = hooks_toml(tmp_path, "fail", '["pre-merge"]') + (
        '[[branch]]\npattern = "main"\nallow_skip = false\n'
    )
    src = setup(cli, tmp_path, toml)
    cli("branch", "ds@dev", "ds@main")
    (src / "a.txt").write_text("ff")
    cli("import", "ds@dev", str(src), "-m", "dev")
    res = cli("merge", "ds@dev", "--into", "ds@main", "--no-verify", code=15)
    assert "--no-verify is not allowed on branch 'main'" in res.stderr
    assert runs(tmp_path) == []
    # dev allows it: the hook (for every branch) is skipped there.
    cli("branch", "ds@dev2", "ds@main")
    cli("merge", "ds@dev", "--into", "ds@dev2", "--no-verify")
    assert runs(tmp_path) == []


@pytest.mark.parametrize("mode", MODES)
def test_pre_push(cli: Cli, tmp_path: Path, home: Path, mode: str, remote: Remote) -> None:
    src = setup(cli, tmp_path, hooks_toml(tmp_path, mode, '["pre-push"]', timeout=1.5))
    cli("remote", "add", "origin", remote.url, *remote.add_args())
    if mode == "pass":
        cli("push", "ds")
        (run,) = runs(tmp_path)
        stdin = run["stdin"]
        assert isinstance(stdin, dict)
        assert stdin["base"] is None  # a branch new on the remote: every path is new
        assert {c["path"] for c in stdin["changes"]} == {".mlgitfs/hooks.toml", "a.txt", "b.txt"}
    else:
        cli("push", "ds", "--no-verify")  # main allows skipping: v1 goes up unchecked
        assert runs(tmp_path) == []
    keys = remote.remote_keys()
    (src / "a.txt").write_text("later")
    cli("import", "ds", str(src), "-m", "v2")
    if mode == "pass":
        cli("push", "ds")
    else:
        res = cli("push", "ds", code=34)
        assert "pre-push hook 'probe'" in res.stderr and "nothing was changed" in res.stderr
        assert remote.remote_keys() == keys  # no pack, no ref: nothing was sent
    second = runs(tmp_path)[-1]["stdin"]
    assert isinstance(second, dict) and second["base"] is not None
    assert [c["path"] for c in second["changes"]] == ["a.txt"]


@pytest.mark.parametrize("mode", MODES)
def test_post_commit_reports_and_never_refuses(
    cli: Cli, tmp_path: Path, home: Path, mode: str
) -> None:
    src = setup(cli, tmp_path, hooks_toml(tmp_path, mode, '["post-commit"]', timeout=1.5))
    before = head(home)
    (src / "a.txt").write_text("post")
    res = cli("import", "ds", str(src), "-m", "v2")
    status = {"pass": "passed", "fail": "failed", "timeout": "timed out", "crash": "crashed"}
    assert f"post-commit hook probe: {status[mode]}" in res.stderr
    after = head(home)
    assert after != before
    (run,) = runs(tmp_path)
    env = run["env"]
    assert isinstance(env, dict) and after is not None
    assert env["MLGITFS_CANDIDATE"] == after.hex()  # the commit, now on the branch


def test_hooks_file_change_takes_effect_once_committed(
    cli: Cli, tmp_path: Path, home: Path
) -> None:
    src = setup(cli, tmp_path, hooks_toml(tmp_path, "fail", '["pre-commit"]'))
    # A candidate that drops its own refusing hook is still judged by the committed one.
    (src / ".mlgitfs/hooks.toml").write_text("")
    cli("import", "ds", str(src), "-m", "remove the gate", code=34)
    res = cli("import", "ds", str(src), "-m", "remove the gate", "--no-verify")
    assert "probe" not in res.stderr
    (src / "a.txt").write_text("free now")
    cli("import", "ds", str(src), "-m", "ungated")
    assert len(runs(tmp_path)) == 1


def test_passing_hook_result_is_cached(cli: Cli, tmp_path: Path, home: Path) -> None:
    src = setup(cli, tmp_path, hooks_toml(tmp_path, "pass", '["pre-commit", "pre-push"]'))
    (src / "a.txt").write_text("v2")
    cli("import", "ds", str(src), "-m", "v2")
    assert len(runs(tmp_path)) == 1
    cli("remote", "add", "origin", (tmp_path / "remote").as_uri())
    res = cli("push", "ds")  # the same tree, the same hook: answered from the cache
    assert len(runs(tmp_path)) == 1
    del res
    # Other content runs it again.
    cli("branch", "ds@dev", "ds@main")
    (src / "a.txt").write_text("v3")
    cli("import", "ds@dev", str(src), "-m", "v3")
    assert len(runs(tmp_path)) == 2


def test_refusal_leaves_store_fsck_clean_and_api_raises(
    cli: Cli, tmp_path: Path, home: Path
) -> None:
    src = setup(cli, tmp_path, hooks_toml(tmp_path, "fail", '["pre-commit"]'))
    (src / "a.txt").write_text("v2")
    with pytest.raises(HookRefused) as info:
        api.import_dir(home, "ds", src, "v2")
    assert info.value.hook == "probe" and info.value.event == "pre-commit"
    assert "labels are bad" in info.value.output


def test_gc_during_a_hook_refuses_the_commit(cli: Cli, tmp_path: Path, home: Path) -> None:
    """A hook runs between the candidate's objects and the ref move; a gc sweep there sees
    the candidate unreachable and takes it. The ref move then refuses (exit 14)."""
    mlgitfs = Path(sys.executable).parent / "mlgitfs"
    toml = (
        '[[hook]]\nname = "gc"\nevents = ["pre-commit"]\n'
        f"command = {json.dumps([str(mlgitfs), '--home', str(home), '-q', 'gc'])}\n"
    )
    src = setup(cli, tmp_path, toml)
    before = head(home)
    (src / "a.txt").write_text("swept while checked")
    res = cli("import", "ds", str(src), "-m", "v2", code=14)
    assert "gc ran while the hooks of ds@main ran" in res.stderr
    assert head(home) == before
    cli("import", "ds", str(src), "-m", "v2", "--no-verify")  # the retry commits
    assert head(home) != before
