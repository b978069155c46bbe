"""The commands that read: `status` (observes now), `history`, `state`, `schema`."""

from __future__ import annotations

from datetime import timedelta

import click

from reconciler.cli import render
from reconciler.cli.context import (
    current_workspace,
    reading_workspace,
    seconds,
    stderr,
    stdout,
    targets_option,
)
from reconciler.errors import ReconcilerError


@click.command()
@click.option("--json", "as_json", is_flag=True)
@targets_option
def status(as_json: bool, targets: tuple[str, ...]) -> int:
    """Per resource: sync status, health, last apply, pins (observes now)."""
    from reconciler.engine.planning import load, make_plan
    from reconciler.engine.status import status_rows, watch_problem

    workspace = reading_workspace()
    rows = status_rows(make_plan(workspace, load(workspace), list(targets)), workspace.store)
    problem = watch_problem(workspace.store)
    if problem is not None:  # on stderr: `status --json` stays the list DESIGN.md gives
        stderr.print(f"[yellow]warning:[/yellow] {render.shown(problem)}", highlight=False)
    if as_json:
        render.print_json(stdout, rows)
        return 0
    columns = ("RESOURCE", "SYNC", "HEALTH", "LAST APPLIED", "REV", "MESSAGE")
    render.table(
        stdout,
        columns,
        [
            (
                r["address"],
                r["sync"],
                r["health"],
                r["last_applied_at"] or "never",
                r["revision"],
                r["message"],
            )
            for r in rows
        ],
    )
    return 0


@click.command()
@click.argument("address", required=False)
@click.option("--json", "as_json", is_flag=True)
def history(address: str | None, as_json: bool) -> int:
    """Revisions, or one resource's history (what moved, per apply)."""
    store = reading_workspace().store
    if address is None:
        revisions = store.revisions()
        if as_json:
            render.print_json(stdout, revisions)
            return 0
        render.table(
            stdout,
            ("REV", "STARTED", "TRIGGER", "OUTCOME", "COMMIT", "SPECS DIGEST"),
            [
                (
                    r["id"],
                    r["started_at"],
                    r["trigger"],
                    r["outcome"],
                    (r["specs_commit"] or "")[:12],
                    (r["specs_digest"] or "")[:19],
                )
                for r in revisions
            ],
        )
        return 0
    entries = store.history(address)
    if not entries and store.resource(address) is None:
        raise ReconcilerError(f"no history for {address}")
    if as_json:
        render.print_json(stdout, entries)
        return 0
    render.table(
        stdout,
        ("AT", "REV", "UNIT", "OUTCOME", "WHAT HAPPENED"),
        [
            (
                e["at"],
                e.get("revision"),
                e.get("unit", ""),
                e.get("outcome", e.get("event", "")),
                e.get("summary", "-"),
            )
            for e in entries
        ],
    )
    return 0


@click.group()
def state() -> None:
    """Read the state store; release a stale lock; prune old revisions."""


@state.command("list")
def state_list() -> int:
    """Every resource in the store."""
    store = reading_workspace().store
    render.table(
        stdout,
        ("RESOURCE", "OUTCOME", "LAST APPLIED", "REV"),
        [(r.address, r.outcome, r.last_applied_at, r.revision_id) for r in store.resources()],
    )
    stdout.print(f"serial {store.serial()}, schema version {store.schema_version()}", style="dim")
    return 0


@state.command("show")
@click.argument("address")
def state_show(address: str) -> int:
    """One resource's stored record (spec with secrets masked, state, outcome)."""
    store = reading_workspace().store
    record = store.resource(address)
    if record is None:
        raise ReconcilerError(f"{address} is not in the state store")
    observation = store.observation(address)
    data = {**record.__dict__, "observation": observation.__dict__ if observation else None}
    render.print_json(stdout, data)
    return 0


@state.command("unlock")
@click.option("--force", is_flag=True, help="Remove the lock even if its holder looks alive.")
def state_unlock(force: bool) -> int:
    """Release a stale apply lock."""
    stdout.print(current_workspace().store.lock.unlock(force))
    return 0


@state.command("prune")
@click.option(
    "--keep", type=click.IntRange(min=1), metavar="N", help="Keep the newest N revisions."
)
@click.option(
    "--older-than", metavar="DUR", help="Remove revisions started longer ago than DUR (90d)."
)
@click.option("--dry-run", is_flag=True, help="Count what would go; remove nothing.")
@click.option(
    "--lock-timeout",
    default="0",
    show_default=True,
    help="Wait this long for an apply's lock (e.g. 30s) before giving up.",
)
def state_prune(keep: int | None, older_than: str | None, dry_run: bool, lock_timeout: str) -> int:
    """Remove old revisions, their journal and history, old events and health results."""
    from reconciler.store.retention import prune_locked  # not for `--help`: see cli/main.py

    if keep is None and older_than is None:
        raise click.UsageError("say what to keep: --keep N and/or --older-than DUR")
    age = None
    if older_than is not None:
        age = timedelta(seconds=seconds(older_than, "--older-than", positive=True))
    store = current_workspace().store
    pruned, note = prune_locked(store, keep, age, dry_run, seconds(lock_timeout, "--lock-timeout"))
    if note:
        stderr.print(f"note: {render.shown(note)}", highlight=False)
    render.table(
        stdout,
        ("TABLE", "WOULD REMOVE" if dry_run else "REMOVED"),
        list(pruned.counts.items()),
    )
    if pruned.window.first is None:
        stdout.print("nothing is outside the window: every revision is kept")
    elif dry_run:
        stdout.print(
            f"dry run: nothing removed; the window starts at revision {pruned.window.first}"
        )
    else:
        stdout.print(
            f"kept revisions from {pruned.window.first} on (and what the state still needs); "
            f"store {_mb(pruned.bytes_before)} -> {_mb(pruned.bytes_after)}"
        )
    return 0


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@click.command()
def schema() -> int:
    """Print the JSON Schema of every kind's spec."""
    from reconciler.engine.schema import json_schema

    render.print_json(stdout, json_schema(current_workspace().registry))
    return 0
