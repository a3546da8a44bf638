"""The CLI surface: stores that are never made by accident, global options anywhere, errors
that explain (never a traceback, Ctrl-C exits 130), commands that fail instead of pretending,
and outputs that say what the docs say."""

from __future__ import annotations

import inspect
import json
import os
import signal
import socket
import string
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import fsspec
import pytest
from click.testing import CliRunner

from mlgitfs import api
from mlgitfs.errors import MlgitError, RemoteError
from tests.conftest import Cli, set_mtimes, write_tree
from tests.wmount import MLGITFS, Mounter, mlgitfs, mounter
from testsupport.mounts import fuse_skip_reason, stop_pid

__all__ = ["mounter"]
OLD = 1_600_000_000_000_000_000
needs_fuse = pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason()))


def run(*args: str, env: dict[str, str] | None = None) -> Any:
    """The CLI in-process with exactly these arguments (no --home added)."""
    from mlgitfs_cli.main import cli

    return CliRunner().invoke(cli, list(args), env=env)


@pytest.fixture
def ds(tmp_path: Path, cli: Cli) -> Path:
    src = write_tree(tmp_path / "src", {"labels.csv": "x,y\n", "train/a.jpg": os.urandom(3000)})
    set_mtimes(src, OLD)
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(src), "-m", "v1")
    return src


# --- stores -----------------------------------------------------------------------------------


def test_no_command_but_init_and_clone_makes_a_store(tmp_path: Path, home: Path, ds: Path) -> None:
    typo = tmp_path / "stroe"
    for args in (["repos"], ["log", "ds"], ["mounts"], ["config"], ["remote", "list"],
                 ["fsck"], ["branch", "ds@x"], ["import", "ds", str(ds), "-m", "m"]):  # fmt: skip
        r = run("--home", str(typo), *args)
        assert r.exit_code == 24, (args, r.output)
        assert f"no mlgitfs store at {typo}" in r.stderr and "MLGITFS_HOME" in r.stderr
        assert not typo.exists(), args
    r = run("repos", env={"MLGITFS_HOME": str(typo)})
    assert r.exit_code == 24 and str(typo) in r.stderr and not typo.exists()
    assert run("--home", str(typo), "init", "x", "--kind", "model", "--mutability",
               "mutable").exit_code == 0  # fmt: skip
    api.close_store(typo)


def test_errors_name_the_store(home: Path, cli: Cli, ds: Path) -> None:
    err = cli("log", "nope", code=3).stderr
    assert f"no repo named 'nope' in the store at {home}" in err
    err = cli("push", "ds", code=2).stderr
    assert f"the store at {home} has no remote" in err


def test_fsspec_same_defaults_and_errors(
    tmp_path: Path, home: Path, cli: Cli, ds: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("MLGITFS_HOME", raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    fs = fsspec.filesystem("mlgitfs", skip_instance_cache=True)
    with pytest.raises(MlgitError, match="no mlgitfs store at .*/user/.local/share/mlgitfs"):
        fs.ls("ds@main")
    assert not (tmp_path / "user").exists()
    monkeypatch.setenv("MLGITFS_HOME", str(home))
    fs = fsspec.filesystem("mlgitfs", skip_instance_cache=True)
    assert fs.cat("ds@main/labels.csv") == b"x,y\n"
    with pytest.raises(FileNotFoundError, match="no branch, tag or commit 'nope'"):
        fs.info("ds@nope/labels.csv")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        fs.info("ds@main/nope.csv")


def test_fsspec_refs_with_slashes_and_remote_tracking(
    tmp_path: Path, home: Path, cli: Cli, ds: Path
) -> None:
    cli("branch", "ds@bob/relabel")
    (ds / "labels.csv").write_text("x,y\nbob\n")
    cli("import", "ds@bob/relabel", str(ds), "-m", "bob's labels")
    cli("remote", "add", "origin", (tmp_path / "remote").as_uri())
    cli("push", "ds")
    fs = fsspec.filesystem("mlgitfs", home=str(home), skip_instance_cache=True)
    assert fs.cat("ds@bob/relabel/labels.csv") == b"x,y\nbob\n"
    assert fs.cat("mlgitfs://ds@bob/relabel:labels.csv") == b"x,y\nbob\n"
    assert fs.cat("ds@origin/main/labels.csv") == b"x,y\n"  # remote-tracking ref
    assert fs.cat("ds@main~0:labels.csv") == b"x,y\n"
    assert sorted(fs.ls("ds@bob/relabel", detail=False)) == [
        "ds@bob/relabel/labels.csv",
        "ds@bob/relabel/train",
    ]
    assert fs.ls("ds@bob/relabel:train", detail=False) == ["ds@bob/relabel:train/a.jpg"]
    assert fs.info("ds@bob/relabel:train")["type"] == "directory"


# --- global options, help ------------------------------------------------------------------


def test_global_options_before_or_after_the_command(home: Path, ds: Path) -> None:
    before = run("--home", str(home), "-q", "repos")
    after = run("repos", "--home", str(home), "-q")
    assert before.exit_code == after.exit_code == 0
    assert after.stdout == before.stdout and "ds\tdataset" in after.stdout
    assert run("log", "ds", "--home", str(home), "-n", "1").exit_code == 0
    assert run("remote", "list", "--home", str(home)).exit_code == 0
    r = run("log", "nope", "--home", str(home), "-v")  # -v after: the traceback is logged
    assert r.exit_code == 3 and "Traceback" in r.stderr
    r = run("log", "nope", "--home", str(home))
    assert r.exit_code == 3 and "Traceback" not in r.stderr


def _options(cmd: click.Command, path: str) -> Iterator[tuple[str, click.Parameter]]:
    for p in cmd.params:
        yield path, p
    if isinstance(cmd, click.Group):
        for name, sub in cmd.commands.items():
            yield from _options(sub, f"{path} {name}")


def test_every_option_has_help_and_a_shown_default() -> None:
    from mlgitfs_cli.main import cli

    for path, p in _options(cli, "mlgitfs"):
        if isinstance(p, click.Option) and not p.hidden:
            assert p.help, f"{path} {p.opts} has no help text"
    for args in (["init", "--help"], ["lineage", "--help"], ["clone", "--help"]):
        assert run(*args).exit_code == 0
    init = run("init", "--help").stdout
    for policy in ("strict", "flexible", "mutable"):
        assert f"\n    {policy}" in init, init
    assert "[default: both]" in run("lineage", "--help").stdout
    assert "[default: origin]" in run("clone", "--help").stdout
    assert "[default: 256M]" in run("mount", "--help").stdout


# --- errors ----------------------------------------------------------------------------------


def _dependency_errors() -> list[BaseException]:
    """One instance of every exception class boto3 and botocore define, plus ClientErrors of
    the codes S3 answers with."""
    from boto3 import exceptions as b3e
    from botocore import exceptions as bce

    out: list[BaseException] = []
    for module in (bce, b3e):
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if not issubclass(cls, Exception) or issubclass(cls, Warning):
                continue
            if cls.__module__ not in (bce.__name__, b3e.__name__):
                continue
            out.append(_instance(cls))
    for code, status in [("AccessDenied", 403), ("NoSuchKey", 404), ("NoSuchBucket", 404),
                         ("InternalError", 500), ("SlowDown", 503), ("PreconditionFailed", 412),
                         ("NotImplemented", 501), ("InvalidRange", 416)]:  # fmt: skip
        resp: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
        out.append(bce.ClientError(resp, "PutObject"))
    return out


def _instance(cls: type[Exception]) -> Exception:
    """An instance built from the constructor's signature and the message's format fields."""
    fields = {f for _, f, _, _ in string.Formatter().parse(getattr(cls, "fmt", "")) if f}
    response = {"Error": {"Code": "Odd"}, "ResponseMetadata": {"HTTPStatusCode": 400}}
    params = dict(inspect.signature(cls.__init__).parameters)
    params.pop("self", None)
    kwargs: dict[str, Any] = {}
    for name, p in params.items():
        if p.kind is p.VAR_KEYWORD:
            kwargs.update({f: "x" for f in fields if f not in params})
        elif p.kind is not p.VAR_POSITIONAL and p.default is p.empty:
            kwargs[name] = response if name in ("error_response", "last_response") else "x"
    return cls(**kwargs)


@pytest.fixture
def raiser() -> Iterator[list[BaseException]]:
    """A command on the real CLI group that raises what the test puts in the list."""
    from mlgitfs_cli.main import cli

    todo: list[BaseException] = []

    @click.command("raise-for-test")
    def cmd() -> None:
        raise todo[0]

    cli.add_command(cmd)
    yield todo
    del cli.commands["raise-for-test"]


def test_every_dependency_error_is_translated_and_reported(raiser: list[BaseException]) -> None:
    from mlgitfs.store import s3

    errors = _dependency_errors()
    assert len(errors) > 60  # every class, not a handful
    for exc in errors:
        mapped = s3.translate(exc, "put", "s3://b/p/ key k", "http://127.0.0.1:1")  # type: ignore[arg-type]
        assert isinstance(mapped, RemoteError), type(exc)
        for raised, code in ((mapped, mapped.exit_code), (exc, 1)):
            raiser[:] = [raised]
            r = run("raise-for-test")
            assert r.exit_code == code, (type(exc), r.output)
            assert "Traceback" not in r.output and r.stderr.startswith("mlgitfs: "), r.output
            assert r.stderr.count("\n") == 1, r.stderr


def test_ctrl_c_exits_130_in_process(raiser: list[BaseException]) -> None:
    raiser[:] = [KeyboardInterrupt()]
    r = run("raise-for-test")
    assert r.exit_code == 130 and "interrupted" in r.stderr and "Traceback" not in r.output


@pytest.fixture
def silent_server() -> Iterator[tuple[str, threading.Event]]:
    """A TCP server on loopback that accepts and never answers (an S3 endpoint that hangs)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    accepted = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            held.append(conn)
            accepted.set()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}", accepted
    srv.close()
    for c in held:
        c.close()
    t.join(5)


def test_ctrl_c_during_clone_exits_130_and_leaves_nothing(
    tmp_path: Path, silent_server: tuple[str, threading.Event]
) -> None:
    endpoint, accepted = silent_server
    home = tmp_path / "fresh"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    proc = subprocess.Popen(
        [MLGITFS, "--home", str(home), "clone", "s3://bucket/x", "ds", "--endpoint-url", endpoint],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert accepted.wait(30), "the clone never reached the endpoint"
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            stop_pid(proc.pid)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not home.exists()  # the store this clone would have made is not left behind


# --- commands fail instead of pretending -------------------------------------------------------


def test_failed_clone_leaves_nothing_behind(tmp_path: Path, home: Path, cli: Cli, ds: Path) -> None:
    good = tmp_path / "remote"
    cli("remote", "add", "origin", good.as_uri())
    cli("push", "ds")
    typo = tmp_path / "remot"
    other = tmp_path / "other-store"
    for url, code in ((typo.as_uri(), 13), (good.as_uri(), 0)):
        r = run("--home", str(other), "clone", url, "ds")
        if code:
            assert r.exit_code == code and "not an mlgitfs remote" in r.stderr, r.output
            assert not typo.exists()  # no directory made at the mistyped URL
            assert not other.exists()  # no store made for a clone that failed
    api.close_store(other)
    # into an existing store: the failed clone registers no remote, so the right one works
    cli("init", "x", "--kind", "model", "--mutability", "mutable")
    err = cli("clone", typo.as_uri(), "ds", "dscopy", "--remote", "backup", code=13).stderr
    assert "not an mlgitfs remote" in err
    assert json.loads(cli("remote", "list", "--json").stdout) == [
        {"name": "origin", "url": good.as_uri(), "endpoint_url": None, "conditional_writes": True}
    ]
    err = cli("clone", good.as_uri(), "nope", "--remote", "backup", code=3).stderr
    assert "has no repo 'nope'" in err
    assert len(json.loads(cli("remote", "list", "--json").stdout)) == 1
    cli("clone", good.as_uri(), "ds", "dscopy", "--remote", "backup")
    assert cli("cat", "dscopy:labels.csv").stdout == "x,y\n"


def test_export_into_a_missing_parent_and_failures(tmp_path: Path, cli: Cli, ds: Path) -> None:
    deep = tmp_path / "a" / "b" / "out"
    cli("export", "ds", str(deep))
    assert (deep / "labels.csv").read_text() == "x,y\n"
    # a parent that is a file: not the exit code of refused import input (9), but 25
    (tmp_path / "file").write_text("not a directory")
    err = cli("export", "ds", str(tmp_path / "file" / "x"), code=25).stderr
    assert "cannot write" in err and "nothing was left behind" in err


def test_export_failure_removes_what_it_made(
    tmp_path: Path, home: Path, cli: Cli, ds: Path
) -> None:
    # a chunk gone from the store: the export fails midway and leaves nothing behind
    api.close_store(home)
    for seg in (home / "chunks").rglob("*.seg"):
        seg.write_bytes(b"\0" * seg.stat().st_size)
    dest = tmp_path / "new" / "out"
    r = run("--home", str(home), "export", "ds", str(dest))
    assert r.exit_code == 7, r.output
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("--home", str(home), "export", "ds", str(empty)).exit_code == 7
    assert os.listdir(empty) == []
    api.close_store(home)
    (home / "meta").rename(home / "meta.gone")  # the damaged store is not fsck'ed at teardown


def test_log_n_zero_and_diff_paths_outside(cli: Cli, ds: Path) -> None:
    assert cli("log", "ds", "-n", "0").stdout == ""
    assert json.loads(cli("log", "ds", "-n", "0", "--json").stdout) == []
    assert cli("log", "ds", "-n", "1").stdout.count("commit ") == 1
    cli("log", "ds", "-n", "-1", code=2)
    cli("diff", "ds", "ds", "../x", code=6)
    cli("diff", "ds", "ds", "train/../..", code=6)
    cli("log", "ds", "--path", "../x", code=17)


# --- outputs as documented ---------------------------------------------------------------------


def test_ls_json_sizes(cli: Cli, ds: Path) -> None:
    items = {e["path"]: e for e in json.loads(cli("ls", "ds", "-R", "--json").stdout)}
    assert items["train"]["size"] == 0 and items["train"]["entries"] == 1
    assert items["train/a.jpg"]["size"] == 3000 and items["train/a.jpg"]["entries"] is None
    assert items["labels.csv"]["size"] == 4


def test_remote_refs_spelled_alike_in_log_and_lineage(tmp_path: Path, cli: Cli, ds: Path) -> None:
    cli("remote", "add", "origin", (tmp_path / "r").as_uri())
    cli("tag", "ds@v1")
    cli("push", "ds", "--all")
    log = json.loads(cli("log", "ds", "--json").stdout)[0]["refs"]
    lin = json.loads(cli("lineage", "ds", "--json").stdout)["upstream"]["refs"]
    assert {"main", "v1", "origin/main", "origin/tags/v1"} <= set(log)
    assert sorted(log) == sorted(lin)
    assert not any("heads/" in r for r in log + lin)
    assert "origin/main" in cli("lineage", "ds").stdout


@needs_fuse
def test_mounts_lists_dead_mounts_as_dead(home: Path, cli: Cli, ds: Path, mounter: Mounter) -> None:
    api.close_store(home)
    mp = mounter("ds@main~0", "ro")
    [m] = json.loads(mlgitfs(home, "mounts", "--json").stdout)
    assert m["alive"] is True
    stop_pid(m["pid"], signal.SIGKILL)
    [m] = json.loads(mlgitfs(home, "mounts", "--json").stdout)
    assert m["alive"] is False and m["mountpoint"] == str(mp)
    assert "dead" in mlgitfs(home, "mounts").stdout
    mlgitfs(home, "unmount", str(mp))
    assert json.loads(mlgitfs(home, "mounts", "--json").stdout) == []


def _complete(home: Path, words: str) -> list[str]:
    """What bash completion offers for the last word of `words` (click's protocol)."""
    parts = words.split(" ")
    env = {**os.environ, "_MLGITFS_COMPLETE": "bash_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(parts) - 1), "MLGITFS_HOME": str(home)}  # fmt: skip
    proc = subprocess.run([MLGITFS], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [line.split(",", 1)[1] for line in proc.stdout.splitlines() if line]


def test_shell_completion_of_commands_repos_refs_paths(home: Path, cli: Cli, ds: Path) -> None:
    cli("tag", "ds@v1")
    cli("remote", "add", "origin", (home.parent / "r").as_uri())
    api.close_store(home)
    assert "log" in _complete(home, "mlgitfs lo") and "lineage" in _complete(home, "mlgitfs li")
    assert _complete(home, "mlgitfs log d") == ["ds", "ds@"]
    assert set(_complete(home, "mlgitfs log ds@")) >= {"ds@main", "ds@v1", "ds@main:"}
    assert _complete(home, "mlgitfs ls ds@main:") == ["ds@main:labels.csv", "ds@main:train/"]
    assert _complete(home, "mlgitfs cat ds@main:train/") == ["ds@main:train/a.jpg"]
    assert _complete(home, "mlgitfs push ds o") == ["origin"]
    assert _complete(home, "mlgitfs log nope@") == []  # an error offers nothing
    assert "_MLGITFS_COMPLETE" in run("completion", "bash").stdout
    assert run("completion", "tcsh").exit_code == 2


def _interrupt(args: list[str], started: Callable[[], bool]) -> subprocess.CompletedProcess[str]:
    """Run the CLI and send SIGINT (Ctrl-C) as soon as `started()` sees its work begun (a
    new segment, a first exported file), unless it finished first."""
    proc = subprocess.Popen([MLGITFS, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        while proc.poll() is None and not started():
            time.sleep(0.001)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            stop_pid(proc.pid)
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def _segments(home: Path) -> set[str]:
    return {p.name for p in (home / "chunks").iterdir()}


def test_ctrl_c_during_import_and_export_exits_130_and_leaves_nothing(
    tmp_path: Path, home: Path, cli: Cli
) -> None:
    """Ctrl-C in the middle of an import leaves no commit and no segment behind; in the middle
    of an export, no destination. The signal goes as soon as the work is seen to begin; at
    least one of the tries must land while the command works (finishing first proves
    nothing)."""

    def source(name: str) -> Path:  # new bytes each time: nothing deduplicated or cached
        files = {f"d{i % 8}/f{i}.bin": os.urandom(1 << 20) for i in range(128)}
        return write_tree(tmp_path / name, files)

    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("import", "ds", str(source("src0")), "-m", "v0")
    interrupted = 0
    for i in range(1, 4):
        src = source(f"src{i}")
        before = (api.show(home, "ds@main").id, _segments(home))
        api.close_store(home)
        args = ["--home", str(home), "import", "ds", str(src), "-m", "big"]
        r = _interrupt(args, lambda b=before[1]: _segments(home) != b)  # type: ignore[misc]
        if api.show(home, "ds@main").id != before[0]:
            continue  # it finished (a signal during its exit may still end it)
        assert "Traceback" not in r.stderr
        assert _segments(home) == before[1]
        assert r.returncode == 130 and "interrupted" in r.stderr, r.stderr
        interrupted += 1
    assert interrupted, "no import was still running when interrupted"
    interrupted = 0
    for i in range(3):
        dest = tmp_path / "out" / f"e{i}"
        api.close_store(home)
        r = _interrupt(
            ["--home", str(home), "export", "ds", str(dest)],
            lambda d=dest: d.exists() and any(d.rglob("*.bin")),  # type: ignore[misc]
        )
        assert "Traceback" not in r.stderr
        if r.returncode == 0 or "exported" in r.stderr:
            continue  # it finished (a signal during its exit may still end it)
        assert not dest.exists() or not any(dest.iterdir())
        assert r.returncode == 130 and "interrupted" in r.stderr, r.stderr
        interrupted += 1
    assert interrupted, "no export was still running when interrupted"
