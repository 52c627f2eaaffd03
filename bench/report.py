"""Benchmark results (tables, goals, notes) and their Markdown: one section per benchmark,
goals at the end."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field


@dataclass
class Table:
    """One table of figures: a title, column headers, rows of already formatted cells."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class Goal:
    """One goal of the issue, the figure measured against it and whether it is met.

    ``met`` is None for a headline figure the issue asks for without a target.
    """

    name: str
    target: str
    measured: str
    met: bool | None


@dataclass
class BenchResult:
    """What one benchmark found: tables, goals, and notes on method (Markdown)."""

    key: str
    title: str
    method: str
    tables: list[Table] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> str:
        """The result as JSON (for the parent ``python -m bench`` process)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> BenchResult:
        """Parse what ``to_json`` wrote."""
        raw = json.loads(text)
        raw["tables"] = [Table(**t) for t in raw["tables"]]
        raw["goals"] = [Goal(**g) for g in raw["goals"]]
        return cls(**raw)


def render_table(table: Table) -> str:
    """A Markdown table with its title (bold) and note (italic)."""
    lines = [f"**{table.title}**", ""]
    lines.append("| " + " | ".join(table.headers) + " |")
    lines.append("|" + "|".join("---" for _ in table.headers) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in table.rows)
    if table.note:
        lines += ["", f"*{table.note}*"]
    return "\n".join(lines)


def render_goals(goals: Sequence[Goal], title: str = "Goals") -> str:
    """The goals table: target, measured, met."""
    return render_table(
        Table(
            title=title,
            headers=["goal", "target", "measured", "met"],
            rows=[[g.name, g.target, g.measured, _verdict(g.met)] for g in goals],
        )
    )


def _verdict(met: bool | None) -> str:
    if met is None:
        return "-"
    return "yes" if met else "**no**"


def render_result(result: BenchResult) -> str:
    """One benchmark's section: method, tables, goals, notes."""
    parts = [f"## {result.title}", "", result.method, ""]
    for table in result.tables:
        parts += [render_table(table), ""]
    if result.goals:
        parts += [render_goals(result.goals), ""]
    for note in result.notes:
        parts += [note, ""]
    if result.seconds:
        parts += [f"*This benchmark took {result.seconds:.0f} s.*", ""]
    return "\n".join(parts)
