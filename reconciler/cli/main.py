"""The command line: parse, call the engine, render.

Exit codes: 0 ok, 1 any error, 2 changes pending (only with `plan --detailed-exitcode`).
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from reconciler import __version__
from reconciler.cli.context import (
    TopOptions,
    current_workspace,
    parallelism_option,
    say,
    seconds,
    stderr,
    stdout,
    targets_option,
)
from reconciler.cli.inspect import history, schema, state, status
from reconciler.errors import ReconcilerError, SpecError
from reconciler.redaction import printable

if TYPE_CHECKING:
    from reconciler.engine.plans import Plan

# Every command imports the engine, the kinds and rich inside its body: `--help` and
# `validate` then import only what they use (issue 14: CLI start).


class Lazy(NamedTuple):
    """A command imported when it runs: where it is, and the summary `--help` lists for it
    (equal to the command's own, tests/test_cli_start.py checks)."""

    target: str  # module:attribute
    summary: str


class LazyGroup(click.Group):
    """A group whose heavier commands are imported only when run; `--help` lists them from
    their summaries without importing them."""

    lazy = {
        "taxonomy": Lazy("reconciler.cli.taxonomy:taxonomy_group", "Taxonomy helpers."),
        "watch": Lazy(
            "reconciler.cli.watch:watch",
            "Reconcile continuously: on spec changes, new commits, webhooks and every interval.",
        ),
        "health": Lazy(
            "reconciler.cli.watch:health",
            "Run the health policies' checks now; exit 1 when anything is unhealthy.",
        ),
        "heal": Lazy(
            "reconciler.cli.watch:heal_command",
            "Check now, then run the remediations the policies call for.",
        ),
        "metrics": Lazy(
            "reconciler.cli.watch:metrics",
            "Success rates, timings and resources per health, computed from the store.",
        ),
    }
    _LISTING = "reconciler.listing"  # ctx.meta key: set while --help lists the commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        ctx.meta[self._LISTING] = True
        try:
            super().format_commands(ctx, formatter)
        finally:
            del ctx.meta[self._LISTING]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            if ctx.meta.get(self._LISTING):
                # A stand-in with the same help: click shortens it as it would the real one.
                return click.Command(cmd_name, help=self.lazy[cmd_name].summary)
            module, _, name = self.lazy[cmd_name].target.partition(":")
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
# The version as the package says it (no metadata lookup: it costs 20 ms of every start);
# tests/test_cli_start.py checks it is the installed distribution's.
@click.version_option(__version__, package_name="reconciler")
@click.pass_context
def cli(ctx: click.Context, specs: str, state: Path, verbose: bool) -> None:
    """reconciler: declarative GitOps reconciliation of mirrors, taxonomies and environments."""
    ctx.obj = TopOptions(specs, state)


@cli.command()
@click.argument("directory", default="specs", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> int:
    """Write a commented example specs directory, with demo repositories it works on."""
    from reconciler.cli.example import write_example

    spec, demo = write_example(directory)
    specs = "" if directory == Path("specs") else f" --specs {directory}"
    stdout.print(
        f"wrote {spec} and demo repositories under {demo}; try `reconciler{specs} plan`, "
        "then edit the spec to name your own repositories"
    )
    return 0


@cli.command()
def validate() -> int:
    """Load and validate every spec; exit 0 or 1."""
    from reconciler.engine.planning import load

    specs = load(current_workspace())
    say(f"{len(specs.resources)} resources valid ({specs.digest[:19]}).")
    return 0


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
@targets_option
@parallelism_option
def plan(
    as_json: bool,
    fmt: str,
    out: Path | None,
    detailed_exitcode: bool,
    targets: tuple[str, ...],
    parallelism: int,
) -> int:
    """Observe, diff and print the plan; changes nothing but the observation cache."""
    from reconciler.engine.planning import load, make_plan

    workspace = current_workspace(parallelism)
    result = make_plan(workspace, load(workspace), list(targets))
    if out is not None:
        result.save(out)
    _show_plan(result, "json" if as_json else fmt)
    if out is not None and fmt == "text" and not as_json:
        stdout.print(f"Saved the plan to {out}; apply it with `reconciler apply {out}`.")
    return 2 if detailed_exitcode and result.pending else 0


def _show_plan(result: Plan, fmt: str) -> None:
    from reconciler.cli import render

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
@targets_option
@parallelism_option
def apply(
    planfile: Path | None, yes: bool, lock_timeout: str, targets: tuple[str, ...], parallelism: int
) -> int:
    """Apply a fresh plan, or exactly a saved one (refused if stale)."""
    from reconciler.cli import render
    from reconciler.cli.progress import progress
    from reconciler.engine.applying import locked_apply
    from reconciler.engine.plancheck import load_plan
    from reconciler.engine.planning import load, make_plan
    from reconciler.engine.staleness import check_current

    workspace = current_workspace(parallelism)
    timeout = seconds(lock_timeout, "--lock-timeout")
    if planfile is not None and targets:
        raise click.UsageError("--target cannot be combined with a saved plan")

    def prepare() -> tuple[Plan, Any]:
        specs = load(workspace)
        if planfile is None:
            return make_plan(workspace, specs, list(targets)), specs
        # Only a plan made now is applied, and only if the saved one equals it.
        saved = load_plan(planfile, workspace.registry)
        return check_current(workspace, saved, specs), specs

    def confirm(result: Plan) -> bool:
        render.plan_text(stdout, result)
        if yes or planfile is not None or not sys.stdin.isatty():
            return True
        return click.confirm("Apply these changes?", default=False)

    with progress() as listener:
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


@cli.command("rollback")
@click.argument("address")
@click.option("--to", "to", metavar="REV", help="The release or version to return to.")
@click.option("--unpin", is_flag=True, help="Release a rollback's pin instead.")
@click.option("--lock-timeout", default="0", show_default=True, help="Wait for the lock.")
def rollback_command(address: str, to: str | None, unpin: bool, lock_timeout: str) -> int:
    """Return a resource to an earlier recorded revision, and pin it there."""
    from reconciler.cli import render
    from reconciler.engine import rollback as rollbacks

    workspace = current_workspace()
    if unpin:
        stdout.print(rollbacks.unpin(workspace, address))
        return 0
    result = rollbacks.rollback(workspace, address, to, seconds(lock_timeout, "--lock-timeout"))
    colour = "green" if result.outcome == "done" else "red"
    stdout.print(f"[{colour}]{result.outcome}[/{colour}] {render.shown(result.message)}")
    if result.pin:
        stdout.print(f"{address} is pinned at {result.pin} until its spec changes.")
    return 0 if result.outcome == "done" else 1


for _command in (status, history, state, schema):
    cli.add_command(_command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn every error into a message and an exit code."""
    arguments = sys.argv[1:] if argv is None else argv
    verbose = "-v" in arguments or "--verbose" in arguments
    sys.exit(run(arguments, verbose))


def _interrupted(_signum: int, _frame: FrameType | None) -> None:
    """SIGTERM or SIGINT: end the hooks and checks running now (each in its own session,
    they would not get the signal), then unwind as an interrupt. None ran if their module is
    not loaded. `watch` replaces this with its own graceful stop."""
    processes = sys.modules.get("reconciler.processes")
    if processes is not None:
        processes.stop_all()
    raise KeyboardInterrupt


def run(arguments: list[str], verbose: bool = False) -> int:
    """Run the CLI with `arguments`; returns the exit code."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupted)
        signal.signal(signal.SIGINT, _interrupted)
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
            stderr.print(printable(str(problem)), markup=False)
        stderr.print(f"{len(error.problems)} problem(s) found; nothing was applied.", style="red")
        return 1
    except ReconcilerError as error:
        stderr.print(printable(f"error: {error}"), markup=False)
        return 1
    except KeyboardInterrupt:
        stderr.print("interrupted")
        return 1
    except Exception as error:  # a bug: one line, the traceback only with -v
        stderr.print(printable(f"internal error: {type(error).__name__}: {error}"), markup=False)
        if verbose:
            import traceback

            stderr.print(traceback.format_exc(), markup=False)
        else:
            stderr.print("run with -v for the traceback", style="dim")
        return 1
