"""Rendering plans, reports and tables: coloured on a terminal, plain in pipes. No logic here.

Every text shown goes through `shown` (or `printable_data` for JSON): what hooks, git or a
remote wrote is displayed without the control sequences that would drive the terminal.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from reconciler.redaction import printable, printable_data

if TYPE_CHECKING:
    from rich.console import Console

    from reconciler.engine.applying import ActionReport, ApplyReport
    from reconciler.engine.plans import Change, Plan, Step

SYMBOLS = {"create": "+", "update": "~", "delete": "-", "blocked": "!", "noop": " "}
COLOURS = {
    "create": "green",
    "update": "yellow",
    "delete": "red",
    "blocked": "magenta",
    "noop": "dim",
}
STEP_SYMBOLS = {
    "add": "+",
    "remove": "-",
    "update": "~",
    "merge": "~",
    "conflict": "!",
    "write": "~",
    "adopt": "=",
    "init": "+",
    "create": "+",
    "fast-forward": "~",
    "force-update": "~",
    "delete": "-",
    "forget": "-",
    "blocked": "!",
    "skip": "=",
}
STEP_COLOURS = {
    "add": "green",
    "remove": "red",
    "update": "yellow",
    "merge": "yellow",
    "conflict": "magenta",
    "write": "yellow",
    "adopt": "dim",
    "init": "green",
    "create": "green",
    "fast-forward": "yellow",
    "force-update": "red",
    "delete": "red",
    "forget": "red",
    "blocked": "magenta",
    "skip": "dim",
}


def shown(text: object) -> str:
    """`text` ready for rich: without terminal control characters, markup escaped."""
    from rich.markup import escape  # imported when output is made: rich is slow to import

    return escape(printable(str(text)))


def print_json(console: Console, data: Any) -> None:
    """Plain JSON on stdout, never coloured or wrapped, without control characters."""
    import json

    console.file.write(json.dumps(printable_data(data), indent=2, sort_keys=False) + "\n")


def plan_text(console: Console, plan: Plan) -> None:
    """The `+ ~ -` plan, grouped by resource and unit."""
    for change in plan.changes:
        if change.action != "noop":
            _change(console, change)
    noop = [c for c in plan.changes if c.action == "noop"]
    for change in noop:
        console.print(
            f"  [dim]{shown(change.address)}: {shown(change.reason)}[/dim]", highlight=False
        )
    console.print(_summary_line(plan), highlight=False)


def _change(console: Console, change: Change) -> None:
    colour = COLOURS[change.action]
    console.print(
        f"[{colour}]{SYMBOLS[change.action]} {shown(change.address)}[/{colour}] "
        f"({change.action}): {shown(change.reason)}",
        highlight=False,
    )
    unit, lines = None, []
    for step in change.steps:
        if step.get("unit") != unit:
            unit = step.get("unit")
            lines.append(f"    {shown(str(unit))}")
        lines.append("      " + _step(step))
    if lines:  # one print: rich takes 0.4 ms per call, seconds for 10,000 refs
        console.print("\n".join(lines), highlight=False)


def _step(step: Step) -> str:
    op = str(step["op"])
    colour = STEP_COLOURS.get(op, "white")
    symbol = STEP_SYMBOLS.get(op, "*")
    target = shown(str(step.get("release") or step.get("ref") or step.get("term") or "repository"))
    return f"[{colour}]{symbol} {target}[/{colour}] [dim]{op}[/dim]: {shown(str(step['reason']))}"


def _summary_line(plan: Plan) -> str:
    from reconciler.engine.status import sync_of

    s = plan.summary()
    if not plan.pending:
        # Refs skip leaves still differ (status: OutOfSync): those resources do not "match".
        skipping = sum(sync_of(c) == "OutOfSync" for c in plan.changes)
        matching = s["noop"] - skipping
        line = "No changes. " + (
            "1 resource matches its spec"
            if matching == 1
            else f"{matching} resources match their specs"
        )
        if skipping:
            verb = "leaves" if skipping == 1 else "leave"
            line += f"; {skipping} {verb} refs as conflictStrategy skip asks (see status)"
        return line + "."
    return (
        f"Plan: {s['create']} to create, {s['update']} to update, {s['delete']} to delete, "
        f"{s['noop']} unchanged, {s['blocked']} blocked."
    )


def plan_markdown(plan: Plan) -> str:
    """A plan to paste into a pull request."""
    lines = [f"### reconciler plan: {_summary_line(plan)}", ""]
    commit = f" at `{plan.commit[:12]}`" if plan.commit else ""
    lines += [f"Specs `{plan.source}`{commit}, state serial {plan.state_serial}.", ""]
    lines += ["| | resource | action | reason |", "|---|---|---|---|"]
    for c in plan.changes:
        lines.append(f"| `{SYMBOLS[c.action]}` | `{c.address}` | {c.action} | {_cell(c.reason)} |")
    for c in plan.changes:
        if c.steps:
            lines += ["", f"<details><summary>{c.address}: {len(c.steps)} steps</summary>", ""]
            lines += ["| op | ref | where | reason |", "|---|---|---|---|"]
            for s in c.steps:
                where = f"`{s.get('ref', '')}` | `{s.get('unit', '')}`"
                lines.append(f"| {s['op']} | {where} | {_cell(s['reason'])} |")
            lines += ["", "</details>"]
    return printable("\n".join(lines)) + "\n"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def action_line(report: ActionReport) -> str:
    """One line per finished action."""
    mark = {"done": "[green]ok[/green]", "partial": "[yellow]partial[/yellow]"}.get(
        report.outcome, "[red]failed[/red]"
    )
    retries = f" after {report.attempts} attempts" if report.attempts > 1 else ""
    if report.message.endswith(f"(after {report.attempts} attempts)"):
        retries = ""  # a final temporary failure already says so (engine/applying.py)
    return f"{mark} {shown(report.address)} {shown(report.unit)}: {shown(report.message)}{retries}"


def apply_summary(console: Console, report: ApplyReport) -> None:
    """What an apply did, and what it could not do."""
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {shown(note)}", highlight=False)
    for line in report.blocked:
        console.print(f"[magenta]blocked[/magenta] {shown(line)}", highlight=False)
    done = sum(a.outcome == "done" for a in report.actions)
    failed = len(report.actions) - done
    # Resources, as the plan's summary counts them (each blocked ref is listed above).
    blocked = len({line.split(": ", 1)[0] for line in report.blocked})
    revision = f" (revision {report.revision})" if report.revision else ""
    if not report.actions and report.revision is None and not report.blocked:
        console.print("No changes. Nothing to apply.")
        return
    colour = "green" if report.ok else "red"
    console.print(
        f"[{colour}]Apply {'complete' if report.ok else 'incomplete'}{revision}: "
        f"{done} actions done, {failed} failed, {blocked} blocked.[/{colour}]",
        highlight=False,
    )


def table(console: Console, columns: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    """A simple table (rich draws it; in a pipe it is still readable text)."""
    from rich.table import Table

    grid = Table(*columns, box=None, pad_edge=False, highlight=False)
    for row in rows:
        grid.add_row(*(shown("" if v is None else str(v)) for v in row))
    console.print(grid)
