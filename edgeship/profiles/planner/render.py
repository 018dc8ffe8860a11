"""The plan as the terminal shows it: one row per term, the total, where the constants came from."""

from __future__ import annotations

from rich.table import Table

from edgeship.profiles.planner.model import Plan
from edgeship.units import format_bytes


def plan_table(plan: Plan, title: str) -> Table:
    table = Table(title=f"edgeship plan — {title}", title_justify="left")
    for header, justify in (("term", "left"), ("memory", "left"), ("bytes", "right"), ("how", "left")):
        table.add_column(header, justify=justify)  # type: ignore[arg-type]
    for term in plan.terms:
        table.add_row(term.name, term.kind, format_bytes(term.bytes), term.how)
    how = f"KV for {plan.context} positions, PLE for {plan.distinct_tokens} distinct tokens"
    table.add_row("predicted peak PSS", "", format_bytes(plan.total), how, style="bold")
    return table
