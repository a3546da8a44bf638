"""The one error hierarchy of mlgitfs, each user-facing class with a message and an exit code.

Dependencies' exceptions (lmdb, msgpack, boto3, OS errors of the source tree) are translated
into these at the one module that imports the dependency, chained with ``raise ... from exc``.
The CLI maps them to messages and exit codes in one place; docs/exit-codes.md holds the same
table and tests/test_cli.py keeps the two together.

    MlgitError                      exit 1   anything mlgitfs raises on purpose
    ├── UsageError                  exit 2   a command line or argument that makes no sense
    │   ├── InvalidName             exit 6   a repo, branch, tag or path name that is not allowed
    │   └── InvalidRevspec          exit 17  REPO@REF[:PATH] that does not parse
    ├── NotFound                    exit 3   something named does not exist
    │   ├── UnknownRepo             exit 3   no repo of that name in the store
    │   ├── UnknownRef              exit 4   no branch, tag or commit for that ref
    │   ├── PathNotFound            exit 4   no such path in that commit
    │   ├── StoreNotFound           exit 24  no store at that home (only init and clone make one)
    │   └── UnknownRemote           exit 3   no remote of that name
    ├── AmbiguousRef                exit 5   a short commit id that names several commits
    ├── AlreadyExists               exit 8   a repo, branch, tag or remote that exists already
    ├── CorruptObject               exit 7   an object that does not hash to its id or parse
    │   ├── MissingObject           exit 7   an object or chunk that should be there and is not
    │   │   ├── VersionExpired      exit 26  file contents of a version retention let expire
    │   │   └── FileErased          exit 35  file contents removed by `mlgitfs erase`
    │   └── BundleDamaged           exit 37  a bundle file truncated, altered or not a bundle
    ├── SourceError                 exit 9   import input refused: special file, unreadable file
    ├── DestinationError            exit 25  export output cannot be written (permission, space)
    ├── StoreError                  exit 10  the local store cannot do what was asked
    │   └── StoreFull               exit 10  the LMDB map or the disk is full
    ├── MountError                  exit 11  a mount could not be made, found or unmounted
    ├── NotFastForward              exit 12  a push whose remote ref moved elsewhere
    ├── RemoteError                 exit 13  a remote that is unreachable, denied or misbehaving
    │   ├── PreconditionFailed      exit 13  a conditional write lost (used internally by push)
    │   ├── RemoteNotFound          exit 18  the remote's bucket does not exist
    │   ├── RemoteDenied            exit 19  credentials missing, wrong, or without permission
    │   ├── RemoteUnreachable       exit 20  the endpoint did not answer (refused, timed out, DNS)
    │   └── RemoteKeyMissing        exit 21  no object at that key of an existing remote
    ├── ConflictError               exit 14  the branch moved since the checkout's base
    │   └── RemoteGcRunning         exit 14  another gc holds the remote's lease
    ├── MergeConflict               exit 23  a merge found conflicts; nothing was changed
    ├── UnmergedPaths               exit 27  a mount's merge has conflicts not resolved yet
    ├── PolicyError                 exit 15  a change the repo's mutability policy forbids
    ├── DaemonError                 exit 16  the mount's daemon did not answer or refused
    │   └── ProtocolError           exit 16  a control message that is not what its op defines
    ├── UnsafeOperation             exit 22  refused without --force: it would lose work or data
    ├── TableError                  exit 30  a table the rows merge strategy cannot merge
    │   ├── TableParseError         exit 31  a table file that does not parse (or cannot be written)
    │   ├── DuplicateKey            exit 32  two rows of one table with the same key
    │   └── MissingKeyColumn        exit 33  a key column the merge rule names is not in the table
    ├── HookRefused                 exit 34  a pre- hook or check refused the candidate
    └── VerificationFailed          exit 38  a signed statement that does not hold for its commit
        ├── SignatureInvalid        exit 39  a signature that is not its signer's of that statement
        ├── UnknownKey              exit 40  a statement signed by a key the key ring does not know
        ├── Unsigned                exit 41  a commit (or ref move) that carries no signature
        ├── PolicyRollback          exit 42  a remote's access policy older than the one trusted
        ├── PolicyUnauthorized      exit 43  an access policy not signed by a previous admin
        ├── TrustViolation          exit 44  history that breaks the access policy
        ├── AttestationMoved        exit 45  an attestation attached to a commit it is not about
        ├── AttestationTreeMismatch exit 46  an attestation naming a tree its commit does not have
        └── SignerLacksRole         exit 47  a valid signature by a key without the role needed
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlgitfs.model.conflicts import Conflict


class MlgitError(Exception):
    """Base of every error mlgitfs raises on purpose; ``str(err)`` is the user-facing message."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(MlgitError):
    exit_code = 2


class InvalidName(UsageError):
    exit_code = 6


class InvalidRevspec(UsageError):
    exit_code = 17


class NotFound(MlgitError):
    exit_code = 3


class UnknownRepo(NotFound):
    exit_code = 3


class UnknownRef(NotFound):
    exit_code = 4


class PathNotFound(NotFound):
    exit_code = 4


class StoreNotFound(NotFound):
    exit_code = 24


class UnknownRemote(NotFound):
    exit_code = 3


class AmbiguousRef(MlgitError):
    exit_code = 5


class AlreadyExists(MlgitError):
    exit_code = 8


class CorruptObject(MlgitError):
    """An object (chunk, manifest, tree, commit) that fails its hash check or does not parse."""

    exit_code = 7

    def __init__(self, object_id: str, reason: str) -> None:
        super().__init__(f"corrupt object {object_id}: {reason}")
        self.object_id = object_id
        self.reason = reason


class MissingObject(CorruptObject):
    """Absent from the store (and from every remote that was asked)."""


class VersionExpired(MissingObject):
    """A file of a version whose contents gc let go when retention expired it (its history,
    names and sizes remain); the message names the rule."""

    exit_code = 26

    def __init__(self, object_id: str, message: str) -> None:
        MlgitError.__init__(self, message)
        self.object_id = object_id
        self.reason = message


class FileErased(MissingObject):
    """A file whose contents `mlgitfs erase` removed from the version read (its history,
    names and sizes remain); the message names the erasure record."""

    exit_code = 35

    def __init__(self, object_id: str, message: str) -> None:
        MlgitError.__init__(self, message)
        self.object_id = object_id
        self.reason = message


class BundleDamaged(CorruptObject):
    """A bundle file (`mlgitfs bundle`) that is truncated, altered or no bundle at all."""

    exit_code = 37

    def __init__(self, path: str, reason: str) -> None:
        MlgitError.__init__(self, f"bundle {path} is damaged: {reason}; nothing was restored")
        self.object_id = path
        self.reason = reason


class SourceError(MlgitError):
    exit_code = 9


class DestinationError(MlgitError):
    exit_code = 25


class StoreError(MlgitError):
    exit_code = 10


class StoreFull(StoreError):
    exit_code = 10


class MountError(MlgitError):
    exit_code = 11


class NotFastForward(MlgitError):
    exit_code = 12


class RemoteError(MlgitError):
    exit_code = 13


class PreconditionFailed(RemoteError):
    exit_code = 13


class RemoteNotFound(RemoteError):
    exit_code = 18


class RemoteDenied(RemoteError):
    exit_code = 19


class RemoteUnreachable(RemoteError):
    exit_code = 20


class RemoteKeyMissing(RemoteError):
    """A read of a key that does not exist; ``head`` and ``get_with_etag`` return None instead."""

    exit_code = 21

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


class ConflictError(MlgitError):
    exit_code = 14


class RemoteGcRunning(ConflictError):
    """Another remote gc holds the remote's lease (`gc/lease`): nothing was changed."""


class MergeConflict(MlgitError):
    """A merge left conflicts (listed in `conflicts`, model/conflicts.py): nothing changed."""

    exit_code = 23

    def __init__(self, message: str, conflicts: Sequence[Conflict] = ()) -> None:
        super().__init__(message)
        self.conflicts = tuple(conflicts)


class UnmergedPaths(MlgitError):
    """A writable mount's merge still has conflicted paths: commit waits for `resolve`."""

    exit_code = 27


class PolicyError(MlgitError):
    exit_code = 15


class DaemonError(MlgitError):
    exit_code = 16


class ProtocolError(DaemonError):
    """A control message that does not decode to its op's request or reply type."""

    exit_code = 16


class UnsafeOperation(MlgitError):
    exit_code = 22


class TableError(MlgitError):
    """A table the row-level merge (strategy ``rows``) refuses; nothing is changed."""

    exit_code = 30


class TableParseError(TableError):
    exit_code = 31


class DuplicateKey(TableError):
    exit_code = 32


class MissingKeyColumn(TableError):
    exit_code = 33


class HookRefused(MlgitError):
    """A pre-commit, pre-merge or pre-push hook or built-in check failed, timed out or
    crashed on the candidate: the operation was refused and nothing changed."""

    exit_code = 34

    def __init__(self, message: str, hook: str = "", event: str = "", output: str = "") -> None:
        super().__init__(message)
        self.hook = hook
        self.event = event
        self.output = output


class BranchProtected(PolicyError):
    """A direct commit, import, revert, cherry-pick, merge or push that would move a
    protected branch other than by promotion: refused, nothing changed."""

    exit_code = 36

    def __init__(self, message: str, rule: str = "") -> None:
        super().__init__(message)
        self.rule = rule


class VerificationFailed(MlgitError):
    """A signed statement (model/statement.py) that does not hold for the commit it is
    attached to: about another commit, or a body that does not describe it."""

    exit_code = 38


class SignatureInvalid(VerificationFailed):
    """A signature that is not its named signer's signature of the statement (altered
    subject, kind, body or signer, or a forged signature)."""

    exit_code = 39


class UnknownKey(VerificationFailed):
    """A statement signed by a key the key ring (or the trust given) does not know."""

    exit_code = 40


class Unsigned(VerificationFailed):
    """A commit, or a ref move on a remote, that carries no signature where one is needed."""

    exit_code = 41


class PolicyRollback(VerificationFailed):
    """A remote's access policy older than the version trusted here (a replay), another
    version of the same number (a fork), or gone (docs/governance.md, "The policy object")."""

    exit_code = 42


class PolicyUnauthorized(VerificationFailed):
    """An access policy version not signed by an admin of the version before it (or by the
    pinned key), or not chained to it."""

    exit_code = 43


class TrustViolation(VerificationFailed):
    """History that breaks the trust policy: an unsigned or unknown-key commit on a
    protected branch, or a ref moved by a key without the role."""

    exit_code = 44


class AttestationMoved(VerificationFailed):
    """An attestation attached to a commit it is not about (copied onto another commit)."""

    exit_code = 45


class AttestationTreeMismatch(VerificationFailed):
    """An attestation whose body names a tree other than its commit's."""

    exit_code = 46


class SignerLacksRole(VerificationFailed):
    """A valid signature whose signer does not hold, in the trust policy in force, the role
    its statement needs (an attestation, or a commit on a branch with `signed_by`)."""

    exit_code = 47


def all_error_classes() -> list[type[MlgitError]]:
    """Every class of the hierarchy, for the exit-code table and its test."""
    out: list[type[MlgitError]] = []
    todo: list[type[MlgitError]] = [MlgitError]
    while todo:
        cls = todo.pop(0)
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


class FsError(MlgitError):
    """A filesystem answer for the FUSE adapter: carries the errno the kernel should see."""

    def __init__(self, errno_: int, message: str = "") -> None:
        import os

        super().__init__(message or os.strerror(errno_))
        self.errno = errno_
