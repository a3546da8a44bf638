"""Policies of a writable mount: which changes are allowed, asked at each change and at commit.

A `Policy` answers two questions, both with the `Caller` who asks (the FUSE request's uid and
gid; for a control request, the socket peer's):

- `check(Change)`: one change of one path (the operation, the path, whether it gives a file
  of the base commit different content): None (allowed) or a `Refusal` (the errno for the
  system call and the sentence the user sees). The view asks at the system call where the
  kernel lets it (open for writing, write, truncate, create, rename, unlink, setattr,
  restore) and the commit asks again for every path its diff changes, so a change no system
  call showed (a directory renamed over a committed one) is refused there.
- `admit(Proposal)`: the commit as a whole, once, before anything of it is written: raises
  an `MlgitError` to refuse it (BranchProtected, PolicyError...), or returns the `Gate` whose
  hooks and checks run on the candidate (repo/gate.py), or None.

`compose` puts them in one `Policies`, asked in order: the first refusal wins. A mount's are
`vfs/mountpolicy.mount_policies`: owner, mutability, protected branch, hooks (cheap and
local first; the hooks, which may run commands, last).

Mutability (ml-git's definition): under `strict` a committed file's content never changes in
a later version; under `flexible` not until `mlgitfs unlock PATH` (until the next commit);
`mutable` allows everything. Adding, removing and chmod are not content changes.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mlgitfs.errors import PolicyError
from mlgitfs.meta.db import Mutability
from mlgitfs.model.ids import ObjectId
from mlgitfs.repo.gate import Gate, HookOptions
from mlgitfs.vfs.types import Caller


@dataclass(frozen=True, slots=True)
class Change:
    op: str  # write, truncate, create, rename, restore, commit
    path: str  # the path whose content would change
    replaces: bool  # the path is a file of the base commit and its content would change
    caller: Caller | None = None  # who asked (None: the mount's owner, via the control socket)


@dataclass(frozen=True, slots=True)
class Refusal:
    errno: int
    policy: str  # which policy refused, e.g. "strict"
    reason: str  # the sentence for the user: what and the way out


@dataclass(frozen=True, slots=True)
class Proposal:
    """A commit a mount is about to make of `repo@branch` on top of `base`."""

    repo: str
    branch: str
    base: ObjectId  # the checkout's base: the branch's head (the commit moves it by CAS)
    caller: Caller | None = None  # who asked (None: the daemon itself)
    hooks: HookOptions = HookOptions()  # how hooks get a view, and --no-verify


class Policy(Protocol):
    def check(self, change: Change) -> Refusal | None:
        """None when the change is allowed, else why not."""
        ...

    def admit(self, proposal: Proposal) -> Gate | None:
        """Before a commit writes anything: raise to refuse it; else the gate whose hooks
        run on its candidate, or None."""
        ...


class MutabilityPolicy:
    """strict / flexible / mutable, as the repo says (unlocked paths: flexible only)."""

    def __init__(
        self,
        repo: str,
        mutability: Mutability,
        unlocked: Callable[[str], bool],
        mounted: bool = True,
        unlock_flag: str | None = None,
    ) -> None:
        self.repo = repo
        self.mutability = mutability
        self.unlocked = unlocked
        self.mounted = mounted  # False: a write without a mount (fsspec), where no unlock exists
        self.unlock_flag = unlock_flag  # the command's own unlock option (import's --unlock)

    def check(self, change: Change) -> Refusal | None:
        if not change.replaces or self.mutability is Mutability.MUTABLE:
            return None
        if self.mutability is Mutability.FLEXIBLE and self.unlocked(change.path):
            return None
        if self.mutability is Mutability.STRICT:
            how = (
                "a committed file's content never changes in a strict repo: add a file under "
                "a new name, or remove this one"
            )
        elif self.unlock_flag is not None:
            how = f"allow it with `{self.unlock_flag} {change.path}` (flexible repo)"
        elif self.mounted:
            how = f"run `mlgitfs unlock {change.path}` first (flexible repo)"
        else:
            how = (
                f"a flexible repo changes it only after `mlgitfs unlock {change.path}` in a "
                "writable mount of the branch: change it there"
            )
        return Refusal(
            errno.EPERM,
            self.mutability.value,
            f"{self.repo} is {self.mutability.value}: {change.path} is committed; {how}",
        )

    def admit(self, proposal: Proposal) -> Gate | None:
        return None  # asked per path: the commit's check of every committed file it changes


def unlocked_in(paths: set[bytes]) -> Callable[[str], bool]:
    """`MutabilityPolicy`'s question about a checkout's unlocked paths, a set the view
    keeps (paths on disk are bytes)."""

    def unlocked(path: str) -> bool:
        return path.encode("utf-8", "surrogateescape") in paths

    return unlocked


class OwnerOnly:
    """Only the mount's owner changes it. With --allow-other, other users read the mount; their
    creates, removals, renames, chmods and opens for writing get EACCES (files in a version
    have one owner, so a file another user created could not be theirs)."""

    def __init__(self, uid: int) -> None:
        self.uid = uid

    def check(self, change: Change) -> Refusal | None:
        if change.caller is None or change.caller.uid == self.uid:
            return None
        return Refusal(
            errno.EACCES,
            "owner",
            f"only uid {self.uid}, the owner of this mount, changes it (uid {change.caller.uid} "
            "may read it)",
        )

    def admit(self, proposal: Proposal) -> Gate | None:
        refusal = self.check(Change("commit", "", False, proposal.caller))
        if refusal is not None:
            raise PolicyError(f"commit refused: {refusal.reason}; nothing was committed")
        return None


class Policies:
    """Several policies in order; the first refusal wins (made by `compose`)."""

    def __init__(self, policies: Sequence[Policy]) -> None:
        self.policies = list(policies)

    def check(self, change: Change) -> Refusal | None:
        for p in self.policies:
            refusal = p.check(change)
            if refusal is not None:
                return refusal
        return None

    def admit(self, proposal: Proposal) -> Gate | None:
        """Every policy admits the commit, in order (the first to raise refuses it); the
        gate of the one that has hooks to run (at most one policy of a list runs hooks)."""
        gates = [g for p in self.policies if (g := p.admit(proposal)) is not None]
        if len(gates) > 1:
            raise ValueError("two policies of one mount run hooks")
        return gates[0] if gates else None


def compose(*policies: Policy) -> Policies:
    """One policy of several, asked in the order given."""
    return Policies(policies)
