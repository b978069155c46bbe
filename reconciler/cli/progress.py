"""`apply`'s progress: a bar on a terminal, one line per finished action either way."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from reconciler.cli import render
from reconciler.cli.context import real, stderr, stdout
from reconciler.engine.applying import ActionReport, Listener


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
def progress() -> Iterator[Listener]:
    """The listener `apply` reports its actions to."""
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
    with Progress(*columns, console=real(stderr), transient=True) as bar:
        yield _ProgressListener(bar)
