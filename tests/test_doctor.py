"""`mlgitfs doctor`: which pyfuse3 is installed, whether it carries mlgitfs's patches and what a
mount loses without them; `mlgitfs mount` warns on stderr when it does not. Run by CI against
the patched build (packaging/test.sh) and against stock pyfuse3 (packaging/test-stock.sh)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlgitfs import api
from mlgitfs.daemon import pyfuse3_build, registry
from tests.conftest import Cli, write_tree
from tests.wmount import OLD, mlgitfs
from testsupport.mounts import detach, fuse_skip_reason, stop_pid

NAMES = ("noopen", "spin", "iov", "cachedir")


def _imported_version() -> str:
    """pyfuse3.__version__ as the daemon sees it (imported in a fresh interpreter)."""
    code = "import pyfuse3; print(pyfuse3.__version__)"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_features_are_read_from_the_local_version() -> None:
    assert pyfuse3_build.features("3.5.0") == frozenset()
    assert pyfuse3_build.features("3.5.0+mlgitfs.noopen.spin.iov.cachedir") == set(NAMES)
    assert pyfuse3_build.features("3.5.0+mlgitfs.noopen") == {"noopen"}
    assert pyfuse3_build.features("3.5.0+debian.noopen") == frozenset()
    assert [p.name for p in pyfuse3_build.missing("3.5.0+mlgitfs.noopen")] == list(NAMES[1:])
    assert [p.name for p in pyfuse3_build.PATCHES] == list(NAMES)


def test_the_patches_in_packaging_are_the_ones_the_daemon_knows() -> None:
    root = Path(__file__).resolve().parent.parent
    files = sorted(p.name for p in (root / "packaging" / "pyfuse3").glob("[0-9][0-9]-*.patch"))
    assert [f.split("-", 1)[1].removesuffix(".patch") for f in files] == list(NAMES)
    for f in files:
        header = (root / "packaging" / "pyfuse3" / f).read_text().split("\n---", 1)[0]
        assert "Why:" in header and "Without it:" in header, f


def test_doctor_reports_the_installed_build(cli: Cli) -> None:
    r = json.loads(cli("doctor", "--json").stdout)
    version = _imported_version()
    assert r["pyfuse3_version"] == version == importlib.metadata.version("pyfuse3")
    assert r["pyfuse3_required"] == version.partition("+")[0] == "3.5.0", (
        "mlgitfs's installed metadata must pin pyfuse3==3.5.0 (an older editable install: "
        "pip install -e .)"
    )
    have = pyfuse3_build.features(version)
    assert [(p["name"], p["present"]) for p in r["patches"]] == [(n, n in have) for n in NAMES]
    assert r["patched"] is (have == set(NAMES))
    assert all(p["without"] and p["gives"] for p in r["patches"])
    hint = [a for a in r["advice"] if "packaging/pyfuse3/build.sh" in a]
    assert bool(hint) is (not r["patched"])
    text = cli("doctor").stdout
    assert f"pyfuse3: {version} ({'patched' if r['patched'] else 'stock'};" in text
    for p in r["patches"]:
        assert p["name"] in text
        assert (p["without"] in text) is (not p["present"])


@pytest.mark.fuse
@pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason()))
def test_mount_warns_on_stderr_only_with_a_stock_build(home: Path, tmp_path: Path) -> None:
    write_tree(tmp_path / "src", {"a.txt": b"hello\n"}, mtime_ns=OLD)
    api.init(home, "ds", "dataset", "strict")
    api.import_dir(home, "ds", tmp_path / "src", "first")
    api.tag_create(home, "ds@v1")
    api.close_store(home)
    mp = tmp_path / "mnt"
    mp.mkdir()
    try:
        proc = mlgitfs(home, "mount", "ds@v1", str(mp))
        assert (mp / "a.txt").read_bytes() == b"hello\n"
        mlgitfs(home, "unmount", str(mp))
    finally:
        for rec in registry.list_mounts(home / "mounts"):
            stop_pid(rec.pid)
        detach(mp)
    stock = pyfuse3_build.missing(_imported_version())
    warned = "lacks mlgitfs's patches" in proc.stderr
    assert warned is bool(stock), proc.stderr
    assert all(p.name in proc.stderr for p in stock)
    assert "mlgitfs doctor" in proc.stderr or not stock
