"""Retention: what a policy keeps of a history (against a plain reference written
differently), and which commits of a store have expired (refs, tags, reflog, checkouts)."""

from __future__ import annotations

import calendar
import datetime as dt
import fnmatch
import json
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlgitfs import api
from mlgitfs.errors import CorruptObject, UsageError
from mlgitfs.meta import reflog, retention, roots
from mlgitfs.model.ids import ObjectId
from mlgitfs.model.retention import (
    UNLIMITED,
    Duration,
    Policy,
    Rule,
    RuleSet,
    rule_for,
)
from mlgitfs.repo.expiry import decide, expired_commits, expiry
from mlgitfs.repo.retention import cutoff_ns, keep
from tests.conftest import Cli
from tests.test_sync import Remote, remote

__all__ = ["remote"]

S = 1_000_000_000
DAY = 86400 * S
NOW = 1_780_000_000 * S  # a fixed clock: 2026-05-28


# --- the reference: periods grouped in dicts, calendar subtraction by hand ------------------


def _ref_cutoff(now_ns: int, d: Duration) -> int:
    t = dt.datetime.fromtimestamp(now_ns // S, dt.UTC)
    year, month = t.year - d.years, t.month - d.months
    while month < 1:
        month += 12
        year -= 1
    if year < 1:
        return -(1 << 63)
    # Go's AddDate keeps the day number and lets it overflow into the next month
    extra_days = t.day - d.days
    secs = calendar.timegm((year, month, 1, t.hour, t.minute, t.second, 0, 0, 0))
    secs += (extra_days - 1) * 86400 - d.hours * 3600
    return secs * S + now_ns % S


def _period(name: str, time_ns: int, oid: bytes) -> object:
    t = dt.datetime.fromtimestamp(time_ns // S, dt.UTC)
    if name == "last":
        return (time_ns, oid)
    if name == "weekly":
        iso = t.isocalendar()
        return (iso[0], iso[1])
    return t.strftime({"hourly": "%Y%m%d%H", "daily": "%Y%m%d", "monthly": "%Y%m",
                       "yearly": "%Y"}[name])  # fmt: skip


def _reference(history: list[tuple[ObjectId, int]], policy: Policy, now_ns: int) -> set[bytes]:
    commits = set(history)
    kept: set[bytes] = set()
    if policy.within is not None:
        cut = _ref_cutoff(now_ns, policy.within)
        kept |= {oid for oid, t in commits if t > cut}
    oldest = min(commits, key=lambda c: (c[1], c[0]), default=None)
    for name, n in policy.counts().items():
        if n == 0:
            continue
        groups: dict[object, list[tuple[ObjectId, int]]] = {}
        for oid, t in commits:
            groups.setdefault(_period(name, t, oid), []).append((oid, t))
        newest_first = sorted(groups.values(), key=lambda g: max((t, o) for o, t in g),
                              reverse=True)  # fmt: skip
        chosen = newest_first if n == UNLIMITED else newest_first[:n]
        kept |= {max(g, key=lambda c: (c[1], c[0]))[0] for g in chosen}
        if oldest is not None:
            before = {_period(name, t, o) for o, t in commits if (o, t) != oldest}
            if n == UNLIMITED or len(before) < n:
                kept.add(oldest[0])
    return kept


_counts = st.sampled_from([0, 0, 1, 2, 3, 7, UNLIMITED])
_policies = st.builds(
    Policy,
    last=_counts,
    hourly=_counts,
    daily=_counts,
    weekly=_counts,
    monthly=_counts,
    yearly=_counts,
    within=st.none()
    | st.builds(
        Duration, st.integers(0, 2), st.integers(0, 14), st.integers(0, 40), st.integers(0, 50)
    ),  # fmt: skip
)
# minutes over the three years before NOW (and a day after: a clock ahead), and a few
# fixed times so that equal times and shared periods are common
_times = st.integers(-3 * 365 * 24 * 60, 24 * 60).map(lambda m: NOW + m * 60 * S)
_histories = st.lists(
    st.tuples(st.integers(0, 40).map(lambda i: ObjectId(bytes([i]) * 32)),
              st.one_of(_times, st.sampled_from([NOW - DAY, NOW - 2 * DAY, NOW - 40 * DAY]))),
    max_size=40,
    unique_by=lambda c: c[0],
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(history=_histories, policy=_policies)
def test_keep_matches_the_reference(history: list[tuple[ObjectId, int]], policy: Policy) -> None:
    assert set(keep(history, policy, NOW)) == _reference(history, policy, NOW)


@settings(max_examples=200, deadline=None)
@given(now=st.integers(0, 4_000_000_000).map(lambda s: s * S + 123),
       d=st.builds(Duration, st.integers(0, 30), st.integers(0, 40), st.integers(0, 400),
                   st.integers(0, 100)))  # fmt: skip
def test_cutoff_matches_the_reference(now: int, d: Duration) -> None:
    assert cutoff_ns(now, d) == _ref_cutoff(now, d)


def _at(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()) * S


def _c(i: int) -> ObjectId:
    return ObjectId(bytes([i]) * 32)


def test_restic_meanings_on_a_known_history() -> None:
    h = [(_c(1), _at("2026-01-01T10:00")), (_c(2), _at("2026-01-01T18:00")),
         (_c(3), _at("2026-01-02T09:00")), (_c(4), _at("2026-01-05T09:00")),
         (_c(5), _at("2026-02-10T09:00"))]  # fmt: skip
    now = _at("2026-02-11T00:00")
    assert set(keep(h, Policy(last=2), now)) == {_c(5), _c(4)}
    # the newest of each of the 2 newest days, not the 2 newest commits of a day
    assert set(keep(h, Policy(daily=3), now)) == {_c(5), _c(4), _c(3)}
    # counts not used up: the oldest commit is kept too (restic >= 0.17)
    assert set(keep(h, Policy(daily=9), now)) == {_c(5), _c(4), _c(3), _c(2), _c(1)}
    assert set(keep(h, Policy(monthly=5), now)) == {_c(5), _c(4), _c(1)}
    # 2026-01-02 and 01-05 are ISO weeks 1 and 2
    assert set(keep(h, Policy(weekly=2), now)) == {_c(5), _c(4)}
    assert set(keep(h, Policy(within=Duration(days=37)), now)) == {_c(5), _c(4)}
    assert keep(h, Policy(last=1, daily=1), now) == {_c(5): ["last", "daily"]}
    # Go's AddDate: 2026-03-31 minus one month is 2026-03-03
    assert cutoff_ns(_at("2026-03-31T00:00"), Duration(months=1)) == _at("2026-03-03T00:00")


def test_policy_encoding_round_trips_and_refuses_damage() -> None:
    rules = (Rule("*", Policy(last=3, within=Duration(1, 2, 3, 4), keep_tags=False)),
             Rule("main", Policy(daily=UNLIMITED)))  # fmt: skip
    ruleset = RuleSet(rules, 5, "bob@lab")
    assert RuleSet.decode(ruleset.encode(), "r") == ruleset
    assert RuleSet(rules, 6, "a").newer_than(ruleset) and not ruleset.newer_than(ruleset)
    with pytest.raises(CorruptObject):
        RuleSet.decode(b"\x93\x01", "r")
    with pytest.raises(CorruptObject):
        RuleSet.decode(RuleSet((Rule("a b"),), 1, "").encode(), "r")
    with pytest.raises(UsageError):
        Duration.parse("3 weeks")
    assert str(Duration.parse("1y2m3d4h")) == "1y2m3d4h"
    assert rule_for(rules, "main") == rules[1]
    assert rule_for(rules, "dev") == rules[0]
    assert rule_for((Rule("feature/*"), Rule("*")), "feature/x").pattern == "feature/*"
    assert rule_for((Rule("feature/*"),), "main") is None


# --- a store: which commits expire, and reflog entries past their expiry ---------------------


def _history(home: Path, src: Path, n: int) -> None:
    api.init(home, "ds", "dataset", "mutable")
    for i in range(n):
        (src / "f.txt").write_text(f"version {i}\n")
        api.import_dir(home, "ds", src, f"v{i}")


def test_expired_commits_follow_rules_tags_reflog_and_heads(tmp_path: Path) -> None:
    home, src = tmp_path / "home", tmp_path / "src"
    src.mkdir()
    _history(home, src, 5)
    store = api.open_store(home)
    log = [ObjectId(bytes.fromhex(c.id)) for c in api.log(home, "ds")]  # newest first
    later = NOW + 400 * DAY  # past every reflog entry's expiry
    with store.env.read() as txn:
        assert expired_commits(txn, later) == frozenset()  # no rules: nothing expires
    with store.env.write() as txn:
        retention.set_rules(txn, "ds", (Rule("*", Policy(last=2)),))
    api.tag_create(home, "ds@v1", f"ds@{log[3].hex()}")
    with store.env.read() as txn:
        # commits are in the live reflog (each moved main): the reflog's window holds them
        assert expired_commits(txn, NOW) == frozenset()
        gone = expiry(txn, later)
        assert {e.commit for e in gone} == {log[2], log[4]}  # log[3] is tagged
        assert all(e.reason == "retention of ds@* (keep-last 2, tags kept)" for e in gone)
    with store.env.write() as txn:
        retention.set_rules(txn, "ds", (Rule("*", Policy(last=2, keep_tags=False)),))
        reflog.set_expiry_s(txn, 0)
    with store.env.read() as txn:
        assert expired_commits(txn, time.time_ns() + S) == {log[2], log[3], log[4]}
        # a ref's head never expires, whatever the rule
        retention_only_head = expiry(txn, later)
        assert log[0] not in {e.commit for e in retention_only_head}


def test_reflog_entries_stop_being_roots_after_the_expiry(tmp_path: Path) -> None:
    home, src = tmp_path / "home", tmp_path / "src"
    src.mkdir()
    _history(home, src, 2)
    api.branch_create(home, "ds@dev")
    (src / "g.txt").write_text("dev only\n")
    api.import_dir(home, "ds@dev", src, "dev work")
    dev_head = ObjectId(bytes.fromhex(api.log(home, "ds@dev")[0].id))
    api.branch_delete(home, "ds@dev", force=True)
    store = api.open_store(home)
    with store.env.read() as txn:
        r = roots.gc_roots(txn)
        assert dev_head in r.reflog_commits and dev_head not in r.ref_commits
        e = [x for x in reflog.entries(txn, "ds", "heads/dev")]
        assert [x.why for x in e] == ["create heads/dev", "commit: dev work", "delete heads/dev"]
        assert [x.time_ns for x in e] == sorted({x.time_ns for x in e})
        assert e[-1].old == dev_head and e[-1].new is None and e[-1].who
        assert reflog.expiry_s(txn) == 30 * 86400
        at_expiry = e[-1].time_ns + 30 * 86400 * S
        assert dev_head in roots.gc_roots(txn, at_expiry).reflog_commits
        assert dev_head not in roots.gc_roots(txn, at_expiry + 1).reflog_commits
    with store.env.write() as txn:
        reflog.set_expiry_s(txn, 3600)
    with store.env.read() as txn:
        assert dev_head not in roots.gc_roots(txn, e[-1].time_ns + 3601 * S).reflog_commits
    with store.env.write() as txn:
        assert reflog.prune(txn, e[-1].time_ns + 3601 * S) >= 3
    with store.env.read() as txn:
        assert list(reflog.entries(txn, "ds", "heads/dev")) == []


# --- the CLI: retention show|set, and rules travelling with the repo -----------------------


def _cli_history(cli: Cli, src: Path, n: int) -> None:
    cli("init", "ds", "--kind", "dataset", "--mutability", "mutable")
    for i in range(n):
        (src / "f.txt").write_text(f"version {i}\n")
        cli("import", "ds", str(src), "-m", f"v{i}")


def test_retention_set_show_and_refusals(cli: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _cli_history(cli, src, 4)
    empty = json.loads(cli("retention", "show", "ds", "--json").stdout)
    assert empty == {"repo": "ds", "rules": [], "set_ns": 0, "who": "", "expiring": []}
    assert "no retention policy" in cli("retention", "show", "ds").stdout
    for args, code in [
        ((), 2),
        (("--keep-last", "many"), 2),
        (("--keep-last", "-3"), 2),
        (("--keep-within", "3 weeks"), 2),
        (("--keep-last", "1", "--clear"), 2),
        (("--clear",), 2),  # no policy for * yet
    ]:
        cli("retention", "set", "ds", *args, code=code)
    cli("retention", "set", "ds@a b", "--keep-last", "1", code=2)
    cli("retention", "set", "nope", "--keep-last", "1", code=3)
    cli("retention", "show", "ds@main", code=2)
    assert json.loads(cli("retention", "show", "ds", "--json").stdout) == empty  # unchanged
    cli("retention", "set", "ds", "--keep-last", "2", "--keep-within", "30d")
    out = cli("retention", "set", "ds@release/*", "--keep-monthly", "unlimited",
              "--no-keep-tags", "--json")  # fmt: skip
    shown = json.loads(out.stdout)
    assert [(r["pattern"], r["description"]) for r in shown["rules"]] == [
        ("*", "keep-last 2, keep-within 30d, tags kept"),
        ("release/*", "keep-monthly unlimited, tags not kept"),
    ]
    assert shown["rules"][1]["monthly"] == -1 and shown["who"] and shown["set_ns"] > 0
    # every commit is within 30d and in the reflog's window: nothing expires
    assert shown["expiring"] == []
    cli("retention", "set", "ds", "--keep-last", "2")
    cli("config", "reflog-expiry", "0")
    shown = json.loads(cli("retention", "show", "ds", "--json").stdout)
    log = json.loads(cli("log", "ds", "--json").stdout)
    assert [e["commit"] for e in shown["expiring"]] == [log[3]["id"], log[2]["id"]]
    assert shown["expiring"][0]["reason"] == "retention of ds@* (keep-last 2, tags kept)"
    text = cli("retention", "show", "ds").stdout
    assert f"expiring\t{log[3]['id'][:12]}\tretention of ds@*" in text
    cli("retention", "set", "ds@release/*", "--clear")
    assert len(json.loads(cli("retention", "show", "ds", "--json").stdout)["rules"]) == 1


def test_retention_rules_travel_with_push_fetch_and_clone(
    cli: Cli, remote: Remote, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _cli_history(cli, src, 2)
    cli("remote", "add", "origin", remote.url, *remote.add_args())
    cli("push", "ds")
    assert "retention/ds" not in remote.remote_keys()  # no rules: nothing to send
    cli("retention", "set", "ds", "--keep-daily", "7")
    cli("push", "ds")  # up to date refs: the rules go anyway
    assert "retention/ds" in remote.remote_keys()
    other = Cli(tmp_path / "other")
    other("clone", remote.url, "ds", "copy", *remote.add_args())
    rules = json.loads(other("retention", "show", "copy", "--json").stdout)["rules"]
    assert [(r["pattern"], r["daily"]) for r in rules] == [("*", 7)]
    # the last set wins: the clone's newer rules reach the first store by fetch
    other("retention", "set", "copy@main", "--keep-last", "3")
    other("push", "copy")
    cli("fetch", "ds")
    rules = json.loads(cli("retention", "show", "ds", "--json").stdout)["rules"]
    assert [(r["pattern"], r["last"], r["daily"]) for r in rules] == [("*", 0, 7), ("main", 3, 0)]
    # an older set never overwrites a newer one: the first store's stale push changes nothing
    cli("retention", "set", "ds", "--keep-daily", "1")  # newer than the remote's
    other("retention", "set", "copy", "--keep-daily", "2")  # newer still, not pushed yet
    other("push", "copy")
    cli("push", "ds")  # ours is older now: not uploaded
    other("fetch", "copy")
    rules = json.loads(other("retention", "show", "copy", "--json").stdout)["rules"]
    assert [(r["pattern"], r["daily"]) for r in rules] == [("*", 2), ("main", 0)]
    # clearing travels too
    other("retention", "set", "copy", "--clear")
    other("retention", "set", "copy@main", "--clear")
    other("push", "copy")
    cli("pull", "ds")
    assert json.loads(cli("retention", "show", "ds", "--json").stdout)["rules"] == []


# --- expiry over generated stores: commit graphs, refs of two repos, rules, held commits --


def _oid(i: int) -> ObjectId:
    return ObjectId(i.to_bytes(2, "big") * 16)


_REFS = ["heads/main", "heads/dev", "heads/feature/x", "tags/v1", "tags/feature/t",
         "remotes/origin/heads/main", "remotes/origin/tags/v1"]  # fmt: skip
_PATTERNS = ["*", "main", "feature/*", "v1"]
_small = st.sampled_from([0, 0, 0, 1, 2, 3])
_tight_policies = st.builds(
    Policy, last=_small, daily=_small, weekly=_small, monthly=_small, yearly=_small,
    within=st.none() | st.builds(Duration, days=st.integers(0, 60)), keep_tags=st.booleans(),
)  # fmt: skip


@st.composite
def _stores(draw: st.DrawFn) -> tuple[dict[int, tuple[tuple[int, ...], int] | None],
                                      list[tuple[str, str, int]], dict[str, tuple[Rule, ...]],
                                      set[int]]:  # fmt: skip
    n = draw(st.integers(1, 30))
    graph: dict[int, tuple[tuple[int, ...], int] | None] = {}
    for i in range(n):
        # mostly a line (long histories), with merges and new roots now and then
        extra = draw(st.lists(st.integers(0, i - 1), max_size=1)) if i else []
        first = [] if i == 0 or draw(st.integers(0, 9)) == 0 else [i - 1]
        parents = list(dict.fromkeys(first + extra))
        missing = draw(st.integers(0, 19)) == 0  # beyond a partial fetch
        graph[i] = None if missing else (tuple(parents), draw(_times))
    refs = draw(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(_REFS),
                                   st.integers(0, n - 1)),
                         min_size=1, max_size=6, unique_by=lambda r: (r[0], r[1])))  # fmt: skip
    rules = {
        repo: tuple(draw(st.lists(st.builds(Rule, st.sampled_from(_PATTERNS), _tight_policies),
                                  min_size=repo == "a", max_size=3,
                                  unique_by=lambda r: r.pattern)))
        for repo in ("a", "b")
    }  # fmt: skip
    held = set(draw(st.lists(st.integers(0, n - 1), max_size=3)))
    return graph, refs, rules, held


def _reference_expiry(graph: dict[int, tuple[tuple[int, ...], int] | None],
                      refs: list[tuple[str, str, int]], rules: dict[str, tuple[Rule, ...]],
                      held: set[int]) -> set[int]:  # fmt: skip
    def reach(head: int) -> set[int]:
        found = {head} if graph[head] is not None else set()
        while True:
            more = {p for c in found for p in graph[c][0] if graph[p] is not None} - found  # type: ignore[index]
            if not more:
                return found
            found |= more

    kept: set[int] = set()
    governed: set[int] = set()
    for repo, ref, head in refs:
        parts = ref.split("/")
        if parts[0] == "remotes":
            parts = parts[2:]
        kind, name = parts[0], "/".join(parts[1:])
        if kind == "heads":
            kept.add(head)
        exact = [r for r in rules[repo] if r.pattern == name]
        globs = [r for r in rules[repo] if fnmatch.fnmatchcase(name, r.pattern)]
        longest = max((len(r.pattern) for r in globs), default=0)
        rule = (exact or [r for r in globs if len(r.pattern) == longest] or [None])[0]
        if rule is None:
            kept |= reach(head)
        elif kind == "tags":
            if rule.policy.keep_tags:
                kept.add(head)
            elif graph[head] is not None:
                governed.add(head)
        else:
            line = reach(head)
            governed |= line
            history = [(_oid(c), graph[c][1]) for c in line]  # type: ignore[index]
            kept |= {c for c in line if _oid(c) in _reference(history, rule.policy, NOW)}
    return governed - kept - held


@settings(max_examples=200, deadline=None)
@given(store=_stores())
def test_expiry_of_generated_stores_matches_the_reference(
    store: tuple[dict[int, tuple[tuple[int, ...], int] | None], list[tuple[str, str, int]],
                 dict[str, tuple[Rule, ...]], set[int]],
) -> None:  # fmt: skip
    graph, refs, rules, held = store
    by_oid = {_oid(i): i for i in graph}

    def load(oid: ObjectId) -> tuple[tuple[ObjectId, ...], int] | None:
        node = graph[by_oid[oid]]
        return None if node is None else (tuple(_oid(p) for p in node[0]), node[1])

    got = decide([(r, ref, _oid(h)) for r, ref, h in refs], load, rules,
                 {_oid(h) for h in held}, NOW)  # fmt: skip
    assert {by_oid[o] for o in got} == _reference_expiry(graph, refs, rules, held)
    for repo, why in got.values():
        assert why.startswith(f"retention of {repo}@")
