"""The view a daemon serves for one checkout: the writable view with the checkout's verbs.

`CheckoutView` is the `CheckoutFsView` (vfs/types.py) the factory builds: `WritableView`'s
FUSE operations plus commit, status, restore, unlock and the merges into the mount, each the
verb of vfs/checkout_ops.py or vfs/mountmerge.py (which work on the `WritableView` beneath
and do not know this class, so no module imports its own importer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlgitfs.model.ids import ObjectId
from mlgitfs.repo.gate import HookOptions
from mlgitfs.repo.merge import Strategy
from mlgitfs.vfs import checkout_ops, mountmerge
from mlgitfs.vfs.checkout_ops import CommitOutcome, StatusOutcome
from mlgitfs.vfs.mountmerge import Merged
from mlgitfs.vfs.overlay import WritableView
from mlgitfs.vfs.restore import RestoreOutcome
from mlgitfs.vfs.types import Caller, CheckoutFsView


class CheckoutView(WritableView):
    """A checkout (repo@branch) as its daemon serves it: to the kernel and to the control
    socket."""

    async def commit(
        self,
        message: str,
        meta: dict[str, str],
        inputs: list[tuple[str, ObjectId]],
        dry_run: bool,
        author: str | None,
        hooks: HookOptions | None,
        caller: Caller | None,
    ) -> CommitOutcome:
        return await checkout_ops.commit_checkout(
            self, message, meta, inputs, dry_run, author, hooks, caller
        )

    async def status(self) -> StatusOutcome:
        return await checkout_ops.status(self)

    async def restore(
        self, paths: Sequence[str], source: str, caller: Caller | None
    ) -> RestoreOutcome:
        return await checkout_ops.restore_paths(self, paths, source, caller)

    async def unlock(self, paths: Sequence[str]) -> list[str]:
        return await checkout_ops.unlock(self, paths)

    async def merge(self, theirs: ObjectId | None, label: str, strategy: Strategy | None) -> Merged:
        return await mountmerge.merge(self, theirs, label, strategy)

    async def resolve_conflicts(self, paths: list[bytes], side: str) -> Merged:
        return await mountmerge.resolve(self, paths, side)

    async def abort_merge(self) -> Merged:
        return await mountmerge.abort(self)


if TYPE_CHECKING:  # mypy holds the class to the whole protocol the control socket serves
    _AS_CHECKOUT: type[CheckoutFsView] = CheckoutView
