"""Markdown rendering of benchmark results: one section per benchmark, goals at the end."""

from __future__ import annotations

from collections.abc import Sequence

from bench.common import BenchResult, Goal, Table


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
