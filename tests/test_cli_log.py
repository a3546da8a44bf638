"""log's filters through the CLI: paths, grep, author, times, metadata, inputs, ranges,
--oneline and --json, and refused filters (a clear error, a distinct exit code)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from tests.conftest import Cli, write_tree


def _ids(cli: Cli, *args: str) -> list[str]:
    return [c["message"] for c in json.loads(cli("log", *args, "--json").stdout)]


@pytest.fixture
def hist(tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Path:
    src = write_tree(tmp_path / "src", {"img/a.jpg": b"a", "img/b.jpg": b"b", "labels.csv": "x\n"})
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    cli("init", "model", "--kind", "model", "--mutability", "mutable")
    monkeypatch.setenv("MLGITFS_AUTHOR", "ann@lab")
    cli("import", "ds", str(src), "-m", "first images", "--meta", "split=train")
    (src / "labels.csv").write_text("x\n1\n")
    monkeypatch.setenv("MLGITFS_AUTHOR", "bob@farm")
    cli("import", "ds", str(src), "-m", "fix labels", "--meta", "split=val")
    cli("tag", "ds@v2", "ds")
    (src / "img" / "c.jpg").write_bytes(b"c")
    cli("import", "ds", str(src), "-m", "more images", "--meta", "split=train")
    model = write_tree(tmp_path / "model", {"w.bin": b"w"})
    cli("import", "model", str(model), "-m", "trained", "--input", "ds@v2")
    (model / "w.bin").write_bytes(b"w2")
    cli("import", "model", str(model), "-m", "trained again", "--input", "ds@main")
    return src


def test_filters_combine(cli: Cli, hist: Path) -> None:
    assert _ids(cli, "ds") == ["more images", "fix labels", "first images"]
    assert _ids(cli, "ds", "--path", "labels.csv") == ["fix labels", "first images"]
    assert _ids(cli, "ds", "--path", "img/c.jpg", "--path", "labels.csv") == [
        "more images", "fix labels", "first images",
    ]  # fmt: skip
    assert _ids(cli, "ds", "--path", "img", "--path", "nothing/here") == [
        "more images", "first images",
    ]  # fmt: skip
    assert _ids(cli, "ds:img") == ["more images", "first images"]
    assert _ids(cli, "ds", "--grep", "images$") == ["more images", "first images"]
    assert _ids(cli, "ds", "--author", "^bob@") == ["more images", "fix labels"]
    assert _ids(cli, "ds", "--meta", "split=train") == ["more images", "first images"]
    assert _ids(cli, "ds", "--meta", "split=train", "--path", "labels.csv") == ["first images"]
    assert _ids(cli, "ds", "--grep", "images", "--author", "ann") == ["first images"]
    assert _ids(cli, "ds@v2..main") == ["more images"]
    assert _ids(cli, "ds@v2..ds@main", "--path", "labels.csv") == []
    assert _ids(cli, "ds@main..v2") == []
    assert _ids(cli, "ds", "-n", "1", "--path", "labels.csv") == ["fix labels"]
    # made from a version: directly, and through inputs
    assert _ids(cli, "model", "--input", "ds@v2") == ["trained"]
    assert _ids(cli, "model", "--input", "ds@main") == ["trained again"]


def test_time_filters(cli: Cli, hist: Path) -> None:
    log = json.loads(cli("log", "ds", "--json").stdout)
    t = dt.datetime.fromtimestamp(log[1]["time_ns"] // 1000 / 1e6, dt.UTC)  # 'fix labels'
    assert _ids(cli, "ds", "--since", t.isoformat()) == ["more images", "fix labels"]
    assert _ids(cli, "ds", "--until", t.isoformat()) == ["first images"]
    assert _ids(cli, "ds", "--since", "2000-01-01", "--until", "2001-01-01") == []
    assert len(_ids(cli, "ds", "--since", "2000-01-01")) == 3


def test_oneline_and_text(cli: Cli, hist: Path) -> None:
    out = cli("log", "ds", "--oneline").stdout.splitlines()
    log = json.loads(cli("log", "ds", "--json").stdout)
    assert out[0] == f"{log[0]['id'][:12]} (main) more images"
    assert out[1] == f"{log[1]['id'][:12]} (v2) fix labels"
    assert len(out) == 3
    text = cli("log", "ds", "--grep", "fix").stdout
    assert "author bob@farm" in text and "meta   split=val" in text and "fix labels" in text


def test_bad_filters_are_refused(cli: Cli, hist: Path) -> None:
    assert "--grep '('" in cli("log", "ds", "--grep", "(", code=2).stderr
    assert "ISO 8601" in cli("log", "ds", "--since", "yesterday", code=2).stderr
    assert "KEY=VALUE" in cli("log", "ds", "--meta", "split", code=2).stderr
    assert "expected REPO@A..B" in cli("log", "ds@v2..", code=17).stderr
    cli("log", "ds@v2..nope", code=4)
    cli("log", "model", "--input", "ds@nope", code=4)
    assert "not its root" in cli("log", "ds", "--path", "", code=2).stderr


def test_clone_and_fetch_write_the_index(cli: Cli, hist: Path, tmp_path: Path) -> None:
    from mlgitfs import api
    from mlgitfs.meta import commitgraph
    from mlgitfs.model.ids import from_hex

    remote = (tmp_path / "remote").as_uri()
    cli("remote", "add", "origin", remote)
    cli("push", "ds")
    other = Cli(tmp_path / "other")
    other("clone", remote, "ds")
    (hist / "labels.csv").write_text("x\n1\n2\n")
    cli("import", "ds", str(hist), "-m", "third labels")
    cli("push", "ds")
    other("pull", "ds")  # fetch, then a fast-forward
    log = json.loads(other("log", "ds", "--json").stdout)
    store = api.open_store(other.home)
    try:
        with store.env.read() as txn:
            assert all(commitgraph.get_record(txn, from_hex(c["id"])) for c in log)
    finally:
        api.close_store(other.home)
    assert _ids(other, "ds", "--path", "labels.csv") == [
        "third labels", "fix labels", "first images",
    ]  # fmt: skip
    assert api.fsck(other.home).clean
    api.close_store(other.home)
