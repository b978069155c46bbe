"""The command line: parse, call the engine, render.

Exit codes: 0 ok, 1 any error, 2 changes pending (only with `plan --detailed-exitcode`).
"""

from __future__ import annotations

import importlib
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape

from reconciler.cli import render
from reconciler.cli.example import EXAMPLE_MIRRORS
from reconciler.engine import rollback as rollbacks
from reconciler.engine.applying import ActionReport, Listener, locked_apply
from reconciler.engine.planning import load, make_plan
from reconciler.engine.plans import Plan, load_plan
from reconciler.engine.staleness import check_current
from reconciler.engine.status import status_rows, watch_problem
from reconciler.engine.workspace import Workspace
from reconciler.errors import ReconcilerError, SpecError
from reconciler.specs.types import parse_duration


def _console(to_stderr: bool) -> Console:
    console = Console(stderr=to_stderr, highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 200  # pipes and files: no terminal width to fit, keep tables on one line
    return console


stdout = _console(False)
stderr = _console(True)


class LazyGroup(click.Group):
    """A group whose heavier commands are imported only when run (or listed by --help)."""

    lazy = {
        "taxonomy": "reconciler.cli.taxonomy:taxonomy_group",
        "watch": "reconciler.cli.watch:watch",
        "health": "reconciler.cli.watch:health",
        "heal": "reconciler.cli.watch:heal_command",
        "metrics": "reconciler.cli.watch:metrics",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, name = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), name), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--specs",
    envvar="RECONCILER_SPECS",
    default="specs",
    show_default=True,
    help="Specs directory, or git URL/path with optional #REF:PATH.",
)
@click.option(
    "--state",
    envvar="RECONCILER_STATE",
    default="state/reconciler.db",
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The SQLite state store.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.version_option(package_name="reconciler")
@click.pass_context
def cli(ctx: click.Context, specs: str, state: Path, verbose: bool) -> None:
    """reconciler: declarative GitOps reconciliation of mirrors, taxonomies and environments."""
    ctx.obj = Workspace(specs=specs, state=state)


def _workspace() -> Workspace:
    workspace = click.get_current_context().find_object(Workspace)
    assert workspace is not None
    return workspace


@cli.command()
@click.argument("directory", default="specs", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> int:
    """Write a commented example specs directory."""
    target = directory / "mirrors.yaml"
    if target.exists():
        raise ReconcilerError(f"{target} already exists; not overwriting it")
    directory.mkdir(parents=True, exist_ok=True)
    target.write_text(EXAMPLE_MIRRORS)
    stdout.print(f"wrote {target}; edit it, then run `reconciler --specs {directory} plan`")
    return 0


@cli.command()
def validate() -> int:
    """Load and validate every spec; exit 0 or 1."""
    specs = load(_workspace())
    stdout.print(f"{len(specs.resources)} resources valid ({specs.digest[:19]}).")
    return 0


def _targets_option(function: Any) -> Any:
    return click.option(
        "--target",
        "targets",
        multiple=True,
        metavar="ADDR",
        help="Only this resource (and what it depends on); repeatable.",
    )(function)


def _parallelism_option(function: Any) -> Any:
    return click.option(
        "--parallelism",
        default=4,
        show_default=True,
        type=click.IntRange(1, 64),
        help="Actions run at once.",
    )(function)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Save the plan for `apply FILE`."
)
@click.option("--detailed-exitcode", is_flag=True, help="Exit 2 when changes are pending.")
@_targets_option
@_parallelism_option
def plan(
    as_json: bool,
    fmt: str,
    out: Path | None,
    detailed_exitcode: bool,
    targets: tuple[str, ...],
    parallelism: int,
) -> int:
    """Observe, diff and print the plan; changes nothing but the observation cache."""
    workspace = _workspace()
    workspace.parallelism = parallelism
    result = make_plan(workspace, load(workspace), list(targets))
    if out is not None:
        result.save(out)
    _show_plan(result, "json" if as_json else fmt)
    if out is not None and fmt == "text" and not as_json:
        stdout.print(f"Saved the plan to {out}; apply it with `reconciler apply {out}`.")
    return 2 if detailed_exitcode and result.pending else 0


def _show_plan(result: Plan, fmt: str) -> None:
    if fmt == "json":
        render.print_json(stdout, result.to_json())
    elif fmt == "markdown":
        stdout.file.write(render.plan_markdown(result))
    else:
        render.plan_text(stdout, result)


@cli.command()
@click.argument("planfile", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--lock-timeout",
    default="0",
    show_default=True,
    help="Wait this long for another apply's lock (e.g. 30s) before giving up.",
)
@_targets_option
@_parallelism_option
def apply(
    planfile: Path | None, yes: bool, lock_timeout: str, targets: tuple[str, ...], parallelism: int
) -> int:
    """Apply a fresh plan, or exactly a saved one (refused if stale)."""
    workspace = _workspace()
    workspace.parallelism = parallelism
    timeout = _duration(lock_timeout, "--lock-timeout")
    if planfile is not None and targets:
        raise click.UsageError("--target cannot be combined with a saved plan")

    def prepare() -> tuple[Plan, Any]:
        specs = load(workspace)
        if planfile is None:
            return make_plan(workspace, specs, list(targets)), specs
        saved = load_plan(planfile)
        check_current(workspace, saved, specs)
        return saved, specs

    def confirm(result: Plan) -> bool:
        render.plan_text(stdout, result)
        if yes or planfile is not None or not sys.stdin.isatty():
            return True
        return click.confirm("Apply these changes?", default=False)

    with _progress() as listener:
        result, report = locked_apply(
            workspace, prepare, confirm, timeout, listener, replanning=planfile is None
        )
    if report is None:
        stderr.print("Apply cancelled; nothing changed.")
        return 1
    if not result.pending:
        render.plan_text(stdout, result)
    render.apply_summary(stdout, report)
    return 0 if report.ok else 1


class _ProgressListener(Listener):
    """A progress bar on a terminal; one line per action either way."""

    def __init__(self, progress: Any) -> None:  # a rich Progress, or None in a pipe
        self.progress = progress
        self.task: Any = None

    def planned(self, total_actions: int) -> None:
        if self.progress is not None and total_actions:
            self.task = self.progress.add_task("applying", total=total_actions)

    def finished(self, report: ActionReport) -> None:
        console = self.progress.console if self.progress else stdout
        console.print(render.action_line(report), highlight=False)
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task)


@contextmanager
def _progress() -> Iterator[Listener]:
    if not stderr.is_terminal:
        yield _ProgressListener(None)
        return
    from rich.progress import (  # only on a terminal: it is slow to import
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=stderr, transient=True) as progress:
        yield _ProgressListener(progress)


@cli.command()
@click.option("--json", "as_json", is_flag=True)
@_targets_option
def status(as_json: bool, targets: tuple[str, ...]) -> int:
    """Per resource: sync status, health, last apply, pins (observes now)."""
    workspace = _workspace()
    rows = status_rows(make_plan(workspace, load(workspace), list(targets)), workspace.store)
    problem = watch_problem(workspace.store)
    if problem is not None:  # on stderr: `status --json` stays the list DESIGN.md gives
        stderr.print(f"[yellow]warning:[/yellow] {escape(problem)}", highlight=False)
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


@cli.command()
@click.argument("address", required=False)
@click.option("--json", "as_json", is_flag=True)
def history(address: str | None, as_json: bool) -> int:
    """Revisions, or one resource's history (what moved, per apply)."""
    store = _workspace().store
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


@cli.command("rollback")
@click.argument("address")
@click.option("--to", "to", metavar="REV", help="The release or version to return to.")
@click.option("--unpin", is_flag=True, help="Release a rollback's pin instead.")
@click.option("--lock-timeout", default="0", show_default=True, help="Wait for the lock.")
def rollback_command(address: str, to: str | None, unpin: bool, lock_timeout: str) -> int:
    """Return a resource to an earlier recorded revision, and pin it there."""
    workspace = _workspace()
    if unpin:
        stdout.print(rollbacks.unpin(workspace, address))
        return 0
    result = rollbacks.rollback(workspace, address, to, _duration(lock_timeout, "--lock-timeout"))
    colour = "green" if result.outcome == "done" else "red"
    stdout.print(f"[{colour}]{result.outcome}[/{colour}] {escape(result.message)}")
    if result.pin:
        stdout.print(f"{address} is pinned at {result.pin} until its spec changes.")
    return 0 if result.outcome == "done" else 1


@cli.group()
def state() -> None:
    """Read the state store; release a stale lock."""


@state.command("list")
def state_list() -> int:
    """Every resource in the store."""
    store = _workspace().store
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
    store = _workspace().store
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
    stdout.print(_workspace().store.lock.unlock(force))
    return 0


@cli.command()
def schema() -> int:
    """Print the JSON Schema of every kind's spec."""
    from reconciler.engine.schema import json_schema

    render.print_json(stdout, json_schema(_workspace().registry))
    return 0


def _duration(text: str, option: str) -> float:
    try:
        return parse_duration(int(text) if text.isdigit() else text).total_seconds()
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from None


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn every error into a message and an exit code."""
    arguments = sys.argv[1:] if argv is None else argv
    verbose = "-v" in arguments or "--verbose" in arguments
    sys.exit(run(arguments, verbose))


def run(arguments: list[str], verbose: bool = False) -> int:
    """Run the CLI with `arguments`; returns the exit code."""
    try:
        code = cli.main(arguments, prog_name="reconciler", standalone_mode=False)
        return int(code or 0)
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.ClickException as error:
        error.show()
        return 1
    except click.Abort:
        stderr.print("aborted")
        return 1
    except SpecError as error:
        for problem in error.problems:
            stderr.print(str(problem), markup=False)
        stderr.print(f"{len(error.problems)} problem(s) found; nothing was applied.", style="red")
        return 1
    except ReconcilerError as error:
        stderr.print(f"error: {error}", markup=False)
        return 1
    except KeyboardInterrupt:
        stderr.print("interrupted")
        return 1
    except Exception as error:  # a bug: one line, the traceback only with -v
        stderr.print(f"internal error: {type(error).__name__}: {error}", markup=False)
        if verbose:
            stderr.print(traceback.format_exc(), markup=False)
        else:
            stderr.print("run with -v for the traceback", style="dim")
        return 1
