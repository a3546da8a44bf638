"""Policies of a writable mount: which changes are allowed, asked at each change and at commit.

A `Policy` is asked about one `Change` (the operation, the path, whether it gives a file of
the base commit different content, and who asks) and answers None (allowed) or a `Refusal`
(the errno for the system call and the sentence the user sees). The view asks at the system
call where the kernel lets it (open for writing, write, truncate, create, rename, restore) and
the commit asks again for every path its diff changes, so a change no system call showed
(a directory renamed over a committed one) is refused there. Mutability implements it today;
protected branches and hooks are meant to implement it too.

Mutability (ml-git's definition): under `strict` a committed file's content never changes in
a later version; under `flexible` not until `mlgitfs unlock PATH` (until the next commit);
`mutable` allows everything. Adding, removing and chmod are not content changes.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from mlgitfs.meta.db import Mutability
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


class Policy(Protocol):
    def check(self, change: Change) -> Refusal | None:
        """None when the change is allowed, else why not."""
        ...


class MutabilityPolicy:
    """strict / flexible / mutable, as the repo says (unlocked paths: flexible only)."""

    def __init__(
        self,
        repo: str,
        mutability: Mutability,
        unlocked: Callable[[str], bool],
        mounted: bool = True,
    ) -> None:
        self.repo = repo
        self.mutability = mutability
        self.unlocked = unlocked
        self.mounted = mounted  # False: a write without a mount (fsspec), where no unlock exists

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


class Policies:
    """Several policies in order; the first refusal wins."""

    def __init__(self, policies: Sequence[Policy]) -> None:
        self.policies = list(policies)

    def check(self, change: Change) -> Refusal | None:
        for p in self.policies:
            refusal = p.check(change)
            if refusal is not None:
                return refusal
        return None
