"""The read-only views hook commands run in: a FUSE mount of the candidate commit through
the mount machinery, or, where FUSE is missing, an exported copy of it.

`MLGITFS_HOOK_VIEW=mount|export` chooses; by default a mount where /dev/fuse and
fusermount3 exist, an export elsewhere. Both are removed when the gate is done.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlgitfs.errors import UsageError
from mlgitfs.model.ids import ObjectId, to_hex
from mlgitfs.repo import export as export_mod
from mlgitfs.repo.attestations import attester_of
from mlgitfs.repo.gate import HookOptions
from mlgitfs.store.facade import Store


def _scratch(store: Store) -> Path:
    """A new empty directory for one view, in the store's home (an export may be large)."""
    top = store.home / "hook-views"
    top.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="view-", dir=top))


def fuse_available() -> bool:
    return os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None


@dataclass(frozen=True, slots=True)
class MountViews:
    store: Store

    @contextmanager
    def open(self, repo: str, commit: ObjectId) -> Iterator[Path]:
        from mlgitfs.daemon import mount as mount_mod

        mp = _scratch(self.store)
        try:
            mount_mod.mount(
                "mlgitfs.vfs.factory:snapshot_view",
                mp,
                f"mlgitfs:{repo}@{to_hex(commit)[:12]}",
                view_arg={
                    "home": str(self.store.home.resolve()),
                    "commit": to_hex(commit),
                    "cache_bytes": 64 << 20,
                },
                read_only=True,
                run_dir=self.store.run_dir,
                revspec=f"{repo}@{to_hex(commit)}",
                commit=to_hex(commit),
            )
            try:
                yield mp
            finally:
                mount_mod.unmount(mp, lazy=True, run_dir=self.store.run_dir)
        finally:
            os.rmdir(mp)


@dataclass(frozen=True, slots=True)
class ExportViews:
    store: Store

    @contextmanager
    def open(self, repo: str, commit: ObjectId) -> Iterator[Path]:
        top = _scratch(self.store)
        dest = top / "view"
        try:
            export_mod.export_entry(self.store, None, self.store.commit(commit).tree, dest)
            for d, _, _ in os.walk(dest):  # read-only, as a mount of a commit is
                os.chmod(d, 0o555)
            yield dest
        finally:
            for d, _, _ in os.walk(top):
                os.chmod(d, 0o755)
            export_mod.remove_tree(top)


def hook_options(store: Store, no_verify: bool = False) -> HookOptions:
    mode = os.environ.get("MLGITFS_HOOK_VIEW", "")
    if mode not in ("", "mount", "export"):
        raise UsageError(f"MLGITFS_HOOK_VIEW must be mount or export, not {mode!r}")
    use_mount = mode == "mount" or (not mode and fuse_available())
    views = MountViews(store) if use_mount else ExportViews(store)
    return HookOptions(views, no_verify, attester=attester_of(store))
