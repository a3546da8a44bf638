"""Retention rules travelling with a repo: `retention/REPO` on a remote, the newer set wins.

A rule set is stamped with when and by whom it was set (model/retention.RuleSet). Push
uploads the local set when it is newer than the remote's, by compare-and-swap on the key's
ETag (a lost race re-reads and compares again); fetch, pull and clone adopt the remote's set
when it is newer than the local one. So the last `retention set` anywhere wins everywhere,
a cleared set (empty, stamped) included. The key is written after the refs of a push and
read after the refs of a fetch; neither order matters for safety, since rules name no object.

What a remote gc let go travels too: `expired/REPO` holds, for each version whose file
contents that gc deleted from the remote, when and under which rule (model/retention's
ExpiryRecord). Fetch and clone record them locally, so a read of such a version gives
VersionExpired (exit 26) naming the rule and fsck counts it as expired, not as damage.
"""

from __future__ import annotations

from mlgitfs.errors import CorruptObject, PreconditionFailed, RemoteKeyMissing
from mlgitfs.meta import retention
from mlgitfs.meta.env import WriteTxn
from mlgitfs.model import codec
from mlgitfs.model.ids import ID_LEN, ObjectId
from mlgitfs.model.names import check_repo_name
from mlgitfs.model.retention import ExpiryRecord, RuleSet
from mlgitfs.store import packs
from mlgitfs.store.facade import Store
from mlgitfs.store.remote import RemoteTransport

RETRIES = 3


def rules_key(remote_repo: str) -> str:
    return f"retention/{check_repo_name(remote_repo)}"


def read_remote(t: RemoteTransport, remote_repo: str) -> tuple[RuleSet | None, str | None]:
    """The remote's rule set of `remote_repo` with its ETag ((None, None) when it has none)."""
    key = rules_key(remote_repo)
    got = packs.get_capped_with_etag(t, key, packs.RECORD_CAP)
    if got is None:
        return None, None
    return RuleSet.decode(got[0], key), got[1]


def publish(store: Store, t: RemoteTransport, repo: str, remote_repo: str) -> bool:
    """Upload the local rule set of `repo` when it is newer than the remote's; True if it was."""
    with store.env.read() as txn:
        mine = retention.get_ruleset(txn, repo)
    if mine is None:
        return False
    key = rules_key(remote_repo)
    for _ in range(RETRIES):
        theirs, etag = read_remote(t, remote_repo)
        if not mine.newer_than(theirs):
            return False
        try:
            if etag is None:
                t.put_if_absent(key, mine.encode())
            else:
                t.put_if_match(key, mine.encode(), etag)
            return True
        except PreconditionFailed:
            continue  # someone set rules meanwhile: compare with theirs again
    return False


def adopt(txn: WriteTxn, repo: str, theirs: RuleSet | None) -> bool:
    """Take the remote's rule set when it is newer than the local one; True if taken."""
    if theirs is None or not theirs.newer_than(retention.get_ruleset(txn, repo)):
        return False
    retention.put_ruleset(txn, repo, theirs)
    return True


EXPIRED_CAP = 256 << 20


def expired_key(remote_repo: str) -> str:
    return f"expired/{check_repo_name(remote_repo)}"


def read_expired(t: RemoteTransport, remote_repo: str) -> dict[bytes, ExpiryRecord]:
    """The versions of `remote_repo` whose contents a remote gc let go ({} when none)."""
    key = expired_key(remote_repo)
    try:
        data = packs.get_capped(t, key, EXPIRED_CAP)
    except RemoteKeyMissing:
        return {}
    try:
        version, items = codec.unpack(data, key)
        out = {bytes(c): ExpiryRecord(int(n), str(why)) for c, n, why in items}
    except (TypeError, ValueError) as exc:
        raise CorruptObject(key, "malformed list of expired versions") from exc
    if version != 1 or any(len(c) != ID_LEN for c in out):
        raise CorruptObject(key, "malformed list of expired versions")
    return out


def publish_expired(
    t: RemoteTransport, remote_repo: str, records: dict[bytes, ExpiryRecord]
) -> None:
    """Add `records` to the remote's list (written by the gc holding the lease only)."""
    merged = read_expired(t, remote_repo)
    for c, r in records.items():
        merged.setdefault(c, r)
    items = [[c, r.time_ns, r.reason] for c, r in sorted(merged.items())]
    t.put(expired_key(remote_repo), codec.pack([1, items]))


def adopt_expired(txn: WriteTxn, records: dict[bytes, ExpiryRecord]) -> None:
    for c, r in records.items():
        if retention.get_expired(txn, ObjectId(c)) is None:
            retention.record_expired(txn, ObjectId(c), r)
