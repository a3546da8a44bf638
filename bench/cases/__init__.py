"""Benchmark cases. Importing this package registers them, in the order of the imports below
(sorted by name, so a module's name places its cases in the report)."""

from bench.cases import (
    checkouts,
    checkouts_edit,
    diffing_rows,
    gc,
    history,
    hooks_gate,
    imports,
    memory,
    merging,
    merging_rows,
    mounts,
    mounts_epochs,
    mounts_loader,
    mounts_versions,
    remote,
    remote_reads,
    retention,
    storage,
)

__all__ = [
    "checkouts",
    "checkouts_edit",
    "diffing_rows",
    "gc",
    "history",
    "hooks_gate",
    "imports",
    "memory",
    "merging",
    "merging_rows",
    "mounts",
    "mounts_epochs",
    "mounts_loader",
    "mounts_versions",
    "remote",
    "remote_reads",
    "retention",
    "storage",
]
