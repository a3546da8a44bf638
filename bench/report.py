"""The markdown table and the JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.registry import Row


def _num(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    text = f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}" if abs(x) < 10 else f"{x:.1f}"
    return f"{text} {unit}".strip()


def _verdict(row: Row) -> str:
    if row.error is not None:
        return "ERROR"
    if row.skipped is not None:
        return "skip"
    return {True: "pass", False: "FAIL", None: "info"}[row.passed]


def _reclaim(meta: dict[str, Any]) -> str:
    if meta.get("damon_reclaim_paused"):
        return "paused for the run"
    return "active" if meta.get("damon_reclaim_active") else "off"


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    head = [
        "| case | metric | ours | baseline | ratio | target | result |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    lines = []
    for r in rows:
        baseline = _num(r.baseline, r.unit)
        if r.baseline_name:
            baseline += f" ({r.baseline_name})"
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}x"
        lines.append(
            f"| {r.case} | {r.metric} | {_num(r.ours, r.unit)} | {baseline} | {ratio} "
            f"| {r.target_text} | {_verdict(r)} |"
        )
    notes = [
        f"mode: {'quick' if meta.get('quick') else 'full'}; cpus: {meta.get('cpu_count')}; "
        f"page caches dropped: {meta.get('caches_dropped')}; "
        f"DAMON page reclaim: {_reclaim(meta)}",
    ]
    notes += [f"- {r.case}: {r.error}" for r in rows if r.error]
    notes += [f"- {r.case} ({r.metric}) skipped: {r.skipped}" for r in rows if r.skipped]
    return "\n".join(head + lines) + "\n\n" + "\n".join(notes) + "\n"


def write(out: Path, stamp: str, rows: list[Row], meta: dict[str, Any]) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(rows, meta)
    doc = {"meta": meta, "rows": [r.to_json() for r in rows]}
    md_path = out / f"bench-{stamp}.md"
    json_path = out / f"bench-{stamp}.json"
    md_path.write_text(md)
    json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (out / "latest.md").write_text(md)
    (out / "latest.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return md_path, json_path
