"""Canonical msgpack encoding of objects; the only importer of msgpack.

Objects are msgpack arrays (never maps, whose order could vary) with a type tag and the
format version first. `decode` refuses anything that does not re-encode to the same bytes,
so every object has exactly one encoding and its id is stable.
"""

from __future__ import annotations

from typing import Any

import msgpack

from mlgitfs.errors import CorruptObject

# Bounds so that a hostile object cannot ask for a huge allocation.
_LIMITS = {
    "max_bin_len": 64 << 20,
    "max_str_len": 1 << 20,
    "max_array_len": 10_000_000,
    "max_map_len": 100_000,
    "max_ext_len": 0,
}


def pack(value: Any) -> bytes:
    return bytes(msgpack.packb(value, use_bin_type=True, strict_types=False))


def unpack(data: bytes, what: str, tuples: bool = False) -> Any:
    """Strict decode of one msgpack value; `what` names the object in errors. Arrays are
    lists, or with `tuples` tuples (hashable rows, which pack back to the same bytes)."""
    try:
        value = msgpack.unpackb(
            data, raw=False, use_list=not tuples, strict_map_key=True, **_LIMITS
        )
    except (
        ValueError,
        TypeError,
        msgpack.ExtraData,
        msgpack.FormatError,
        msgpack.StackError,
    ) as exc:
        raise CorruptObject(what, f"malformed msgpack ({type(exc).__name__})") from exc
    except Exception as exc:  # msgpack raises a few other types on hostile input
        raise CorruptObject(what, f"malformed msgpack ({type(exc).__name__})") from exc
    return value


def unpack_canonical(data: bytes, what: str, tuples: bool = False) -> Any:
    value = unpack(data, what, tuples)
    if pack(value) != data:
        raise CorruptObject(what, "not in canonical encoding")
    return value
