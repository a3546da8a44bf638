"""Benchmark cases. Importing this package registers them, in this order."""

from bench.cases import imports, storage

__all__ = ["imports", "storage"]
