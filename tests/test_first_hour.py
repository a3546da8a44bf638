"""A scripted first hour of use, as a new user would go: three repos, an import, a branch,
edits in a writable mount with `sed -i` and a pandas-style temp file + os.replace, status,
commit, diff, restore, tag, branch deletion, export. Every output is checked, and every exit
code against the table in docs/exit-codes.md (by error name, not by number)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import write_tree
from tests.wmount import OLD, Mounter, mlgitfs, mounter, snapshot
from testsupport.mounts import fuse_skip_reason

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(fuse_skip_reason() is not None, reason=str(fuse_skip_reason())),
]
__all__ = ["mounter"]

DOCS = Path(__file__).resolve().parent.parent / "docs" / "exit-codes.md"
EXIT = {k: int(v) for k, v in re.findall(r"^\| `(\w+)` \| (\d+) \|", DOCS.read_text(), re.M)}
EXIT["ok"] = 0
EXIT["click usage"] = 2  # click's own usage errors, as the table's preamble says

LABELS = "id,label\n1,cat\n2,dog\n3,cat\n"
SPLITS = "id,split\n1,train\n2,train\n3,test\n"


def run(home: Path, *args: str, expect: str = "ok", cwd: Path | None = None) -> tuple[str, str]:
    """mlgitfs ARGS as a user types it; the exit code must be the documented one."""
    proc = mlgitfs(home, *args, check=False, cwd=cwd)
    assert proc.returncode == EXIT[expect], (
        f"mlgitfs {' '.join(args)}: exit {proc.returncode}, expected {expect} "
        f"({EXIT[expect]})\n{proc.stdout}{proc.stderr}"
    )
    assert "Traceback" not in proc.stderr
    if expect == "click usage":
        assert "Usage: mlgitfs" in proc.stderr and "Error: " in proc.stderr
    elif expect != "ok":
        assert proc.stderr.startswith("mlgitfs: error: "), proc.stderr
    return proc.stdout, proc.stderr


def pandas_style_save(path: Path, text: str) -> None:
    """What `df.to_csv(tmp); os.replace(tmp, path)` does (pandas itself when installed)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        import pandas  # type: ignore[import-not-found]

        rows = [r.split(",") for r in text.strip().splitlines()]
        pandas.DataFrame(rows[1:], columns=rows[0]).to_csv(tmp, index=False)
    except ImportError:
        with open(tmp, "w", newline="") as f:
            f.write(text)
    os.replace(tmp, path)


def test_first_hour(home: Path, tmp_path: Path, mounter: Mounter) -> None:
    # --- three repos, and the policies explained where they are chosen ----------------------
    out, _ = run(home, "init", "--help")
    assert "strict" in out and "flexible" in out and "unlock" in out
    run(home, "repos", expect="StoreNotFound")  # nothing made by a look around
    _, err = run(home, "init", "pets", "--kind", "dataset", "--mutability", "strict")
    assert err == "created dataset repo pets (strict)\n"
    run(home, "init", "pets-labels", "--kind", "labels", "--mutability", "flexible")
    run(home, "init", "pets-model", "--kind", "model", "--mutability", "mutable")
    run(home, "init", "pets", "--kind", "dataset", "--mutability", "strict",
        expect="AlreadyExists")  # fmt: skip
    run(home, "init", "x", "--kind", "images", "--mutability", "strict", expect="click usage")
    out, _ = run(home, "repos", "--json")
    assert [(r["name"], r["kind"], r["mutability"]) for r in json.loads(out)] == [
        ("pets", "dataset", "strict"),
        ("pets-labels", "labels", "flexible"),
        ("pets-model", "model", "mutable"),
    ]

    # --- import ------------------------------------------------------------------------------
    images = write_tree(
        tmp_path / "images",
        {f"img/{i:03d}.png": os.urandom(2000 + i) for i in range(20)},
        mtime_ns=OLD,
    )
    out, err = run(home, "import", "pets", str(images), "-m", "20 images")
    pets_v1 = out.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", pets_v1) and "pets@main" in err and "20 files" in err
    out, err = run(home, "import", "pets", str(images), "-m", "again")
    assert out.strip() == pets_v1 and "nothing changed" in err
    labels_src = write_tree(
        tmp_path / "labels", {"labels.csv": LABELS, "splits.csv": SPLITS}, mtime_ns=OLD
    )
    out, _ = run(home, "import", "pets-labels", str(labels_src), "-m", "first labels",
                 "--input", "pets@main")  # fmt: skip
    labels_v1 = out.strip()
    run(home, "import", "pets-labels@v9", str(tmp_path / "nope"), "-m", "x", expect="SourceError")

    # --- a branch, edited in a writable mount -------------------------------------------------
    _, err = run(home, "branch", "pets-labels@relabel")
    assert err == f"created branch relabel at {labels_v1[:12]}\n"
    out, _ = run(home, "branch", "pets-labels")
    assert out.splitlines() == [f"main\t{labels_v1[:12]}", f"relabel\t{labels_v1[:12]}"]
    mp = mounter("pets-labels@relabel", "relabel")
    out, _ = run(home, "mounts")
    assert f"{mp}\tpets-labels@relabel\t{labels_v1[:12]}\trw\tpid " in out
    # flexible: a committed file changes only after unlock; the refusal says why
    sed = subprocess.run(["sed", "-i", "s/3,cat/3,dog/", str(mp / "labels.csv")],
                         capture_output=True, text=True)  # fmt: skip
    assert sed.returncode != 0
    assert (mp / "labels.csv").read_text() == LABELS
    out, err = run(home, "status", str(mp))
    assert "refused" in out and "labels.csv" in out and "flexible" in out
    _, err = run(home, "unlock", str(mp / "labels.csv"), str(mp / "splits.csv"))
    assert err == f"unlocked 2 files in {mp}\n"
    subprocess.run(["sed", "-i", "s/3,cat/3,dog/", str(mp / "labels.csv")], check=True)
    pandas_style_save(mp / "splits.csv", SPLITS.replace("3,test", "3,val"))
    (mp / "notes.txt").write_text("relabelled 3\n")
    out, err = run(home, "status", str(mp))
    assert err.startswith(f"pets-labels@relabel (flexible) at {mp}, base {labels_v1[:12]}")
    # replaced by a rename (sed -i, os.replace): modified, not added
    assert sorted(out.splitlines()) == ["A  notes.txt", "M  labels.csv", "M  splits.csv"]
    out, _ = run(home, "status", str(mp), "--json")
    assert {c["path"]: c["change"] for c in json.loads(out)["changes"]} == {
        "labels.csv": "modified",
        "notes.txt": "added",
        "splits.csv": "modified",
    }
    out, err = run(home, "commit", str(mp), "-m", "relabel 3", "--dry-run")
    assert sorted(out.splitlines()) == ["A  notes.txt", "M  labels.csv", "M  splits.csv"]
    assert "dry run: 3 changes would be committed to pets-labels@relabel" in err
    out, err = run(home, "commit", str(mp), "-m", "relabel 3", "--input", "pets@main")
    labels_v2 = out.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", labels_v2)
    assert f"committed {labels_v2[:12]} to pets-labels@relabel" in err
    out, err = run(home, "status", str(mp))
    assert out == "" and "nothing changed" in err
    run(home, "commit", str(mp), "-m", "again")

    # --- diff, log ---------------------------------------------------------------------------
    out, _ = run(home, "diff", "pets-labels@main", "pets-labels@relabel")
    lines = out.splitlines()
    assert [ln.split("  ")[:2] for ln in lines[:-1]] == [
        ["M", "labels.csv"], ["A", "notes.txt"], ["M", "splits.csv"]
    ]  # fmt: skip
    assert lines[-1].startswith("1 added, 2 modified, 0 renamed, 0 deleted")
    run(home, "diff", "pets-labels@main", "pets-labels@relabel", "../x", expect="InvalidName")
    out, _ = run(home, "log", "pets-labels@relabel", "-n", "1", "--json")
    [c] = json.loads(out)
    assert c["id"] == labels_v2 and c["refs"] == ["relabel"]
    assert c["inputs"] == [["pets", pets_v1]]
    out, _ = run(home, "log", "pets-labels@relabel", "-n", "0")
    assert out == ""
    out, _ = run(home, "log", "pets-labels@relabel~5", expect="UnknownRef")

    # --- restore -----------------------------------------------------------------------------
    # the commit ended the unlock: restoring other bytes over a committed file is refused
    _, err = run(home, "restore", str(mp / "splits.csv"), "--source", "@main",
                 expect="PolicyError")  # fmt: skip
    assert "unlock" in err and "flexible" in err
    run(home, "unlock", str(mp / "splits.csv"))
    out, err = run(home, "restore", str(mp / "splits.csv"), "--source", "@main")
    assert err == f"restored 1 paths in {mp}\n"
    assert (mp / "splits.csv").read_text() == SPLITS
    out, _ = run(home, "status", str(mp))
    lines = out.splitlines()  # the change, then the refused restore with its reason
    assert lines[0] == "M  splits.csv" and lines[1] == "refused since the last status (1):"
    assert "splits.csv" in lines[2] and "flexible" in lines[2] and len(lines) == 3
    run(home, "restore", str(mp / "nonexistent.txt"), "--source", "@main", expect="PathNotFound")
    run(home, "restore", str(mp / "splits.csv"), "--source", "main", expect="UsageError")
    run(home, "restore", str(mp / "splits.csv"))
    assert (mp / "splits.csv").read_text() == SPLITS.replace("3,test", "3,val")
    out, _ = run(home, "status", str(mp))
    assert out == ""

    # --- tag, then delete the branch ---------------------------------------------------------
    _, err = run(home, "tag", "pets-labels@v2", "@relabel")
    assert err == f"created tag v2 at {labels_v2[:12]}\n"
    run(home, "branch", "pets-labels@v2", expect="AlreadyExists")  # beside the tag: refused
    run(home, "import", "pets-labels@v2", str(labels_src), "-m", "x", expect="AlreadyExists")
    run(home, "branch", "-d", "pets-labels@relabel", expect="MountError")  # mounted writable
    run(home, "unmount", str(mp))
    run(home, "branch", "-d", "pets-labels@main", expect="UnsafeOperation")  # the default
    _, err = run(home, "branch", "-d", "pets-labels@relabel")  # the tag v2 holds its commits
    assert err.startswith(f"deleted branch relabel (was {labels_v2[:12]}")
    out, _ = run(home, "branch", "pets-labels")
    assert out.splitlines() == [f"main\t{labels_v1[:12]}"]

    # --- a model made from both, its lineage ---------------------------------------------------
    model = write_tree(tmp_path / "model", {"weights.pt": os.urandom(5000)}, mtime_ns=OLD)
    out, _ = run(home, "import", "pets-model", str(model), "-m", "resnet",
                 "--input", "pets@main", "--input", "pets-labels@v2")  # fmt: skip
    out, _ = run(home, "lineage", "pets-model", "--direction", "up", "--json")
    up = json.loads(out)["upstream"]
    assert sorted((n["repo"], n["refs"]) for n in up["inputs"]) == [
        ("pets", ["main"]),
        ("pets-labels", ["v2"]),
    ]

    # --- export ------------------------------------------------------------------------------
    dest = tmp_path / "exported" / "v2"  # the parent does not exist yet
    _, err = run(home, "export", "pets-labels@v2", str(dest))
    assert err.startswith("exported 3 files, 0 directories, 0 symlinks")
    assert snapshot(dest) == {
        "labels.csv": ("file", 0o644, LABELS.replace("3,cat", "3,dog").encode()),
        "notes.txt": ("file", 0o644, b"relabelled 3\n"),
        "splits.csv": ("file", 0o644, SPLITS.replace("3,test", "3,val").encode()),
    }
    run(home, "export", "pets-labels@v2", str(dest), expect="UsageError")  # not empty
    out, err = run(home, "fsck")
    assert "clean" in err
