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
from mlgitfs.errors import BundleDamaged, ConflictError, FileErased, NotFound, VersionExpired
from mlgitfs.meta import retention
from mlgitfs.model.retention import Policy, Rule
from mlgitfs.store import bundlefile
from tests.conftest import Cli, write_tree
from tests.gchelpers import forget_reflog

REPO_ROOT = Path(__file__).resolve().parent.parent
KILLS = int(os.environ.get("MLGITFS_BUNDLE_KILLS", "12"))
TABLE = "id,label\n" + "".join(f"{i},{'cat' if i % 3 else 'dog'}\n" for i in range(2000))


def make_repo(home: Path, src: Path, size: int = 1) -> list[str]:
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


def same_versions(a: Path, b: Path, revs: list[str], tmp: Path) -> None:
    for i, rev in enumerate(revs):
        api.export(a, rev, tmp / f"a{i}")
        api.export(b, rev, tmp / f"b{i}")
        assert _snapshot(tmp / f"a{i}") == _snapshot(tmp / f"b{i}"), rev


def test_bundle_restores_every_version(home: Path, cli: Cli, tmp_path: Path) -> None:
    revs = make_repo(home, tmp_path / "src")
    file = tmp_path / "ds.bundle"
    r = cli("bundle", "ds", str(file), "--json")
    assert '"refs": 5' in r.stdout and file.stat().st_size > 300_000
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
    fresh = tmp_path / "restored"
    Cli(fresh)("clone", str(file))
    report = api.fsck(fresh)
    assert report.clean, report.damage
    same_versions(home, fresh, revs, tmp_path / "x")
    assert {b.name for b in api.branch_list(fresh, "ds")} == {"main", "dev", "exp"}
    assert {t.name for t in api.tag_list(fresh, "ds")} == {"v1", "v2"}
    assert api.retention_show(fresh, "ds").rules == api.retention_show(home, "ds").rules
    # a second name in the same store; the first name again is refused
    Cli(fresh)("clone", str(file), "copy")
    Cli(fresh)("clone", str(file), code=8)
    same_versions(home, fresh, ["ds@v2"], tmp_path / "y")
    assert api.fsck(fresh).clean
    api.close_store(fresh)


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "not-a-bundle"])
def test_damaged_bundle_is_refused(home: Path, cli: Cli, tmp_path: Path, damage: str) -> None:
    make_repo(home, tmp_path / "src")
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


def test_bundle_refusals(home: Path, cli: Cli, tmp_path: Path) -> None:
    make_repo(home, tmp_path / "src")
    file = tmp_path / "ds.bundle"
    held = bundlefile.BundleWriter(file)  # another bundle writing FILE: refused, FILE untouched
    r = cli("bundle", "ds", str(file), code=ConflictError.exit_code)
    assert "another bundle is being written" in r.stderr and not file.exists()
    held.abort()
    r = Cli(tmp_path / "h2")("clone", str(tmp_path / "nope.bundle"), code=NotFound.exit_code)
    assert "no bundle file" in r.stderr and not (tmp_path / "h2").exists()
    cli("bundle", "nope", str(file), code=NotFound.exit_code)
    assert not file.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_bundle_of_expired_and_erased_contents(home: Path, cli: Cli, tmp_path: Path) -> None:
    """What gc let go travels as its records: the restore reads the live files byte for
    byte, names the erasure for an erased file and the rule for an expired version, and its
    fsck counts them as erased and expired, not as damage."""
    make_repo(home, tmp_path / "src")
    cli("erase", "ds", "img/b.bin", "-m", "licence withdrawn", "--all-versions", "--yes")
    rnd = random.Random(3)
    for name, files in (("m2", {"only.bin": rnd.randbytes(200_000)}), ("m3", {"later.bin": "x"})):
        api.import_dir(home, "ds@main", write_tree(tmp_path / name, files), name)
    store = api.open_store(home)
    forget_reflog(store)
    with store.env.write() as txn:  # each branch keeps its head: ds@main~1 (m2) expires
        retention.set_rules(txn, "ds", (Rule("*", Policy(last=1)),))
    gc = api.gc(home)
    assert len(gc.expired) == 1 and gc.chunks > 0
    file = tmp_path / "ds.bundle"
    cli("bundle", "ds", str(file))
    with open(file, "rb") as f:
        assert f.read(20)[16:] == (2).to_bytes(4, "big")  # it holds records of let-go contents
    fresh = tmp_path / "restored"
    Cli(fresh)("clone", str(file))
    here, there = api.fsck(home), api.fsck(fresh)
    assert there.clean, there.damage
    assert (there.expired, there.erasures, there.erased) == (
        here.expired,
        here.erasures,
        here.erased,
    )
    assert there.expired == 1 and there.erased > 0
    for rev in ("ds@main:later.bin", "ds@dev:labels.csv", "ds@v1:img/a.bin", "ds@exp:many/059.txt"):
        assert b"".join(api.cat(fresh, rev)) == b"".join(api.cat(home, rev)), rev
    r = Cli(fresh)("cat", "ds@v1:img/b.bin", code=FileErased.exit_code)
    assert "licence withdrawn" in r.stderr
    r = Cli(fresh)("cat", "ds@main~1:only.bin", code=VersionExpired.exit_code)
    assert "has expired" in r.stderr
    api.close_store(fresh)


class _Worker:
    """tests/bundleworker.py, started and ready: `go` starts the bundle."""

    def __init__(self, home: Path, file: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.bundleworker", str(home), str(file)],
            cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        assert self.stdout.readline() == b"ready\n"

    def go(self) -> None:
        self.stdin.write(b"go\n")
        self.stdin.flush()

    def finish(self) -> None:
        self.go()
        assert self.stdout.readline() == b"done\n"
        self.stdin.close()
        self.stdout.close()
        assert self.proc.wait() == 0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.stdin.close()
        self.stdout.close()


def test_bundle_killed_then_rerun(home: Path, tmp_path: Path) -> None:
    revs = make_repo(home, tmp_path / "src", size=24)
    api.close_store(home)
    file = tmp_path / "ds.bundle"
    partial = tmp_path / ".ds.bundle.partial"
    probe = _Worker(home, tmp_path / "probe.bundle")
    t0 = time.monotonic()
    probe.finish()
    whole = time.monotonic() - t0
    rnd = random.Random(16)
    killed_mid_write = 0
    # KILLS kills, and more (up to as many again) until one lands while the file is written:
    # on a loaded machine the timing of the probe says little about the next run
    for i in range(2 * KILLS):
        if i >= KILLS and killed_mid_write:
            break
        if i == KILLS // 2:  # the second half replaces a previous bundle
            _Worker(home, file).finish()
        before = file.read_bytes() if file.exists() else None
        w = _Worker(home, file)
        w.go()
        time.sleep(rnd.uniform(0, whole))
        w.kill()
        if file.exists():  # the previous bundle, or a whole new one (killed after the rename)
            bundlefile.verify(file)
            if before is None:
                file.unlink()
        else:
            assert before is None
        killed_mid_write += int(partial.exists() and partial.stat().st_size > 0)
    assert killed_mid_write > 0  # some kills landed while the file was being written
    _Worker(home, file).finish()
    bundlefile.verify(file)
    assert not partial.exists()
    fresh = tmp_path / "restored"
    Cli(fresh)("clone", str(file))
    assert api.fsck(fresh).clean
    same_versions(home, fresh, revs, tmp_path / "x")
    api.close_store(fresh)
