"""Benchmark cases. Importing this package registers them, in this order."""

from bench.cases import checkouts as checkouts  # issue 4: writable mounts
from bench.cases import imports, mounts, remote, storage

__all__ = ["imports", "mounts", "remote", "storage"]
