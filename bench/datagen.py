"""Deterministic generated data: small files (half random like images, half text), a large
partly compressible binary file, a CSV table, and the per-version edits of versions_storage.

Random bytes come from the BLAKE3 extendable output keyed by (seed, purpose), which is fast
(> 1 GB/s) and reproducible; nothing here is shared between files, so no accidental dedup.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import blake3

from bench.context import KIB, MIB

_WORD_TEXT = (
    "the of and to in is was for on that with as by at from image label train test model "
    "data value loss epoch batch layer weight cat dog car tree person bike road sky water "
    "red green blue small large left right top bottom score class mask box point frame "
    "video audio text token sentence review positive negative neutral annotation sample"
)
_WORDS = _WORD_TEXT.split()

# Bytes -> letters, spaces and newlines: "text-like" bytes that zstd shrinks to about half.
_TEXT_TABLE = bytes(
    (b" " if i < 40 else b"\n" if i < 44 else bytes([97 + (i % 26)]))[0] for i in range(256)
)


def random_bytes(seed: int, key: str, n: int) -> bytes:
    return blake3.blake3(f"{seed}:{key}".encode()).digest(length=n)


def letter_text(seed: int, key: str, n: int) -> bytes:
    return random_bytes(seed, key, n).translate(_TEXT_TABLE)


class WordPool:
    """A pool of word text; text files are slices of it at random offsets (about 3x to zstd)."""

    def __init__(self, seed: int, size: int = 16 * MIB) -> None:
        rng = random.Random(seed)
        words: list[str] = []
        total = 0
        while total < size:
            line = " ".join(rng.choices(_WORDS, k=rng.randint(5, 20)))
            words.append(line)
            total += len(line) + 1
        self.data = ("\n".join(words) + "\n").encode()

    def slice(self, rng: random.Random, n: int) -> bytes:
        start = rng.randrange(0, len(self.data) - n)
        return self.data[start : start + n]


@lru_cache(maxsize=2)
def word_pool(seed: int) -> WordPool:
    return WordPool(seed)


def small_file_content(seed: int, index: int, pool: WordPool, version: int = 0) -> bytes:
    """~100 KiB (64..136 KiB): even indexes random (image-like), odd ones text-like."""
    rng = random.Random(f"{seed}:small:{index}:{version}")
    size = rng.randint(64 * KIB, 136 * KIB)
    if index % 2 == 0:
        return random_bytes(seed, f"small:{index}:{version}", size)
    header = f"# file {index} version {version}\n".encode()
    return header + pool.slice(rng, size - len(header))


def small_name(index: int) -> str:
    ext = "jpg" if index % 2 == 0 else "txt"
    return f"d{index // 1000:03d}/f{index:06d}.{ext}"


def write_small_files(root: Path, seed: int, count: int) -> int:
    pool = word_pool(seed)
    total = 0
    for i in range(count):
        p = root / small_name(i)
        p.parent.mkdir(parents=True, exist_ok=True)
        data = small_file_content(seed, i, pool)
        p.write_bytes(data)
        total += len(data)
    return total


def rewrite_small_files(root: Path, seed: int, count: int, fraction: float, version: int) -> int:
    """Replace the content of ``fraction`` of the small files (a version-specific choice)."""
    pool = word_pool(seed)
    rng = random.Random(f"{seed}:pick:{version}")
    n = max(1, round(count * fraction))
    changed = 0
    for i in rng.sample(range(count), n):
        data = small_file_content(seed, i, pool, version=version)
        (root / small_name(i)).write_bytes(data)
        changed += len(data)
    return changed


def write_large_file(path: Path, seed: int, size: int, block: int = MIB) -> None:
    """Blocks of 1 MiB: three quarters random, one quarter letter text (a partly compressible
    blob, like a packed archive of mixed media)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        done = 0
        i = 0
        while done < size:
            n = min(block, size - done)
            key = f"large:{i}"
            f.write(letter_text(seed, key, n) if i % 4 == 3 else random_bytes(seed, key, n))
            done += n
            i += 1


def edit_large_file(path: Path, seed: int, fraction: float, version: int, regions: int = 4) -> int:
    """Overwrite ``fraction`` of the file in place, in a few contiguous regions."""
    size = path.stat().st_size
    per = max(1, int(size * fraction) // regions)
    rng = random.Random(f"{seed}:edit:{version}")
    with path.open("r+b") as f:
        for r in range(regions):
            lo = r * size // regions
            hi = (r + 1) * size // regions - per
            f.seek(rng.randrange(lo, max(lo + 1, hi)))
            f.write(random_bytes(seed, f"edit:{version}:{r}", per))
    return per * regions


def write_csv(path: Path, seed: int, size: int) -> None:
    """A table of ``id,x,y,label,hash`` rows, ~``size`` bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}:csv")
    labels = ["cat", "dog", "car", "tree", "person", "bike"]
    with path.open("w", encoding="ascii", newline="\n") as f:
        f.write("id,x,y,label,hash\n")
        written = 0
        row = 0
        while written < size:
            hexes = random_bytes(seed, f"csv:{row}", 8 * 1000).hex()
            lines = []
            for j in range(1000):
                x = rng.random()
                lines.append(
                    f"{row + j},{x:.6f},{rng.gauss(0, 1):.6f},{labels[j % 6]},"
                    f"{hexes[16 * j : 16 * j + 16]}\n"
                )
            chunk = "".join(lines)
            f.write(chunk)
            written += len(chunk)
            row += 1000


def insert_csv_line(path: Path, version: int) -> None:
    """Insert one row in the middle of the CSV, rewriting the file in place."""
    data = path.read_bytes()
    mid = data.index(b"\n", len(data) // 2) + 1
    line = f"inserted-{version},0.5,0.5,new,{version:016x}\n".encode()
    with path.open("r+b") as f:
        f.seek(mid)
        f.write(line + data[mid:])


@dataclass(frozen=True)
class Dataset:
    root: Path
    files: int
    bytes: int


def dir_stats(root: Path) -> Dataset:
    files = 0
    total = 0
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            files += 1
            total += os.lstat(os.path.join(dirpath, n)).st_size
    return Dataset(root, files, total)
