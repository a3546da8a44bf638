"""The case registry and the row type every case returns.

A case is a function ``(ctx: Context) -> list[Row]`` registered with ``@case("name")``;
bench/harness.py runs it. Cases run in registration order; a new module under bench/cases/ is
imported in bench/cases/__init__.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from bench.context import Context

Direction = Literal["min", "max"]


@dataclass
class Row:
    """One measured ratio.

    ``ratio`` is always ``ours / baseline`` expressed so that the target reads naturally:
    ``direction="min"`` means the ratio must be at least ``target`` (bigger is better),
    ``direction="max"`` means it must be at most ``target`` (smaller is better).
    ``target=None`` marks an informational row. ``error`` marks a failed measurement (the
    report says ERROR, the run exits 1); ``skipped`` says why a row could not be measured here
    (a peer program missing and not installable: the report says skip).
    """

    case: str
    metric: str
    ours: float | None
    baseline: float | None
    ratio: float | None
    target: float | None = None
    direction: Direction = "min"
    unit: str = ""
    baseline_name: str = ""
    note: str = ""
    error: str | None = None
    skipped: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        if self.error is not None:
            return False
        if self.skipped is not None or self.target is None or self.ratio is None:
            return None
        if self.direction == "min":
            return self.ratio >= self.target
        return self.ratio <= self.target

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "-"
        return ("≥ " if self.direction == "min" else "≤ ") + f"{self.target:g}x"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["pass"] = self.passed
        d["target_text"] = self.target_text
        return d


CaseFn = Callable[["Context"], list[Row]]


@dataclass(frozen=True)
class Case:
    name: str
    fn: CaseFn
    doc: str
    groups: tuple[str, ...]


CASES: dict[str, Case] = {}


def case(name: str, *groups: str) -> Callable[[CaseFn], CaseFn]:
    """Register a case. ``groups`` are extra names ``--cases`` accepts for it; the part of the
    name before the first ``_`` is always a group (``import`` selects ``import_small`` and
    ``import_large``)."""

    def register(fn: CaseFn) -> CaseFn:
        if name in CASES:
            raise ValueError(f"duplicate bench case {name!r}")
        prefix = name.split("_", 1)[0]
        all_groups = tuple(dict.fromkeys((prefix, *groups)))
        doc = (fn.__doc__ or "").strip().split("\n", 1)[0]
        CASES[name] = Case(name, fn, doc, all_groups)
        return fn

    return register


def select(spec: str | None) -> list[Case]:
    """Cases named by a comma-separated list of case names or groups (all when empty)."""
    if not spec:
        return list(CASES.values())
    wanted = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [
        w for w in wanted if w not in CASES and not any(w in c.groups for c in CASES.values())
    ]
    if unknown:
        known = ", ".join(CASES)
        raise SystemExit(f"unknown bench case(s): {', '.join(unknown)} (known: {known})")
    return [c for c in CASES.values() if c.name in wanted or any(g in wanted for g in c.groups)]
