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
        run("import", "pets", str(data), "-m", "fix labels, add a cat, drop val/dog")
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
        run("repos")
        run("fsck")
        print("\ndemo finished: every step above ran for real")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
