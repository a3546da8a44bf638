"""JSON Lines tables: one JSON object a line, its fields the row's columns.

A cell is its value's canonical JSON text (sorted keys, no spaces), so ``1`` and ``1.0`` or
``true`` stay different values and nested values compare whole. Rows carry their own fields:
a field missing from a row is an absent cell. New and merged lines are written with ours'
separators (``", "``/``": "`` or compact, as ours' first line) and escape non-ASCII text
only when ours is all ASCII.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from mlgitfs.errors import TableParseError
from mlgitfs.merge.table import ABSENT, Cell, Row
from mlgitfs.merge.text import TextCodec, TextTable

_INT = re.compile(r"-?\d+")


@dataclass(frozen=True, slots=True)
class JsonDialect:
    item: str  # between fields: ", " or ","
    key: str  # between a field's name and value: ": " or ":"
    ascii: bool  # escape non-ASCII characters


def canonical(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


class JsonlCodec(TextCodec):
    name = "jsonl"

    def read_header(
        self, data: bytes, start: int, work_encoding: str, side: str, path: str
    ) -> tuple[int, tuple[str, ...] | None, object]:
        end = data.find(b"\n", start)
        first = data[start : len(data) if end < 0 else end]
        spaced = b'": ' in first or b', "' in first or not first
        ascii_only = data.isascii()
        return (
            start,
            None,
            JsonDialect(", " if spaced else ",", ": " if spaced else ":", ascii_only),
        )

    def parse(self, table: TextTable, texts: list[str], refs: list[int]) -> list[Row]:
        rows: list[Row] = []
        for text, ref in zip(texts, refs, strict=True):
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise TableParseError(
                    f"{table.path} ({table.side}): {self.where(table, ref)} is not JSON: {exc}"
                ) from exc
            if not isinstance(value, dict):
                raise TableParseError(
                    f"{table.path} ({table.side}): {self.where(table, ref)} is not a JSON object"
                )
            rows.append({k: canonical(v) for k, v in value.items()})
        return rows

    def format_row(self, table: TextTable, columns: tuple[str, ...] | None, row: Row) -> str:
        d = table.dialect
        assert isinstance(d, JsonDialect)
        sep = (d.item, d.key)
        parts = [
            json.dumps(k, ensure_ascii=d.ascii)
            + d.key
            + json.dumps(json.loads(str(v)), ensure_ascii=d.ascii, separators=sep)
            for k, v in row.items()
            if v is not ABSENT
        ]
        return "{" + d.item.join(parts) + "}"

    def format_header(self, table: TextTable, columns: tuple[str, ...]) -> str:
        raise AssertionError("JSON Lines has no header")

    def needle(self, table: TextTable, cell: Cell) -> bytes | None:
        text = str(cell)
        if _INT.fullmatch(text):
            return text.encode()
        d = table.dialect
        assert isinstance(d, JsonDialect)
        # a string's raw bytes are in its line unless some line escapes characters
        if text.startswith('"') and b"\\" not in table.data and (text.isascii() or not d.ascii):
            return text[1:-1].encode(table.work_encoding, "replace") or None
        return None
