"""The README's main job: every step runs the real `mlgitfs` command and prints it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

MLGITFS = str(Path(sys.executable).parent / "mlgitfs")


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    print("$ mlgitfs " + " ".join(args), flush=True)
    proc = subprocess.run([MLGITFS, *args], text=True, capture_output=True)
    lines = (proc.stdout + proc.stderr).rstrip().splitlines()
    if len(lines) > 14:
        lines = [*lines[:12], f"... ({len(lines) - 12} more lines)"]
    out = "\n".join(lines)
    if out:
        print("  " + out.replace("\n", "\n  "), flush=True)
    if check and proc.returncode != 0:
        sys.exit(f"demo failed: mlgitfs {' '.join(args)} exited {proc.returncode}")
    return proc


def make_dataset(root: Path) -> None:
    rng = __import__("random").Random(7)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            d = root / split / cls
            d.mkdir(parents=True)
            for i in range(50):
                (d / f"{i:04d}.jpg").write_bytes(rng.randbytes(rng.randint(2000, 60000)))
    (root / "labels.csv").write_text("".join(f"{i},{i % 2}\n" for i in range(200)))


def edit_in_a_mount(work: Path) -> None:
    """Change files where the data is: a writable branch mount, status, commit, new version."""
    if not os.path.exists("/dev/fuse"):
        print("(no /dev/fuse here: skipping the mount steps)")
        return
    mnt, ro = work / "mnt", work / "v3"
    mnt.mkdir()
    ro.mkdir()
    run("mount", "pets@main", str(mnt))
    try:
        (mnt / "train" / "dog" / "0100.jpg").write_bytes(b"a new dog")
        (mnt / "train" / "cat" / "0000.jpg").unlink()
        os.rename(mnt / "val", mnt / "validation")
        print("$ (wrote train/dog/0100.jpg, removed train/cat/0000.jpg, renamed val/)")
        run("unlock", str(mnt / "labels.csv"))  # pets is flexible: committed files are locked
        with open(mnt / "labels.csv", "a") as f:
            f.write("201,0\n")
        run("status", str(mnt))
        run("commit", str(mnt), "-m", "edited in the mount", "--meta", "by=demo")
        run("tag", "pets@v3")
        run("mount", "pets@v3", str(ro))
        print(f"$ tail -1 {ro}/labels.csv\n  " + (ro / "labels.csv").read_text().splitlines()[-1])
        run("unmount", str(ro))
    finally:
        run("unmount", str(mnt), check=False)
        if os.path.ismount(ro):
            run("unmount", str(ro), check=False)


TRAIN = """import pathlib, sys
data, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
seen = sorted(data.glob("train/cat/000*.jpg"))  # a toy model: the cats numbered 000x
out.mkdir()
total = sum(len(p.read_bytes()) for p in seen)
(out / "weights.bin").write_bytes(bytes(total % 251 for _ in range(64)))
"""


def train_from_a_mount(work: Path) -> None:
    """A training job reads from a mount; the files it read become the model's lineage."""
    if not os.path.exists("/dev/fuse"):
        print("(no /dev/fuse here: skipping the training steps)")
        return
    mnt, out = work / "train-data", work / "model"
    mnt.mkdir()
    (work / "train.py").write_text(TRAIN)
    run("mount", "pets@v3", str(mnt))
    try:
        run("run", "--record", "train-1", "--", sys.executable, str(work / "train.py"),
            str(mnt), str(out))  # fmt: skip
    finally:
        run("unmount", str(mnt), check=False)
    run("init", "pets-model", "--kind", "model", "--mutability", "strict")
    run("import", "pets-model", str(out), "-m", "toy model", "--inputs-from", "train-1")
    run("lineage", "pets-model", "--files")


def merge_two_branches(work: Path, data: Path) -> None:
    """Two people change the same labels table on two branches; the merge combines their rows
    (a `rows` rule in .mlgitfs/merge.toml) and their files."""
    table = "".join(f"{i},{'cat' if i % 2 else 'dog'}\n" for i in range(20))
    (data / "tags.csv").write_text("id,label\n" + table)
    (data / ".mlgitfs").mkdir()
    rules = '[[rule]]\npath = "*.csv"\nstrategy = "rows"\nkey = ["id"]\n'
    (data / ".mlgitfs" / "merge.toml").write_text(rules)
    run("import", "pets", str(data), "-m", "a tags table, merged row by row")
    run("branch", "pets@relabel")
    other = work / "relabel"
    run("export", "pets@relabel", str(other))
    (other / "tags.csv").write_text((other / "tags.csv").read_text().replace("3,cat", "3,lynx"))
    (other / "train" / "cat" / "0100.jpg").write_bytes(b"another cat")
    # pets is flexible: a committed file's new content is imported only where --unlock names it
    run("import", "pets@relabel", str(other), "-m", "relabel row 3, add a cat",
        "--unlock", "tags.csv")  # fmt: skip
    (data / "tags.csv").write_text((data / "tags.csv").read_text().replace("8,dog", "8,wolf"))
    run("import", "pets", str(data), "-m", "relabel row 8", "--unlock", "tags.csv")
    run("merge", "pets@relabel", "--dry-run")
    run("merge", "pets@relabel", "-m", "merge relabel")
    merged = run("cat", "pets:tags.csv").stdout
    assert "3,lynx" in merged and "8,wolf" in merged, merged
    run("log", "pets", "-n", "3")
    # Review: who set row 8 of the labels table (by the rules' key), and every version that
    # changed the table, found through the commit-graph index.
    run("log", "pets", "--path", "tags.csv", "--oneline")
    blamed = run("blame", "pets:tags.csv").stdout.splitlines()
    relabel8 = run("log", "pets", "--grep", "^relabel row 8$", "--oneline").stdout.split()[0]
    assert any(line.startswith(relabel8) and line.endswith("  8") for line in blamed), blamed


def reclaim_a_branch(work: Path) -> None:
    """A scratch branch with its own data, deleted: gc gives its bytes back once the reflog
    no longer keeps it (here at once: reflog-expiry 0; the default keeps 30 days)."""
    scratch = work / "scratch"
    scratch.mkdir()
    (scratch / "noise.bin").write_bytes(os.urandom(4 << 20))
    run("branch", "pets@scratch")
    run("import", "pets@scratch", str(scratch), "-m", "4 MiB nobody needs")
    run("branch", "-d", "pets@scratch", "--force")
    run("config", "reflog-expiry", "0")
    run("gc", "--dry-run")
    run("gc")
    run("config", "reflog-expiry", "30d")


def share_through_a_remote(work: Path) -> None:
    """Push to a file:// remote, clone into a second store, read a file through a mount of the
    clone: its chunks stream from the remote on first read."""
    remote = (work / "remote").as_uri()
    run("remote", "add", "origin", remote)
    run("push", "pets", "--all")
    store2 = str(work / "store2")
    run("--home", store2, "clone", remote, "pets")
    run("--home", store2, "fsck")
    if not os.path.exists("/dev/fuse"):
        print("(no /dev/fuse here: skipping the mount of the clone)")
        return
    mnt = work / "clone-mnt"
    mnt.mkdir()
    run("--home", store2, "mount", "pets@v1", str(mnt))
    try:
        rel = "train/cat/0001.jpg"
        cmd = ["sha256sum", str(mnt / rel), str(work / "pets" / rel)]
        print("$ " + " ".join(cmd), flush=True)
        out = subprocess.run(cmd, text=True, capture_output=True, check=True).stdout
        print("  " + out.rstrip().replace("\n", "\n  "), flush=True)
        through_mount, source = (line.split()[0] for line in out.splitlines())
        if through_mount != source:
            sys.exit("demo failed: the clone's mount served other bytes than the source")
        print("  same bytes: read through the clone's mount, fetched from the remote")
    finally:
        run("--home", store2, "unmount", str(mnt), check=False)


GATES = """\
[[check]]                     # a built-in validator: the labels table's schema
name = "schema"
events = ["pre-push"]
type = "table"
path = "labels.csv"
columns = { id = "int", label = "str" }
key = ["id"]

[[hook]]                      # a command, run on a read-only view of the candidate
name = "images"
events = ["pre-push"]
command = "if find . -name '*.jpg' -size 0 | grep .; then echo 'empty images' >&2; exit 1; fi"

[[branch]]
pattern = "main"
protected = true              # only `mlgitfs promote` moves it
required_checks = ["schema", "images"]
"""


def gate_and_promote(work: Path) -> None:
    """A protected main: a direct import is refused, a bad version fails the gate at
    promotion and main stays, the fixed version passes and is promoted, then pushed."""
    rel = work / "release"
    (rel / ".mlgitfs").mkdir(parents=True)
    (rel / ".mlgitfs" / "hooks.toml").write_text(GATES)
    (rel / "labels.csv").write_text("id,label\n1,cat\n2,dog\n")
    (rel / "0001.jpg").write_bytes(b"jpeg bytes")
    run("init", "release", "--kind", "dataset", "--mutability", "mutable")
    run("import", "release", str(rel), "-m", "first release")
    run("branch", "release@dev")
    (rel / "labels.csv").write_text("id,label\n1,cat\n2,dog\n2,bird\n")  # key 2 twice
    (rel / "0002.jpg").write_bytes(b"")
    refused = run("import", "release@main", str(rel), "-m", "straight to main", check=False)
    assert refused.returncode == 36, refused.returncode  # BranchProtected
    run("import", "release@dev", str(rel), "-m", "a bird, a new image")
    run("key", "generate", "--name", "demo")  # promotions are signed attestations
    before = run("log", "release", "-n", "1", "--oneline").stdout
    gated = run("promote", "release@dev", "--to", "main", check=False)
    assert gated.returncode == 34, gated.returncode  # HookRefused: main did not move
    assert run("log", "release", "-n", "1", "--oneline").stdout == before
    (rel / "labels.csv").write_text("id,label\n1,cat\n2,dog\n3,bird\n")
    (rel / "0002.jpg").write_bytes(b"more jpeg bytes")
    run("import", "release@dev", str(rel), "-m", "fix: bird is 3, image written")
    run("promote", "release@dev", "--to", "main")
    run("checks", "release@main", "--verify")  # its attestations, re-verified
    run("push", "release")  # allowed: main's head carries a promotion attestation


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="mlgitfs-demo-"))
    os.environ["MLGITFS_HOME"] = str(work / "store")
    print(f"store: {work / 'store'} (MLGITFS_HOME)\n")
    try:
        data = work / "pets"
        make_dataset(data)
        run("init", "pets", "--kind", "dataset", "--mutability", "flexible", "--category", "vision")
        run("init", "pets-labels", "--kind", "labels", "--mutability", "mutable")
        run("import", "pets", str(data), "-m", "first version", "--meta", "source=demo")
        run("tag", "pets@v1")
        (data / "labels.csv").write_text((data / "labels.csv").read_text() + "200,1\n")
        (data / "train" / "cat" / "9999.jpg").write_bytes(b"new image")
        shutil.rmtree(data / "val" / "dog")
        # flexible: labels.csv, committed, takes new content only where --unlock names it
        run("import", "pets", str(data), "-m", "fix labels, add a cat, drop val/dog",
            "--unlock", "labels.csv")  # fmt: skip
        run("log", "pets")
        run("diff", "pets@v1", "pets", "--stat")
        run("ls", "pets:train")
        run("cat", "pets@v1:labels.csv", check=True)
        labels = work / "labels"
        labels.mkdir()
        (labels / "boxes.json").write_text('{"0": [1, 2, 3, 4]}\n')
        run("import", "pets-labels", str(labels), "-m", "boxes", "--input", "pets@v1")
        run("lineage", "pets@v1")
        run("export", "pets@v1:val", str(work / "exported"))
        merge_two_branches(work, data)
        edit_in_a_mount(work)
        train_from_a_mount(work)
        reclaim_a_branch(work)
        run("repos")
        run("fsck")
        share_through_a_remote(work)
        gate_and_promote(work)
        print("\ndemo finished: every step above ran for real")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
