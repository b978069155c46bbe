"""`reconciler taxonomy pull NAME [--target N]`: downstream taxonomy edits back into the spec."""

from __future__ import annotations

import click
from rich.markup import escape

from reconciler.cli.context import current_workspace, stdout
from reconciler.engine.pulling import PullReport, UnknownTarget, pull_edits


@click.group("taxonomy")
def taxonomy_group() -> None:
    """Taxonomy helpers."""


@taxonomy_group.command("pull")
@click.argument("name")
@click.option(
    "--target",
    "target",
    metavar="N",
    help="Only this target: its position in spec.targets (from 0) or its repo.",
)
@click.option("--dry-run", is_flag=True, help="Show what would be taken; write nothing.")
def pull(name: str, target: str | None, dry_run: bool) -> int:
    """Bring the edits made in NAME's target files back into its spec file (keeping the
    file's comments and key order), ready to be committed."""
    try:
        report = pull_edits(current_workspace(), "Taxonomy", name, target, write=not dry_run)
    except UnknownTarget as error:
        raise click.BadParameter(str(error), param_hint="--target") from None
    _show(report, dry_run)
    return 0


def _show(report: PullReport, dry_run: bool) -> None:
    for line in report.taken:
        stdout.print(f"[green]+[/green] {escape(line)}")
    for line in report.kept:
        stdout.print(f"[yellow]=[/yellow] {escape(line)}")
    for line in report.skipped:
        stdout.print(f"[magenta]![/magenta] skipped {escape(line)}")
    if not report.taken:
        stdout.print("Nothing to pull: the targets carry no downstream edits the spec lacks.")
    elif dry_run:
        stdout.print(f"Dry run: {len(report.taken)} edits would be written to {report.file}.")
    else:
        stdout.print(
            f"Wrote {len(report.taken)} edits to {report.file}; review and commit it, "
            "then `reconciler plan` shows the targets in sync."
        )
