"""Mirror: `mlgitfs mirror FROM TO` (docs/lifecycle.md, "Backups: mirror"): a restore from
the copy is fsck-clean (chunks fetched from it) and every version reads back byte for byte;
a second run copies only what is new; refusals change nothing on TO; a mirror killed with
SIGKILL at random points and rerun leaves a whole copy; pushes to FROM during mirrors lose
nothing from the copy."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.errors import CorruptObject, RemoteError, UsageError
from mlgitfs.store import packs
from mlgitfs.store.chunker import ChunkerParams
from mlgitfs.store.transports import open_transport
from tests.conftest import Cli, write_tree
from tests.test_bundle import make_repo, same_versions
from tests.test_sync import Remote
from testsupport.s3server import S3Server

REPO_ROOT = Path(__file__).resolve().parent.parent
KILLS = int(os.environ.get("MLGITFS_MIRROR_KILLS", "8"))


class Where(Remote):
    """A remote of the tests, with all its objects and the mirror's endpoint options."""

    def objects(self) -> dict[str, bytes]:
        t = self.transport()
        try:
            return {k: t.get(k) for k in t.list() if not k.startswith("tmp/")}
        finally:
            t.close()

    def args(self, side: str) -> list[str]:
        return [f"--{side}-endpoint-url", self.endpoint] if self.endpoint else []


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Where, Where]]:
    """FROM and TO: two file:// directories, or two buckets of the test SeaweedFS."""
    if request.param == "file":
        yield (
            Where((tmp_path / "from").as_uri(), None, {}),
            Where((tmp_path / "to").as_uri(), None, {}),
        )
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        ep = server.endpoint_url
        yield (
            Where(f"s3://{server.new_bucket()}/from", ep, server.env),
            Where(f"s3://{server.new_bucket()}/backup/to", ep, server.env),
        )


def _add_and_push(home: Path, src: Where) -> None:
    extra = ["--endpoint-url", src.endpoint] if src.endpoint else []
    Cli(home)("remote", "add", "origin", src.url, *extra)
    Cli(home)("push", "ds", "--all")


def _mirror(home: Path, src: Where, dst: Where, *more: str) -> api.MirrorResult:
    return api.mirror(home, src.url, dst.url, "--prune" in more, None, src.endpoint, dst.endpoint)


def _restore(dst: Where, where: Path) -> Path:
    extra = ["--endpoint-url", dst.endpoint] if dst.endpoint else []
    Cli(where)("clone", dst.url, "ds", *extra)
    report = api.fsck(where, check_remote=True)  # every chunk fetched from TO and checked
    assert report.clean, report.damage
    return where


def test_mirror_restores_every_version(
    home: Path, pair: tuple[Where, Where], tmp_path: Path
) -> None:
    src, dst = pair
    Cli(home)("key", "generate", "--name", "me")  # signed commits: statement packs go too
    revs = make_repo(home, tmp_path / "src")
    _add_and_push(home, src)
    assert any(k.startswith("stmts/") for k in src.objects())
    r = _mirror(home, src, dst)
    assert r.packs > 0 and r.packs_present == 0 and r.refs_updated == 5 and r.records >= 2
    fresh = _restore(dst, tmp_path / "restored")
    same_versions(home, fresh, revs, tmp_path / "x")
    assert api.retention_show(fresh, "ds").rules == api.retention_show(home, "ds").rules
    api.close_store(fresh)
    # TO holds what FROM holds (but gc and scratch state), byte for byte
    theirs = {k: v for k, v in src.objects().items() if not k.startswith("gc/")}
    assert dst.objects() == theirs
    # incremental: nothing new, nothing copied; one new commit, only its packs
    again = _mirror(home, src, dst)
    assert (again.packs, again.refs_updated, again.records) == (0, 0, 0)
    assert again.packs_present == r.packs
    write_tree(tmp_path / "src", {"new.bin": os.urandom(50_000)})
    api.import_dir(home, "ds@dev", tmp_path / "src", "more")
    Cli(home)("push", "ds@dev")
    third = _mirror(home, src, dst)
    # its chunk and meta packs, and its statement pack with its seal
    assert 0 < third.packs <= 4 and third.refs_updated == 1
    fresh2 = _restore(dst, tmp_path / "restored2")
    same_versions(home, fresh2, ["ds@dev"], tmp_path / "y")
    api.close_store(fresh2)


def test_mirror_prune(home: Path, tmp_path: Path) -> None:
    src = Where((tmp_path / "from").as_uri(), None, {})
    dst = Where((tmp_path / "to").as_uri(), None, {})
    make_repo(home, tmp_path / "src")
    _add_and_push(home, src)
    _mirror(home, src, dst)
    Cli(home)("push", "--delete", "ds@exp", "--force")
    kept = _mirror(home, src, dst)
    assert kept.refs_pruned == 0 and "refs/ds/heads/exp" in dst.objects()
    pruned = _mirror(home, src, dst, "--prune")
    assert pruned.refs_pruned == 1 and "refs/ds/heads/exp" not in dst.objects()
    assert "refs/ds/heads/dev" in dst.objects()


def test_mirror_refusals_change_nothing(home: Path, cli: Cli, tmp_path: Path) -> None:
    src = Where((tmp_path / "from").as_uri(), None, {})
    dst = Where((tmp_path / "to").as_uri(), None, {})
    make_repo(home, tmp_path / "src")
    _add_and_push(home, src)
    # the same remote twice; a remote name of the store works like its URL
    with pytest.raises(UsageError, match="same remote"):
        api.mirror(home, "origin", src.url)
    # TO made for other chunker parameters
    other = tmp_path / "other"
    t = open_transport(other.as_uri())
    t.put(packs.CONFIG_KEY, packs.render_config(ChunkerParams(4096, 16384, 65536, 1)))
    before = Where(other.as_uri(), None, {}).objects()
    with pytest.raises(RemoteError, match="chunker"):
        api.mirror(home, "origin", other.as_uri())
    assert Where(other.as_uri(), None, {}).objects() == before
    # a hostile ref at FROM spreads nowhere, and nothing else is written either
    ft = src.transport()
    good = ft.get("refs/ds/heads/dev")
    ft.put("refs/ds/heads/dev", b"not a commit id\n")
    with pytest.raises(CorruptObject, match="refs/ds/heads/dev"):
        api.mirror(home, "origin", dst.url)
    assert not any(k.startswith("refs/") for k in dst.objects())
    ft.put("refs/ds/heads/dev", good)
    # a pack whose bytes do not hash to its id: refused, its index never written
    key = next(k for k in ft.list("packs/") if k.endswith(".pack"))
    data = bytearray(ft.get(key))
    data[len(data) // 2] ^= 1
    ft.put(key, bytes(data))
    with pytest.raises(CorruptObject, match=key.removesuffix(".pack")):
        api.mirror(home, "origin", dst.url)
    assert key.replace(".pack", ".idx") not in dst.objects()
    assert not any(k.startswith("refs/") for k in dst.objects())
    data[len(data) // 2] ^= 1
    ft.put(key, bytes(data))
    r = cli("mirror", "origin", dst.url, "--json")
    assert '"refs_updated": 5' in r.stdout


class _Worker:
    """`mlgitfs mirror` in a process of its own, to be killed."""

    def __init__(self, home: Path, src: Where, dst: Where) -> None:
        self.args = [
            sys.executable, "-m", "mlgitfs_cli.main", "--home", str(home), "-q",
            "mirror", src.url, dst.url, *src.args("source"), *dst.args("target"),
        ]  # fmt: skip
        self.env = {**os.environ, **src.env}
        self.proc: subprocess.Popen[bytes] | None = None

    def go(self) -> None:
        self.proc = subprocess.Popen(self.args, cwd=REPO_ROOT, env=self.env)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def finish(self) -> None:
        self.go()
        assert self.proc is not None
        assert self.proc.wait(timeout=300) == 0


def _consistent(dst: Where) -> None:
    """What a killed mirror may leave: every index's pack is there, every ref parses."""
    keys = dst.objects()
    for k in keys:
        if k.endswith(".idx"):
            assert k.removesuffix(".idx") + ".pack" in keys, k
        if k.startswith("refs/"):
            packs.decode_ref(k, keys[k])


@pytest.mark.parametrize("kind", ["file", pytest.param("s3", marks=pytest.mark.s3)])
def test_mirror_killed_then_rerun(
    home: Path, tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    if kind == "file":
        src = Where((tmp_path / "from").as_uri(), None, {})
        dst = Where((tmp_path / "to").as_uri(), None, {})
    else:
        server: S3Server = request.getfixturevalue("s3_server")
        src = Where(f"s3://{server.new_bucket()}/f", server.endpoint_url, server.env)
        dst = Where(f"s3://{server.new_bucket()}/t", server.endpoint_url, server.env)
    revs = make_repo(home, tmp_path / "src", size=12)
    os.environ["MLGITFS_PACK_TARGET"] = str(128 << 10)  # many packs: kills land between them
    try:
        _add_and_push(home, src)
    finally:
        del os.environ["MLGITFS_PACK_TARGET"]
    api.close_store(home)
    probe = Where((tmp_path / "probe").as_uri(), None, {}) if kind == "file" else None
    t0 = time.monotonic()
    subprocess.run([*_Worker(home, src, dst).args[:3], "--version"], cwd=REPO_ROOT, check=True)
    start_up = time.monotonic() - t0  # kills before the work begins prove nothing
    t0 = time.monotonic()
    _Worker(home, src, probe or dst).finish()
    whole = time.monotonic() - t0
    if probe is None:  # the probe went to TO itself: start the kills from an empty TO
        t = dst.transport()
        for k in list(t.list()):
            t.delete(k)
    rnd = random.Random(23)
    partial = 0
    for _ in range(KILLS if kind == "file" else KILLS // 2 + 1):  # S3: the same steps, slower
        w = _Worker(home, src, dst)
        w.go()
        time.sleep(rnd.uniform(start_up, max(start_up, whole)))
        w.kill()
        _consistent(dst)
        keys = dst.objects()
        partial += int(any(k.endswith(".idx") for k in keys) and len(keys) < 100_000)
    assert partial > 0
    _Worker(home, src, dst).finish()
    fresh = _restore(dst, tmp_path / "restored")
    same_versions(home, fresh, revs, tmp_path / "x")
    api.close_store(fresh)


def test_mirror_while_pushing(home: Path, tmp_path: Path) -> None:
    """Pushes to FROM run in a loop while mirrors copy it: after each mirror, every ref on
    TO restores fsck-clean, and after the last, TO has FROM's final refs."""
    src = Where((tmp_path / "from").as_uri(), None, {})
    dst = Where((tmp_path / "to").as_uri(), None, {})
    make_repo(home, tmp_path / "src")
    _add_and_push(home, src)
    api.close_store(home)
    pusher = subprocess.Popen(
        [sys.executable, "-c", _PUSH_LOOP, str(home), str(tmp_path / "work")],
        cwd=REPO_ROOT,
    )
    try:
        for i in range(3):
            _Worker(home, src, dst).finish()
            fresh = _restore(dst, tmp_path / f"r{i}")
            api.close_store(fresh)
    finally:
        assert pusher.wait(timeout=300) == 0
    _Worker(home, src, dst).finish()
    fresh = _restore(dst, tmp_path / "final")
    same_versions(home, fresh, ["ds@main", "ds@dev"], tmp_path / "x")
    api.close_store(fresh)


_PUSH_LOOP = """
import os, sys
from pathlib import Path
from mlgitfs import api
home, work = Path(sys.argv[1]), Path(sys.argv[2])
for i in range(6):
    d = work / str(i)
    d.mkdir(parents=True)
    (d / f"f{i}.bin").write_bytes(os.urandom(200_000))
    api.import_dir(home, "ds@dev", d, f"round {i}")
    api.push(home, "ds@dev")
"""
