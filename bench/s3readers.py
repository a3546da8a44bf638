"""Readers for the remote cases, timed from inside (interpreter start excluded), run as
subprocesses; each prints one JSON line.

- ``python -m bench.s3readers tree ROOT...``: read every file under each ROOT whole (sorted walk,
  1 MiB ``readinto``): the "full read" after a clone;
- ``python -m bench.s3readers get ENDPOINT BUCKET KEY``: one boto3 ``get_object`` of KEY, its
  body read in 1 MiB chunks (one GET, one connection);
- ``python -m bench.s3readers download ENDPOINT BUCKET KEY``: ``download_fileobj`` of KEY into
  /dev/null with boto3's default transfer settings (parallel ranged GETs).

Credentials come from the environment (``AWS_ACCESS_KEY_ID``, ...), as for every client.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

BLOCK = 1 << 20


def read_tree(roots: list[str]) -> dict[str, float | int]:
    buf = bytearray(BLOCK)
    view = memoryview(buf)
    total = 0
    files = 0
    t0 = time.perf_counter()
    for root in roots:
        for dirpath, dirnames, names in os.walk(root):
            dirnames.sort()
            for name in sorted(names):
                with open(os.path.join(dirpath, name), "rb", buffering=0) as f:
                    while True:
                        n = f.readinto(view)
                        if not n:
                            break
                        total += n
                files += 1
    return {"seconds": time.perf_counter() - t0, "files": files, "bytes": total}


def _client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=5,
        read_timeout=120,
        retries={"mode": "standard", "max_attempts": 3},
        s3={"addressing_style": "path"},
        max_pool_connections=32,
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


def get_one(endpoint: str, bucket: str, key: str) -> dict[str, float | int]:
    c = _client(endpoint)
    c.head_bucket(Bucket=bucket)  # connection set up before the clock starts
    total = 0
    t0 = time.perf_counter()
    body = c.get_object(Bucket=bucket, Key=key)["Body"]
    while True:
        chunk = body.read(BLOCK)
        if not chunk:
            break
        total += len(chunk)
    return {"seconds": time.perf_counter() - t0, "bytes": total}


def download(endpoint: str, bucket: str, key: str) -> dict[str, float | int]:
    c = _client(endpoint)
    c.head_bucket(Bucket=bucket)
    t0 = time.perf_counter()
    with open(os.devnull, "wb") as sink:
        c.download_fileobj(bucket, key, sink)
    secs = time.perf_counter() - t0
    size = int(c.head_object(Bucket=bucket, Key=key)["ContentLength"])
    return {"seconds": secs, "bytes": size}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.s3readers", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("tree")
    t.add_argument("roots", nargs="+")
    for cmd in ("get", "download"):
        g = sub.add_parser(cmd)
        g.add_argument("endpoint")
        g.add_argument("bucket")
        g.add_argument("key")
    a = p.parse_args(argv)
    if a.cmd == "tree":
        result = read_tree(a.roots)
    elif a.cmd == "get":
        result = get_one(a.endpoint, a.bucket, a.key)
    else:
        result = download(a.endpoint, a.bucket, a.key)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
