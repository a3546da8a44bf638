"""Every store command through the real CLI, with its output, --json and exit codes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from mlgitfs.errors import MlgitError, all_error_classes
from tests.conftest import Cli, set_mtimes, write_tree

OLD = 1_600_000_000_000_000_000


@pytest.fixture
def ds(tmp_path: Path, cli: Cli) -> Path:
    src = write_tree(
        tmp_path / "src",
        {
            "train/a.jpg": os.urandom(3000),
            "train/b.jpg": os.urandom(3000),
            "labels.csv": "x,y\n",
            "README": "hello\n",
            "latest": "->labels.csv",
        },
    )
    set_mtimes(src, OLD)
    # mutable: these tests import changed content again (strict/flexible: test_import_policy)
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable", "--category", "vision")
    cli("import", "ds", str(src), "-m", "v1", "--meta", "source=camera")
    return src


def test_init_and_repos(cli: Cli, ds: Path) -> None:
    out = cli("repos", "--json")
    [repo] = json.loads(out.stdout)
    assert repo["name"] == "ds" and repo["kind"] == "dataset" and repo["mutability"] == "mutable"
    assert repo["categories"] == ["vision"] and repo["branches"] == 1
    assert "ds\tdataset\tmutable" in cli("repos").stdout
    err = cli("init", "ds", "--kind", "model", "--mutability", "mutable", code=8)
    assert "already exists" in err.stderr
    cli("init", "bad/name", "--kind", "model", "--mutability", "mutable", code=6)
    cli("init", "x", "--kind", "spreadsheet", "--mutability", "mutable", code=2)


def test_log_show_ls_cat(cli: Cli, ds: Path) -> None:
    (ds / "labels.csv").write_text("x,y\n1,2\n")
    cli("import", "ds@main", str(ds), "-m", "v2 labels")
    log = json.loads(cli("log", "ds", "--json").stdout)
    assert [c["message"] for c in log] == ["v2 labels", "v1"]
    assert log[0]["parents"] == [log[1]["id"]] and log[1]["meta"] == {"source": "camera"}
    assert "v2 labels" in cli("log", "ds").stdout
    only = json.loads(cli("log", "ds", "--path", "train", "--json").stdout)
    assert [c["message"] for c in only] == ["v1"]
    assert cli("show", f"ds@{log[1]['id'][:8]}", "--json").stdout.count("v1") == 1
    assert "meta   source=camera" in cli("show", "ds~1").stdout
    names = [e["path"] for e in json.loads(cli("ls", "ds", "-R", "--json").stdout)]
    assert names == ["README", "labels.csv", "latest", "train", "train/a.jpg", "train/b.jpg"]
    assert "latest -> labels.csv" in cli("ls", "ds").stdout
    assert cli("cat", "ds:labels.csv").stdout == "x,y\n1,2\n"
    assert cli("cat", "ds~1:labels.csv").stdout == "x,y\n"
    assert cli("cat", "ds:train/a.jpg").stdout_bytes == (ds / "train/a.jpg").read_bytes()
    cli("cat", "ds:train", code=4)
    cli("cat", "ds:nope", code=4)
    cli("ls", "ds:README", "--json")


def test_diff(cli: Cli, ds: Path) -> None:
    (ds / "train/c.jpg").write_bytes(b"new")
    (ds / "train/a.jpg").unlink()
    (ds / "README").write_text("changed\n")
    cli("import", "ds", str(ds), "-m", "v2")
    d = json.loads(cli("diff", "ds~1", "ds", "--json").stdout)
    changes = {i["path"]: i["change"] for i in d["items"]}
    assert changes == {"README": "modified", "train/a.jpg": "deleted", "train/c.jpg": "added"}
    assert (d["added"], d["deleted"], d["modified"]) == (1, 1, 1)
    text = cli("diff", "ds~1", "ds").stdout
    assert "A  train/c.jpg" in text and "D  train/a.jpg" in text and "M  README" in text
    assert "1 added, 1 modified, 0 renamed, 1 deleted" in cli("diff", "ds~1", "ds", "--stat").stdout
    only = json.loads(cli("diff", "ds~1", "ds", "train", "--json").stdout)
    assert {i["path"] for i in only["items"]} == {"train/a.jpg", "train/c.jpg"}
    sub = json.loads(cli("diff", "ds~1:train", "ds:train", "--json").stdout)
    assert {i["path"] for i in sub["items"]} == {"a.jpg", "c.jpg"}
    assert json.loads(cli("diff", "ds", "ds", "--json").stdout)["items"] == []
    # an exact rename (same content id) is one "renamed" item, in diff as in status
    (ds / "train/b.jpg").rename(ds / "moved.jpg")
    cli("import", "ds", str(ds), "-m", "v3")
    d = json.loads(cli("diff", "ds~1", "ds", "--json").stdout)
    assert [(i["change"], i["path"], i["old_path"]) for i in d["items"]] == [
        ("renamed", "moved.jpg", "train/b.jpg")
    ]
    assert "R  moved.jpg  (from train/b.jpg)" in cli("diff", "ds~1", "ds").stdout
    only = json.loads(cli("diff", "ds~1", "ds", "train", "--json").stdout)
    assert [i["path"] for i in only["items"]] == ["moved.jpg"]  # its old path is under train


def test_branches_and_tags(cli: Cli, ds: Path) -> None:
    cli("branch", "ds@dev")
    cli("branch", "ds@feature/x", "ds@main")
    assert [b["name"] for b in json.loads(cli("branch", "ds", "--json").stdout)] == [
        "dev",
        "feature/x",
        "main",
    ]
    cli("branch", "ds@dev", code=8)
    cli("tag", "ds@v1")
    cli("tag", "ds@v1", code=8)  # a tag never moves
    (ds / "README").write_text("v2\n")
    cli("import", "ds@dev", str(ds), "-m", "on dev")
    assert cli("cat", "ds@dev:README").stdout == "v2\n"
    assert cli("cat", "ds@v1:README").stdout == "hello\n"
    assert [t["name"] for t in json.loads(cli("tag", "ds", "--json").stdout)] == ["v1"]
    cli("branch", "-d", "ds@dev", code=22)  # "on dev" is on no other ref
    cli("branch", "-d", "ds@dev", "--force")
    cli("branch", "-d", "ds@dev", code=4)
    cli("log", "ds@dev", code=4)
    cli("branch", "ds@bad..name", code=17)


def test_export(tmp_path: Path, cli: Cli, ds: Path) -> None:
    cli("export", "ds", str(tmp_path / "out"))
    assert (tmp_path / "out/train/a.jpg").read_bytes() == (ds / "train/a.jpg").read_bytes()
    assert os.readlink(tmp_path / "out/latest") == "labels.csv"
    cli("export", "ds:train", str(tmp_path / "sub"))
    assert sorted(os.listdir(tmp_path / "sub")) == ["a.jpg", "b.jpg"]
    (tmp_path / "one").mkdir()
    cli("export", "ds:README", str(tmp_path / "one"))
    assert (tmp_path / "one/README").read_text() == "hello\n"
    err = cli("export", "ds", str(tmp_path / "out"), code=2)
    assert "not an empty directory" in err.stderr


def test_lineage(tmp_path: Path, cli: Cli, ds: Path) -> None:
    cli("init", "lbl", "--kind", "labels", "--mutability", "flexible")
    cli("init", "net", "--kind", "model", "--mutability", "mutable")
    cli(
        "import",
        "lbl",
        str(write_tree(tmp_path / "l", {"l.csv": "a"})),
        "-m",
        "labels",
        "--input",
        "ds@main",
    )
    cli(
        "import",
        "net",
        str(write_tree(tmp_path / "m", {"w.pt": "w"})),
        "-m",
        "model",
        "--input",
        "ds",
        "--input",
        "lbl@main",
        "--meta",
        "code=abc123",
    )
    up = json.loads(cli("lineage", "net", "--json", "--direction", "up").stdout)["upstream"]
    assert up["repo"] == "net"
    assert sorted(c["repo"] for c in up["inputs"]) == ["ds", "lbl"]
    assert "children" not in up
    down = json.loads(cli("lineage", "ds", "--json").stdout)["downstream"]
    kids = {c["repo"]: c for c in down["used_by"]}
    assert set(kids) == {"lbl", "net"} and kids["lbl"]["used_by"][0]["repo"] == "net"
    assert "net@" in cli("lineage", "ds").stdout
    cli("import", "net", str(tmp_path / "m"), "-m", "x", "--input", "nope@main", code=3)


def test_errors_and_exit_codes(cli: Cli, ds: Path) -> None:
    assert "no repo named 'nope'" in cli("log", "nope", code=3).stderr
    assert "no branch, tag or commit" in cli("log", "ds@nope", code=4).stderr
    assert "cannot parse revspec" in cli("log", "ds@", code=17).stderr
    cli("log", "ds~5", code=4)
    cli("import", "ds", "/nonexistent-dir", "-m", "m", code=9)
    cli("import", "ds", str(ds), "-m", "m", "--meta", "novalue", code=2)
    cli("nosuchcommand", code=2)
    out = cli("log", "nope", code=3)
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout


def test_fsck_reports_damage(tmp_path: Path, cli: Cli, home: Path, ds: Path) -> None:
    from mlgitfs import api

    api.open_store(home).close()
    seg = sorted((home / "chunks").glob("*.seg"))[0]
    data = bytearray(seg.read_bytes())
    data[-10] ^= 0xFF  # bit rot in the last chunk of the segment
    seg.write_bytes(bytes(data))
    out = cli("fsck", code=1)
    assert "damaged" in out.stdout and "does not hash" in out.stdout and "ds@" in out.stdout
    report = json.loads(cli("fsck", "ds", "--json", code=1).stdout)
    assert report["damage"][0]["path"].startswith("ds@")
    seg.write_bytes(bytes(data[:-10]) + bytes([data[-10] ^ 0xFF]) + bytes(data[-9:]))
    cli("fsck")


def test_exit_code_table_matches_docs() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "exit-codes.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| (\d+) \|", doc, re.M))
    for cls in all_error_classes():
        if cls.__name__ == "FsError":
            continue
        assert rows.get(cls.__name__) == str(cls.exit_code), f"{cls.__name__} missing in docs"
    assert issubclass(MlgitError, Exception)


def test_exit_codes_are_distinct() -> None:
    """A script tells errors apart by exit code: a class shares its code only with its own
    family (a subclass may keep its parent's code), never with an unrelated class."""
    owner: dict[int, type[MlgitError]] = {}
    for cls in all_error_classes():
        if cls.__name__ == "FsError":
            continue
        first = owner.setdefault(cls.exit_code, cls)
        related = (
            issubclass(cls, first)
            or issubclass(first, cls)
            or any(
                b is not MlgitError and issubclass(cls, b) and issubclass(first, b)
                for b in cls.__mro__
                if isinstance(b, type) and issubclass(b, MlgitError)
            )
        )
        assert related, f"{cls.__name__} and {first.__name__} share exit {cls.exit_code}"


def test_config_cache_size(cli: Cli) -> None:
    cli("config", code=24)  # no store yet: config does not make one
    cli("init", "ds", "--kind", "dataset", "--mutability", "strict")
    assert "cache-size\t(unset)" in cli("config").stdout
    cli("config", "cache-size", "2G")
    assert json.loads(cli("config", "cache-size", "--json").stdout) == [
        {"key": "cache-size", "value": str(2 << 30)}
    ]
    cli("config", "cache-size", "none")
    assert "(unset)" in cli("config").stdout
    cli("config", "cache-size", "lots", code=2)
    cli("config", "colour", code=2)
