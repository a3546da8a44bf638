"""Bundles: `mlgitfs bundle REPO FILE` and `mlgitfs clone FILE [NAME]` (docs/lifecycle.md,
"Backups: bundle"): a restore is fsck-clean and every version exports byte for byte; a
truncated or altered bundle is refused with BundleDamaged and nothing is created; a bundle
killed with SIGKILL at random points leaves no file, and a rerun writes a whole one."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.errors import BundleDamaged
from mlgitfs.store import bundlefile
from tests.conftest import Cli, write_tree

REPO_ROOT = Path(__file__).resolve().parent.parent
KILLS = int(os.environ.get("MLGITFS_BUNDLE_KILLS", "12"))
TABLE = "id,label\n" + "".join(f"{i},{'cat' if i % 3 else 'dog'}\n" for i in range(2000))


def _make_repo(home: Path, src: Path, size: int = 1) -> list[str]:
    """A repo `ds` with three branches, two tags, a table and retention rules; returns every
    revspec worth exporting."""
    rnd = random.Random(7)
    api.init(home, "ds", "dataset", "mutable")
    files: dict[str, bytes | str] = {
        "labels.csv": TABLE,
        "img/a.bin": rnd.randbytes(300_000 * size),
        "img/b.bin": rnd.randbytes(5000),
        "link": "->labels.csv",
        "empty/": "",
    }
    write_tree(src, files)
    api.import_dir(home, "ds", src, "first")
    api.tag_create(home, "ds@v1")
    api.branch_create(home, "ds@dev")
    write_tree(src, {"labels.csv": TABLE + "2000,dog\n", "img/c.bin": rnd.randbytes(70_000)})
    api.import_dir(home, "ds@dev", src, "dev")
    api.branch_create(home, "ds@exp", "ds@v1")
    write_tree(src, {f"many/{i:03d}.txt": f"file {i}\n" * i for i in range(60 * size)})
    api.import_dir(home, "ds@exp", src, "exp")
    api.tag_create(home, "ds@v2", "ds@dev")
    api.retention_set(home, "ds", last="5")
    revs = ["ds@main", "ds@dev", "ds@exp", "ds@v1", "ds@v2"]
    revs += [f"ds@{c.id}" for r in ("ds@dev", "ds@exp") for c in api.log(home, r)]
    return revs


def _snapshot(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "->" + os.readlink(p)
        elif p.is_dir():
            out[rel + "/"] = ""
        else:
            out[rel] = p.read_bytes()
    return out


def _same_versions(a: Path, b: Path, revs: list[str], tmp: Path) -> None:
    for i, rev in enumerate(revs):
        api.export(a, rev, tmp / f"a{i}")
        api.export(b, rev, tmp / f"b{i}")
        assert _snapshot(tmp / f"a{i}") == _snapshot(tmp / f"b{i}"), rev


def test_bundle_restores_every_version(home: Path, cli: Cli, tmp_path: Path) -> None:
    revs = _make_repo(home, tmp_path / "src")
    file = tmp_path / "ds.bundle"
    r = cli("bundle", "ds", str(file), "--json")
    assert '"refs": 5' in r.stdout and file.stat().st_size > 300_000
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
    fresh = tmp_path / "restored"
    Cli(fresh)("clone", str(file))
    report = api.fsck(fresh)
    assert report.clean, report.damage
    _same_versions(home, fresh, revs, tmp_path / "x")
    assert {b.name for b in api.branch_list(fresh, "ds")} == {"main", "dev", "exp"}
    assert {t.name for t in api.tag_list(fresh, "ds")} == {"v1", "v2"}
    assert api.retention_show(fresh, "ds").rules == api.retention_show(home, "ds").rules
    # a second name in the same store; the first name again is refused
    Cli(fresh)("clone", str(file), "copy")
    Cli(fresh)("clone", str(file), code=8)
    _same_versions(home, fresh, ["ds@v2"], tmp_path / "y")
    assert api.fsck(fresh).clean
    api.close_store(fresh)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "not-a-bundle"])
def test_damaged_bundle_is_refused(home: Path, cli: Cli, tmp_path: Path, damage: str) -> None:
    _make_repo(home, tmp_path / "src")
    file = tmp_path / "ds.bundle"
    cli("bundle", "ds", str(file))
    data = bytearray(file.read_bytes())
    rnd = random.Random(damage)
    if damage == "truncate":
        data = data[: rnd.randrange(len(data))]
    elif damage == "flip":
        data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
    elif damage == "empty":
        data = bytearray()
    else:
        data = bytearray(b"id,label\n1,cat\n" * 10)
    file.write_bytes(bytes(data))
    fresh = tmp_path / "restored"
    r = Cli(fresh)("clone", str(file), code=BundleDamaged.exit_code)
    assert f"bundle {file} is damaged" in r.stderr
    assert not fresh.exists()  # nothing created, not even the store
    with pytest.raises(BundleDamaged):
        bundlefile.verify(file)
    # in an existing store: refused, and no repo appears
    r = cli("clone", str(file), "again", code=BundleDamaged.exit_code)
    assert [x.name for x in api.repos(home)] == ["ds"]


def _bundle_cmd(home: Path, file: Path) -> list[str]:
    code = "from mlgitfs_cli.main import cli; cli()"
    return [sys.executable, "-c", code, "--home", str(home), "-q", "bundle", "ds", str(file)]


def test_bundle_killed_then_rerun(home: Path, tmp_path: Path) -> None:
    revs = _make_repo(home, tmp_path / "src", size=8)
    api.close_store(home)
    file = tmp_path / "ds.bundle"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    t0 = time.monotonic()
    subprocess.run(_bundle_cmd(home, tmp_path / "probe.bundle"), env=env, check=True)
    whole = time.monotonic() - t0
    rnd = random.Random(16)
    killed_after_start = 0
    for _ in range(KILLS):
        proc = subprocess.Popen(_bundle_cmd(home, file), env=env)
        time.sleep(rnd.uniform(0.3 * whole, whole))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if file.exists():  # killed after the rename: a whole bundle
            bundlefile.verify(file)
            file.unlink()
        else:
            killed_after_start += 1
    assert killed_after_start > 0
    subprocess.run(_bundle_cmd(home, file), env=env, check=True)
    bundlefile.verify(file)
    assert not (tmp_path / ".ds.bundle.partial").exists()
    fresh = tmp_path / "restored"
    Cli(fresh)("clone", str(file))
    assert api.fsck(fresh).clean
    _same_versions(home, fresh, revs, tmp_path / "x")
    api.close_store(fresh)
