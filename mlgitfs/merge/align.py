"""Where two versions of a text table differ, found at memcmp speed: the hunks of records.

A labels file of a million rows relabelled at 1% differs in ten thousand short places. The
common runs between them are skipped by comparing large slices (C memcmp), and only the
records in a hunk are ever split into Python objects, so the cost follows the bytes compared
and the changes, not the rows. Any alignment is correct for the row merge (it matches rows
by key, not by position); a good one only keeps the hunks small.

Records end at a newline. With ``quoted`` set, a newline inside a quoted field does not end
one: a line starts a record when the quote characters before it are even in number (as in
RFC 4180, where a field's own quotes are doubled).
"""

from __future__ import annotations

Hunk = tuple[int, int, int, int]  # a[start:end] was replaced by b[start:end], record bounds

_FIRST_STEP = 4096
_MAX_STEP = 1 << 20
_WINDOW = 8  # records on each side searched for a resynchronising record, then x4


def common_prefix(a: bytes, i: int, b: bytes, j: int) -> int:
    """Length of the common prefix of ``a[i:]`` and ``b[j:]``."""
    n = min(len(a) - i, len(b) - j)
    k = 0
    step = _FIRST_STEP
    while k < n:
        m = min(step, n - k)
        x = a[i + k : i + k + m]
        y = b[j + k : j + k + m]
        if x == y:
            k += m
            step = min(step * 2, _MAX_STEP)
            continue
        while m > 256:  # narrow the block by halves before the big-int compare
            h = m // 2
            if x[:h] == y[:h]:
                k += h
                x, y = x[h:], y[h:]
                m -= h
            else:
                x, y = x[:h], y[:h]
                m = h
        diff = int.from_bytes(x, "big") ^ int.from_bytes(y, "big")
        return k + m - (diff.bit_length() + 7) // 8
    return k


def record_end(data: bytes, start: int, quoted: bool) -> int:
    """The end (after its newline) of the record that starts at ``start``."""
    n = len(data)
    end = data.find(b"\n", start)
    end = n if end < 0 else end + 1
    if quoted:
        while end < n and data.count(b'"', start, end) % 2:
            nxt = data.find(b"\n", end)
            end = n if nxt < 0 else nxt + 1
    return end


def record_starts(data: bytes, start: int, end: int, quoted: bool) -> list[int]:
    """The starts of the records in ``data[start:end]`` (``start`` is a record start)."""
    out = []
    while start < end:
        out.append(start)
        start = record_end(data, start, quoted)
    return out


def _record_start_before(data: bytes, floor: int, pos: int, quoted: bool) -> int:
    """The start of the record holding ``pos``, no earlier than ``floor`` (a record start)."""
    start = data.rfind(b"\n", floor, pos) + 1 or floor
    start = max(start, floor)
    if quoted:
        while start > floor and data.count(b'"', floor, start) % 2:
            start = data.rfind(b"\n", floor, start - 1) + 1 or floor
            start = max(start, floor)
    return start


def _window(data: bytes, start: int, count: int, quoted: bool) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    n = len(data)
    while start < n and len(out) < count:
        end = record_end(data, start, quoted)
        out.append((start, data[start:end]))
        start = end
    return out


def _resync(a: bytes, hb: int, b: bytes, hs: int, quoted: bool) -> tuple[int, int]:
    """Record starts after (hb, hs) from which the two sides agree again (or both ends)."""
    if hb == len(a) or hs == len(b):  # rows appended or cut off at the end
        return len(a), len(b)
    eb = record_end(a, hb, quoted)
    es = record_end(b, hs, quoted)
    if eb == len(a) and es == len(b):
        return eb, es
    # the usual change: one record replaced by one record
    if eb < len(a) and es < len(b):
        nb = record_end(a, eb, quoted)
        if a[eb:nb] == b[es : es + (nb - eb)]:
            return eb, es
    count = _WINDOW
    while True:
        wa = _window(a, hb, count, quoted)
        wb = _window(b, hs, count, quoted)
        first: dict[bytes, int] = {}
        for pos, rec in wa:
            first.setdefault(rec, pos)
        for pos, rec in wb:
            at = first.get(rec)
            if at is not None and (at, pos) != (hb, hs):
                return at, pos
        a_done = len(wa) < count
        b_done = len(wb) < count
        if a_done and b_done:
            return len(a), len(b)
        count *= 4


def hunks(a: bytes, a0: int, b: bytes, b0: int, quoted: bool) -> list[Hunk]:
    """The hunks that turn ``a[a0:]`` into ``b[b0:]``; both offsets are record starts."""
    out: list[Hunk] = []
    i, j = a0, b0
    na, nb = len(a), len(b)
    while True:
        k = common_prefix(a, i, b, j)
        if i + k == na and j + k == nb:
            return out
        hb = _record_start_before(a, i, i + k, quoted)
        hs = j + (hb - i)
        ea, eb = _resync(a, hb, b, hs, quoted)
        out.append((hb, ea, hs, eb))
        i, j = ea, eb


Sync = tuple[int, int]  # a position of a and one of b followed by the same records
_ANCHOR_WINDOWS = (1 << 16, 1 << 22)  # bytes either side of the estimate, then the whole file
_ANCHOR_TRIES = 16  # records walked back from a range's start to find one b still has


def _is_record_start(data: bytes, floor: int, pos: int, quoted: bool) -> bool:
    if pos != floor and data[pos - 1 : pos] != b"\n":
        return False
    return not quoted or data.count(b'"', floor, pos) % 2 == 0


def _anchor(
    a: bytes, a_floor: int, b: bytes, b_floor: int, start: int, drift: int, quoted: bool
) -> Sync | None:
    """A record start at or before ``a``'s ``start`` and where b has the same record boundary:
    the record just before it, found in b near ``start + drift`` (walking back over records
    that b changed). None when b holds none of the records tried."""
    for window in (*_ANCHOR_WINDOWS, len(b)):
        cur = start
        for _ in range(_ANCHOR_TRIES):
            if cur <= a_floor:
                return a_floor, b_floor
            prev = _record_start_before(a, a_floor, cur - 1, quoted)
            needle = a[prev:cur]
            est = cur + drift
            lo = max(b_floor, est - window - len(needle))
            hi = min(len(b), est + window)
            at = b.find(needle, lo, hi)
            while at >= 0 and not _is_record_start(b, b_floor, at, quoted):
                at = b.find(needle, at + 1, hi)
            if at >= 0:
                return cur, at + len(needle)
            cur = prev
    return None


def hunks_near(
    a: bytes, a0: int, b: bytes, b0: int, ranges: list[tuple[int, int]], quoted: bool
) -> tuple[list[Hunk], list[Sync]] | None:
    """The hunks between a and b within (and around) the given ranges of a only, each range
    reached by an anchor record instead of aligning everything before it: the cost follows
    the ranges, not how much else b changed. Also the sync points, in order, from which a
    position of a inside a range maps to b. None when a range cannot be anchored."""
    out: list[Hunk] = []
    sync: list[Sync] = [(a0, b0)]
    i, j = a0, b0  # synced
    for start, end in sorted(ranges):
        if start - i > _FIRST_STEP:
            found = _anchor(a, i, b, j, start, j - i, quoted)
            if found is None:
                return None
            i, j = found
            sync.append(found)
        while i < end:
            k = common_prefix(a, i, b, j)
            if i + k >= end:  # b has a's records up to the range's end: nothing to see
                break
            hb = _record_start_before(a, i, i + k, quoted)
            hs = j + (hb - i)
            ea, eb = _resync(a, hb, b, hs, quoted)
            out.append((hb, ea, hs, eb))
            i, j = ea, eb
            sync.append((i, j))
    return out, sync
