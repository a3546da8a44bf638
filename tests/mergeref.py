"""A reference three-way merge written plainly over path → value dictionaries, and helpers that
turn such dictionaries into trees of a store and back (tests only).

Values: ("dir", mode), ("file", content, mode), ("symlink", target, 0o777). The rules are the
ones docs/merge.md states, applied path by path with no trees, pages or ids.
"""

from __future__ import annotations

from mlgitfs.model.ids import ChunkId, ObjectId, hash_bytes
from mlgitfs.model.objects import EntryKind, TreeEntry
from mlgitfs.repo.trees import NewObjects, ObjectReader, build_dir, walk
from mlgitfs.store.cache import SegmentWriter
from mlgitfs.store.facade import Store

Value = tuple[str, bytes, int] | tuple[str, int]
Flat = dict[str, Value]
DIR_MODE = 0o755


def is_dir(v: Value | None) -> bool:
    return v is not None and v[0] == "dir"


def nondir(v: Value | None) -> bool:
    return v is not None and v[0] != "dir"


def parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def under(path: str, top: str) -> bool:
    return path.startswith(top + "/")


# --- building trees ------------------------------------------------------------------------


def build(store: Store, writer: SegmentWriter, flat: Flat, out: NewObjects) -> ObjectId:
    def entries(prefix: str) -> list[TreeEntry]:
        names = sorted(
            {p[len(prefix) :].split("/")[0] for p in flat if p.startswith(prefix)}, key=str.encode
        )
        es = []
        for name in names:
            path = prefix + name
            v = flat[path]
            if v[0] == "dir":
                children = entries(path + "/")
                ref = build_dir(children, out)
                es.append(TreeEntry(name.encode(), EntryKind.DIR, v[1], len(children), 0, ref))
            elif v[0] == "file":
                data = v[1]
                assert isinstance(data, bytes)
                cid = ChunkId(hash_bytes(data))
                if not writer.pending(cid) and not store.chunks.has(cid):
                    writer.add(cid, 0, data, len(data))
                es.append(TreeEntry(name.encode(), EntryKind.FILE, v[2], len(data), 0, cid))
            else:
                target = v[1]
                assert isinstance(target, bytes)
                es.append(
                    TreeEntry(name.encode(), EntryKind.SYMLINK, 0o777, len(target), 0, target)
                )
        return es

    return build_dir(entries(""), out)


def flatten(store: Store, reader: ObjectReader, tree: ObjectId) -> Flat:
    out: Flat = {}
    for path, e in walk(reader, tree):
        p = path.decode()
        if e.is_dir:
            out[p] = ("dir", e.mode)
        elif e.kind is EntryKind.SYMLINK:
            out[p] = ("symlink", e.ref, 0o777)
        else:
            out[p] = ("file", store.read_chunk(ChunkId(e.ref)), e.mode)
    return out


# --- the reference merge -------------------------------------------------------------------


def _content(v: Value | None) -> tuple[str, bytes] | None:
    if v is None or v[0] == "dir":
        return None
    data = v[1]
    assert isinstance(data, bytes)
    return (v[0], data)


def _three(b: object, o: object, t: object) -> tuple[bool, object]:
    if o == t or b == t:
        return True, o
    if b == o:
        return True, t
    return False, o


def _renames(base: Flat, side: Flat) -> dict[str, str]:
    deleted = [p for p, v in base.items() if nondir(v) and not nondir(side.get(p))]
    added = [p for p, v in side.items() if nondir(v) and not nondir(base.get(p))]
    gone: dict[object, list[str]] = {}
    new: dict[object, list[str]] = {}
    for p in deleted:
        gone.setdefault(_content(base[p]), []).append(p)
    for p in added:
        new.setdefault(_content(side[p]), []).append(p)
    return {ps[0]: new[k][0] for k, ps in gone.items() if len(ps) == 1 and len(new.get(k, [])) == 1}


def _put(flat: Flat, path: str, value: Value) -> None:
    for a in parents(path):
        if not is_dir(flat.get(a)):
            flat[a] = ("dir", DIR_MODE)
    flat[path] = value


def reference_merge(base: Flat, ours: Flat, theirs: Flat) -> tuple[Flat, set[tuple[str, str]]]:
    """(merged, conflicts as (path, kind)); merged is meaningless when there are conflicts."""
    conflicts: set[tuple[str, str]] = set()
    sides = [ours, theirs]
    renames = [_renames(base, s) for s in sides]
    for src in renames[0].keys() & renames[1].keys():
        if renames[0][src] != renames[1][src]:
            conflicts.add((src, "rename/rename"))
    b2, s2 = dict(base), [dict(ours), dict(theirs)]
    for s in (0, 1):
        other = sides[1 - s]
        for src, dst in renames[s].items():
            changed = other.get(src)
            if not (nondir(changed) and nondir(base.get(src)) and changed != base[src]):
                continue
            if any(nondir(other.get(a)) for a in parents(dst)) or dst in other:
                continue
            del b2[src]
            _put(b2, dst, base[src])
            del s2[1 - s][src]
            assert changed is not None
            _put(s2[1 - s], dst, changed)
    BASE, OURS, THEIRS = b2, s2[0], s2[1]
    merged: dict[str, Value | None] = {}
    for p in sorted(BASE.keys() | OURS.keys() | THEIRS.keys()):
        b, o, t = BASE.get(p), OURS.get(p), THEIRS.get(p)
        if o == t or b == t:
            merged[p] = o
            continue
        if b == o:
            merged[p] = t
            continue
        od, td, bd = is_dir(o), is_dir(t), is_dir(b)
        if od and td:
            assert o is not None and t is not None
            ok, mode = _three(b[1] if b is not None and bd else None, o[1], t[1])
            if not ok:
                conflicts.add((p, "mode"))
            merged[p] = ("dir", mode)  # type: ignore[assignment]
        elif (od and t is None) or (td and o is None):
            merged[p] = None  # unless something inside survives (below)
        elif od or td:
            conflicts.add((p, "file/directory"))
            merged[p] = o
        elif o is None or t is None:
            conflicts.add((p, "modify/delete"))
            merged[p] = o
        else:
            bb = None if bd else b
            ok_c, content = _three(_content(bb), _content(o), _content(t))
            ok_m, mode = _three(bb[2] if bb is not None else None, o[2], t[2])  # type: ignore[misc]
            if not ok_c:
                if bb is None:
                    conflicts.add((p, "add/add"))
                elif o[0] == "symlink" and t[0] == "symlink":
                    conflicts.add((p, "symlink"))
                else:
                    conflicts.add((p, "modify/modify"))
            elif not ok_m:
                conflicts.add((p, "mode"))
            else:
                assert isinstance(content, tuple) and isinstance(mode, int)
                merged[p] = (content[0], content[1], mode)
    result: Flat = {p: v for p, v in merged.items() if v is not None}
    # a directory deleted on one side survives when something inside it survives, with the
    # mode of the side that kept it
    for p in list(result):
        for a in parents(p):
            if a not in result:
                keep = OURS.get(a) if is_dir(OURS.get(a)) else THEIRS.get(a)
                assert keep is not None and is_dir(keep), (p, a)
                result[a] = ("dir", keep[1])
    for p, v in result.items():
        if nondir(v) and any(under(q, p) for q in result):
            conflicts.add((p, "file/directory"))
    return result, conflicts
