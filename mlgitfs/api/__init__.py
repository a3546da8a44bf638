"""The porcelain: one function per user verb, returning `*Result` dataclasses. Never prints.

Every function takes the store home (None: $MLGITFS_HOME or the XDG data dir) and raises
only `MlgitError`s. The CLI in `mlgitfs_cli` parses, calls one of these and renders.

The verbs live in modules by subject; this package re-exports them, so callers write
`from mlgitfs import api` and `api.import_dir(...)`.
"""

from __future__ import annotations

from mlgitfs.api._common import (
    Progress,
    close_store,
    open_store,
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
from mlgitfs.api.gcverb import gc
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
from mlgitfs.api.mounts import (
    MountInfo,
    mount,
    mounts,
    unmount,
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
    BlameItem,
    CommitInfo,
    DiffItem,
    DiffResult,
    ExportResult,
    ImportResult,
    LineageResult,
    LsEntry,
    RefResult,
    RepoResult,
)
from mlgitfs.api.retention import (
    ExpiringInfo,
    RetentionResult,
    RuleInfo,
    retention_set,
    retention_show,
)
from mlgitfs.api.review import blame, log
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
from mlgitfs.memory import keep_freed_memory
from mlgitfs.repo.gc import GcResult

__all__ = [
    "ExpiringInfo",
    "RetentionResult",
    "RuleInfo",
    "retention_set",
    "retention_show",
    "ReflogResult",
    "RepoRemoveResult",
    "reflog_show",
    "repos_rm",
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
    "CheckoutCommitResult",
    "CloneResult",
    "DoctorResult",
    "PatchStatus",
    "doctor",
    "gc",
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
    "blame",
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
    "clone",
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
