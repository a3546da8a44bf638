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
