"""The porcelain: one function per user verb, returning `*Result` dataclasses. Never prints.

Every function takes the store home (None: $MLGITFS_HOME or the XDG data dir) and raises
only `MlgitError`s. The CLI in `mlgitfs_cli` parses, calls one of these and renders.

The verbs live in modules by subject; this package re-exports them, so callers write
`from mlgitfs import api` and `api.import_dir(...)`.

Importing this package imports none of them: a name is imported from its module when first
used (`__getattr__`, from the `TYPE_CHECKING` imports below, which also give the types), so
a command pays only for the verbs it calls (`mlgitfs merge` does not load push, mounts or
bundles).
"""

from __future__ import annotations

import importlib
import re
import sys
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlgitfs.api._common import (
        Progress,
        close_store,
        is_mountpoint,
        open_store,
    )
    from mlgitfs.api.access import (
        AccessExportResult,
        AccessPublishResult,
        AccessResult,
        GrantItem,
        access_export,
        access_grant,
        access_publish,
        access_revoke,
        access_show,
    )
    from mlgitfs.api.branches import (
        DeleteResult,
        branch_create,
        branch_delete,
        branch_list,
        tag_create,
        tag_delete,
        tag_list,
    )
    from mlgitfs.api.bundles import BundleCloneResult, BundleResult, bundle, clone_bundle
    from mlgitfs.api.checkouts import (
        CheckoutCommitResult,
        PathsResult,
        StatusItem,
        StatusResult,
        commit,
        restore,
        status,
        unlock,
    )
    from mlgitfs.api.doctor import DoctorResult, PatchStatus, doctor
    from mlgitfs.api.erasing import EraseResult, erase, erasures_list
    from mlgitfs.api.gcverb import gc
    from mlgitfs.api.gcverb import gc_remote_verb as gc_remote
    from mlgitfs.api.keys import (
        CommitVerifyResult,
        KeyResult,
        StatementResult,
        VerifyResult,
        key_export,
        key_generate,
        key_import,
        key_list,
        key_remove,
        verify,
    )
    from mlgitfs.api.lifecycle import ReflogResult, RepoRemoveResult, reflog_show, repos_rm
    from mlgitfs.api.merging import (
        MergeBaseResult,
        MergeResult,
        ResetResult,
        ResolvedItem,
        cherry_pick,
        merge,
        merge_base,
        reset,
        revert,
    )
    from mlgitfs.api.mirroring import MirrorResult, mirror
    from mlgitfs.api.mountmerge import (
        MergeInfo,
        MountMergeResult,
        conflict_cells_csv,
        conflict_side,
        merge_abort,
        merge_into_mount,
        pull_into_mount,
        resolve,
        update,
    )
    from mlgitfs.api.mounts import (
        MountInfo,
        mount,
        mounts,
        unmount,
    )
    from mlgitfs.api.promotion import (
        CheckRecord,
        ChecksResult,
        PromoteResult,
        Promotion,
        checks,
        promote,
    )
    from mlgitfs.api.readsets import (
        LineageFilesResult,
        RecordStartResult,
        RunResult,
        lineage_export,
        lineage_files,
        record_start,
        record_stop,
        recording,
        run_recorded,
    )
    from mlgitfs.api.remotes import (
        CloneResult,
        PrefetchResult,
        RefUpdateResult,
        RemoteResult,
        SyncResult,
        clone,
        fetch,
        prefetch,
        pull,
        push,
        push_delete,
        remote_add,
        remote_list,
        remote_remove,
    )
    from mlgitfs.api.results import (
        BlameCell,
        BlameItem,
        BlameResult,
        CellDiff,
        ChunkBlameItem,
        CommitInfo,
        DiffItem,
        DiffResult,
        ExportResult,
        ImportResult,
        LineageResult,
        LsEntry,
        RefResult,
        RepoResult,
        RowBlameItem,
        RowDiffItem,
        RowDiffResult,
        TableDiffItem,
    )
    from mlgitfs.api.retention import (
        ExpiringInfo,
        RetentionResult,
        RuleInfo,
        retention_set,
        retention_show,
    )
    from mlgitfs.api.review import blame, log
    from mlgitfs.api.rowdiffs import diff_rows
    from mlgitfs.api.tables import TableMergeFilesResult, merge_table_files
    from mlgitfs.api.verbs import (
        CONFIG_KEYS,
        ConfigResult,
        cat,
        config,
        diff,
        export,
        fsck,
        import_dir,
        init,
        lineage_of,
        ls,
        repos,
        show,
    )
    from mlgitfs.api.writes import PathEdit, WriteResult, WriteTarget, write_paths, write_target
    from mlgitfs.memory import keep_freed_memory
    from mlgitfs.model.conflicts import MountConflict
    from mlgitfs.repo.gc import GcResult
    from mlgitfs.repo.remotegc import RemoteGcResult


def _where() -> dict[str, tuple[str, str]]:
    """Each re-exported name → (its module, its name there), read from the TYPE_CHECKING
    imports above (one list to keep: add a verb there). A regular expression, not `ast`:
    importing ast would cost more than the imports this saves."""
    text = Path(__file__).read_text(encoding="utf-8")
    out: dict[str, tuple[str, str]] = {}
    for m in re.finditer(r"^ +from (mlgitfs\.[\w.]+) import (\([^)]*\)|.*)$", text, re.M):
        for item in m.group(2).strip("()").split(","):
            name, _, alias = item.strip().partition(" as ")
            if name:
                out[alias or name] = (m.group(1), name)
    return out


_WHERE: dict[str, tuple[str, str]] = {}


class _Api(types.ModuleType):
    """The import system binds a submodule, when first loaded, as an attribute of this
    package; two verbs share their module's name (`doctor`, `mounts`): the verb keeps it."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _WHERE_NAMES:
            return
        super().__setattr__(name, value)


if not TYPE_CHECKING:  # hidden from mypy, which would type every misspelt verb as Any

    def __getattr__(name: str) -> Any:
        if not _WHERE:
            _WHERE.update(_where())
        where = _WHERE.get(name)
        if where is None:
            raise AttributeError(f"module 'mlgitfs.api' has no attribute {name!r}")
        value = getattr(importlib.import_module(where[0]), where[1])
        globals()[name] = value
        return value


__all__ = [
    "AccessExportResult",
    "AccessPublishResult",
    "access_publish",
    "AccessResult",
    "GrantItem",
    "access_export",
    "access_grant",
    "access_revoke",
    "access_show",
    "PathEdit",
    "WriteResult",
    "WriteTarget",
    "write_paths",
    "write_target",
    "CheckRecord",
    "ChecksResult",
    "PromoteResult",
    "Promotion",
    "checks",
    "promote",
    "ExpiringInfo",
    "RetentionResult",
    "RuleInfo",
    "retention_set",
    "retention_show",
    "ReflogResult",
    "RepoRemoveResult",
    "reflog_show",
    "repos_rm",
    "MergeInfo",
    "MountConflict",
    "MountMergeResult",
    "conflict_cells_csv",
    "conflict_side",
    "is_mountpoint",
    "merge_abort",
    "merge_into_mount",
    "pull_into_mount",
    "resolve",
    "update",
    "revert",
    "reset",
    "merge_base",
    "merge_table_files",
    "merge",
    "cherry_pick",
    "ResolvedItem",
    "ResetResult",
    "MergeResult",
    "TableMergeFilesResult",
    "MergeBaseResult",
    "CONFIG_KEYS",
    "CommitVerifyResult",
    "KeyResult",
    "StatementResult",
    "VerifyResult",
    "key_export",
    "key_generate",
    "key_import",
    "key_list",
    "key_remove",
    "verify",
    "CheckoutCommitResult",
    "CloneResult",
    "DoctorResult",
    "PatchStatus",
    "doctor",
    "gc",
    "gc_remote",
    "RemoteGcResult",
    "erase",
    "erasures_list",
    "EraseResult",
    "GcResult",
    "CommitInfo",
    "ConfigResult",
    "DeleteResult",
    "DiffItem",
    "DiffResult",
    "ExportResult",
    "ImportResult",
    "LineageResult",
    "LsEntry",
    "BlameItem",
    "BlameCell",
    "BlameResult",
    "ChunkBlameItem",
    "RowBlameItem",
    "blame",
    "CellDiff",
    "RowDiffItem",
    "RowDiffResult",
    "TableDiffItem",
    "diff_rows",
    "MountInfo",
    "PathsResult",
    "PrefetchResult",
    "Progress",
    "RefResult",
    "RefUpdateResult",
    "RemoteResult",
    "RepoResult",
    "StatusItem",
    "StatusResult",
    "SyncResult",
    "branch_create",
    "branch_delete",
    "branch_list",
    "cat",
    "BundleCloneResult",
    "BundleResult",
    "bundle",
    "MirrorResult",
    "mirror",
    "clone",
    "clone_bundle",
    "close_store",
    "commit",
    "config",
    "diff",
    "export",
    "fetch",
    "fsck",
    "import_dir",
    "init",
    "keep_freed_memory",
    "lineage_of",
    "RunResult",
    "RecordStartResult",
    "record_start",
    "record_stop",
    "LineageFilesResult",
    "lineage_export",
    "lineage_files",
    "recording",
    "run_recorded",
    "log",
    "ls",
    "mount",
    "mounts",
    "open_store",
    "prefetch",
    "pull",
    "push",
    "push_delete",
    "remote_add",
    "remote_list",
    "remote_remove",
    "repos",
    "restore",
    "show",
    "status",
    "tag_create",
    "tag_delete",
    "tag_list",
    "unlock",
    "unmount",
]

_WHERE_NAMES = frozenset(__all__)
sys.modules[__name__].__class__ = _Api
