"""Every LMDB database of a store, named once: the schema's one home.

Modules outside `mlgitfs/meta/` reach a database through the typed accessors of `meta/`
(db.py, checkouts.py, chunks.py, statcache.py, roots.py) or, for the remote records whose
values are pack types of `store/`, through these constants; none spells a name as a string
(tests/test_schema.py fails on one). Keys and values:

| database | key | value | accessors |
|---|---|---|---|
| objects | object id | canonical bytes (manifest, tree, tree index, commit) | db.py |
| chunks | chunk id | location in the chunk cache (store/cache.py's Location) | chunks.py |
| pins | chunk id | b"" while the chunk is on no remote (never evicted) | chunks.py |
| repos | repo name | repo record | db.py |
| refs | repo NUL refname | commit id | db.py |
| reflog | repo NUL refname NUL time_ns | old, new, why, who | reflog.py |
| generations | commit id | generation number, 8 bytes big-endian | db.py |
| commit_graph | commit id | time, parents, tree, changed-path filter | commitgraph.py |
| changed_paths | commit id | the filter's keys exactly: changed paths and dirs | commitgraph.py |
| config | key | msgpack value: format, chunker, counters, cache budget | db.py |
| remotes | remote name | remote record | store/remotedb.py |
| remote_packs | remote NUL kind NUL pack id | entry count (indexes read) | store/remotedb.py |
| remote_locs | kind letter + id + remote name | pack location | store/remotedb.py |
| statcache | directory NUL name | stat and object of the last import | statcache.py |
| checkouts | repo NUL branch | checkout record | checkouts.py |
| inodes | checkout id + letter + ... | inode tables of checkouts | checkouts.py |
| retention | repo name | the repo's retention rules (model/retention.py) | retention.py |
| expired | commit id | expiry record: when, and the rule it fell out of | retention.py |
| hook_results | hook digest + tree id | cached verdict of a hook or check (JSON) | hookresults.py |
| chunk_quotes | chunk id | 1 byte: an odd count of `"` in the chunk or not | chunkquotes.py |
| merges | checkout id | a writable mount's merge in progress, conflicts | mergestate.py |
| recordings | recording name | read set of a recorded run (model/readset.py) | readsets.py |
| readsets | commit id | read set attached to that version (its files read) | readsets.py |
| erasures | sequence number (8 bytes) | erasure record: who, when, why, paths, ids | erasures.py |
| erased_chunks | chunk id | b"": held only by erased files; never fetched back | erasures.py |
| access | b"local", b"remote" NUL name, b"pin" NUL name | trust policies, pinned keys | access.py |
| statements | commit id + statement id | signed statement (model/statement.py) | statements.py |
| statement_log | sequence number (8 bytes) | commit id + statement id, by arrival | statements.py |
| statement_remotes | remote name NUL statement id | b"": that remote holds it | statements.py |
| trust_breaches | repo NUL commit id | what a fetch let through (trust = warn) | trustbreaches.py |
"""

from __future__ import annotations

OBJECTS = "objects"
CHUNKS = "chunks"
PINS = "pins"
REPOS = "repos"
REFS = "refs"
REFLOG = "reflog"
GENERATIONS = "generations"
COMMIT_GRAPH = "commit_graph"
CHANGED_PATHS = "changed_paths"
CONFIG = "config"
REMOTES = "remotes"
REMOTE_PACKS = "remote_packs"
REMOTE_LOCS = "remote_locs"
STATCACHE = "statcache"
CHECKOUTS = "checkouts"
INODES = "inodes"
RETENTION = "retention"
EXPIRED = "expired"
HOOK_RESULTS = "hook_results"
MERGES = "merges"
RECORDINGS = "recordings"
READSETS = "readsets"
ERASURES = "erasures"
ERASED_CHUNKS = "erased_chunks"
ACCESS = "access"
STATEMENTS = "statements"
STATEMENT_LOG = "statement_log"
STATEMENT_REMOTES = "statement_remotes"
CHUNK_QUOTES = "chunk_quotes"
TRUST_BREACHES = "trust_breaches"

DATABASES = (
    OBJECTS,
    CHUNKS,
    REPOS,
    REFS,
    REFLOG,
    REMOTES,
    STATCACHE,
    CHECKOUTS,
    INODES,
    CONFIG,
    PINS,
    REMOTE_PACKS,
    REMOTE_LOCS,
    GENERATIONS,
    RETENTION,
    EXPIRED,
    HOOK_RESULTS,
    COMMIT_GRAPH,
    CHANGED_PATHS,
    MERGES,
    RECORDINGS,
    READSETS,
    ERASURES,
    ERASED_CHUNKS,
    ACCESS,
    STATEMENTS,
    STATEMENT_LOG,
    STATEMENT_REMOTES,
    CHUNK_QUOTES,
    TRUST_BREACHES,
)
