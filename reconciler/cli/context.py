"""What every command shares: the two consoles, the invocation's workspace, durations."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.console import Console

    from reconciler.engine.workspace import Workspace


def _console(to_stderr: bool) -> Console:
    from rich.console import Console  # on first output: rich is slow to import

    # No emoji codes: a path or message with ":a b:" in it is shown as written.
    console = Console(stderr=to_stderr, highlight=False, emoji=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = 200  # pipes and files: no terminal width to fit, keep tables on one line
    return console


class _LazyConsole:
    """A rich Console made on first use, so that `--help` and a plain line to a pipe do
    not import rich."""

    def __init__(self, to_stderr: bool) -> None:
        self._to_stderr = to_stderr
        self._console: Console | None = None

    def made(self) -> Console:
        """The Console itself (made now if it is not yet)."""
        if self._console is None:
            self._console = _console(self._to_stderr)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.made(), name)


if TYPE_CHECKING:
    stdout: Console
    stderr: Console
else:
    stdout = _LazyConsole(False)
    stderr = _LazyConsole(True)


def real(console: Console) -> Console:
    """The rich Console behind `stdout` or `stderr`, for rich objects that use it as a
    context manager (a Progress): special methods are not forwarded."""
    return console.made() if isinstance(console, _LazyConsole) else console


def say(line: str) -> None:
    """Print one line without markup on stdout: written as it is to a pipe or a file (what
    rich would write there too, without importing it), through rich on a terminal."""
    terminal = "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ
    if terminal or sys.stdout.isatty():
        stdout.print(line, markup=False)
        return
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass(frozen=True)
class TopOptions:
    """The top-level options every command's workspace is built from."""

    specs: str
    state: Path


def current_workspace(parallelism: int = 4, read_only: bool = False) -> Workspace:
    """The workspace of this invocation, built from the top-level options (`--specs`,
    `--state`) and the command's own; a command builds it once, after parsing."""
    from reconciler.engine.workspace import Workspace

    top = click.get_current_context().find_object(TopOptions)
    assert top is not None
    return Workspace(top.specs, top.state, parallelism=parallelism, read_only=read_only)


def reading_workspace() -> Workspace:
    """The workspace for a command that only reads: its store is opened read-only, so the
    command works on a read-only mount and never takes a write lock."""
    return current_workspace(read_only=True)


def seconds(text: str, option: str, positive: bool = False) -> float:
    """An option's duration (`30s`, `5m`, `0`) in seconds; a usage error names the option."""
    from reconciler.specs.types import parse_duration

    try:
        value = parse_duration(int(text) if text.isdigit() else text).total_seconds()
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint=option) from None
    if positive and value <= 0:
        raise click.BadParameter("must be more than 0", param_hint=option)
    return value


def targets_option(function: Any) -> Any:
    """`--target ADDR`, repeatable."""
    return click.option(
        "--target",
        "targets",
        multiple=True,
        metavar="ADDR",
        help="Only this resource (and what it depends on); repeatable.",
    )(function)


def parallelism_option(function: Any) -> Any:
    """`--parallelism N` (default 4)."""
    return click.option(
        "--parallelism",
        default=4,
        show_default=True,
        type=click.IntRange(1, 64),
        help="Actions run at once.",
    )(function)
