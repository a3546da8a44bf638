"""A torch DataLoader over PNGs, run as a subprocess by the ``loader_png`` case (the only bench
module that imports torch and Pillow; both come with the ``bench`` extra).

- ``python -m bench.torchloader gen ROOT --count N [--seed S]``: write N seeded RGB PNGs of
  64-256 px in ``class_XX`` directories (a smooth random field plus noise, so zlib cannot
  shrink them to nothing);
- ``python -m bench.torchloader epoch ROOT [--workers W] [--batch B] [--seed S]``: one epoch of
  ``DataLoader(dataset, batch_size=B, num_workers=W, shuffle=True, generator=seeded)`` over a
  Dataset that opens each file, decodes it with Pillow and makes a CHW uint8 tensor. Each item
  also carries its worker-side stage timers (open+read, decode, to-tensor), summed here.
  ``--unbuffered`` opens with ``buffering=0`` (no ``isatty()``: no FUSE ioctl per file).

Each prints one JSON line: seconds, files, bytes, pixels, and the stage sums (worker seconds).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import time
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

CLASSES = 10
MIN_SIDE, MAX_SIDE = 64, 256


def _png(rng: random.Random) -> Image.Image:
    w, h = rng.randint(MIN_SIDE, MAX_SIDE), rng.randint(MIN_SIDE, MAX_SIDE)
    # A coarse random grid scaled up gives smooth structure (like a photo's low frequencies);
    # noise on top keeps the PNG from compressing to almost nothing.
    gw, gh = rng.randint(3, 12), rng.randint(3, 12)
    base = Image.frombytes("RGB", (gw, gh), rng.randbytes(gw * gh * 3))
    img = base.resize((w, h), Image.Resampling.BICUBIC)
    noise = Image.effect_noise((w, h), rng.uniform(8, 40)).convert("RGB")
    return Image.blend(img, noise, rng.uniform(0.1, 0.35))


def generate(root: str, count: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    total = 0
    for i in range(count):
        d = os.path.join(root, f"class_{i % CLASSES:02d}")
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, f"img_{i:06d}.png")
        _png(rng).save(p, format="PNG")
        total += os.path.getsize(p)
    return {"files": count, "bytes": total}


class PngFolder(Dataset[tuple[torch.Tensor, int, float, float, float]]):
    """What an ImageFolder does, minus torchvision: a sorted walk, label = directory index."""

    def __init__(self, root: str, buffering: int = -1) -> None:
        self.buffering = buffering
        self.items: list[tuple[str, int]] = []
        classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
        for label, c in enumerate(classes):
            d = os.path.join(root, c)
            self.items += [(os.path.join(d, n), label) for n in sorted(os.listdir(d))]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, float, float, float]:
        path, label = self.items[i]
        t0 = time.perf_counter()
        with open(path, "rb", buffering=self.buffering) as f:
            data = f.read()
        t1 = time.perf_counter()
        img = Image.open(io.BytesIO(data)).convert("RGB")
        t2 = time.perf_counter()
        w, h = img.size
        t = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
        t = t.view(h, w, 3).permute(2, 0, 1).contiguous()
        t3 = time.perf_counter()
        return t, len(data), t1 - t0, t2 - t1, t3 - t2


def _keep_list(batch: list[Any]) -> list[Any]:
    # Images differ in size, so the default collate (which stacks) cannot batch them.
    return batch


def epoch(root: str, workers: int, batch: int, seed: int, unbuffered: bool) -> dict[str, Any]:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    ds = PngFolder(root, 0 if unbuffered else -1)
    g = torch.Generator()
    g.manual_seed(seed)
    loader = DataLoader(
        ds,
        batch_size=batch,
        shuffle=True,
        generator=g,
        num_workers=workers,
        collate_fn=_keep_list,
        multiprocessing_context="fork" if workers else None,
    )
    files = nbytes = pixels = 0
    read_s = decode_s = tensor_s = 0.0
    for b in loader:
        for t, n, r, d, c in b:
            files += 1
            nbytes += n
            pixels += t.numel() // 3
            read_s += r
            decode_s += d
            tensor_s += c
    return {
        "seconds": time.perf_counter() - t0,
        "files": files,
        "bytes": nbytes,
        "pixels": pixels,
        "read_s": read_s,
        "decode_s": decode_s,
        "tensor_s": tensor_s,
        "workers": workers,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.torchloader", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("root")
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("epoch")
    e.add_argument("root")
    e.add_argument("--workers", type=int, default=2)
    e.add_argument("--batch", type=int, default=32)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--unbuffered", action="store_true")
    a = p.parse_args(argv)
    if a.cmd == "gen":
        result = generate(a.root, a.count, a.seed)
    else:
        result = epoch(a.root, a.workers, a.batch, a.seed, a.unbuffered)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
