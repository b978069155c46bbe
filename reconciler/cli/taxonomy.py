"""`reconciler taxonomy pull NAME [--target N]`: downstream taxonomy edits back into the spec."""

from __future__ import annotations

import click
from rich.markup import escape

from reconciler.cli.context import current_workspace, stdout
from reconciler.engine.planning import load
from reconciler.errors import ReconcilerError
from reconciler.kinds.taxonomy.model import TargetSpec, TaxonomySpec
from reconciler.kinds.taxonomy.pulling import PullReport, check_pullable, pull_taxonomy


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
    workspace = current_workspace()
    specs = load(workspace)
    resource = specs.by_address().get(f"Taxonomy/{name}")
    if resource is None:
        raise ReconcilerError(f"no Taxonomy named {name} in {specs.source}")
    check_pullable(resource, specs.commit)
    assert isinstance(resource.spec, TaxonomySpec)
    chosen = _targets(resource.spec, target)
    report = pull_taxonomy(resource, chosen, workspace.context(), write=not dry_run)
    _show(report, dry_run)
    return 0


def _targets(spec: TaxonomySpec, wanted: str | None) -> list[TargetSpec]:
    if wanted is None:
        return list(spec.targets)
    if wanted.isdigit() and int(wanted) < len(spec.targets):
        return [spec.targets[int(wanted)]]
    found = [t for t in spec.targets if wanted in (t.repo, t.unit)]
    if not found:
        known = ", ".join(f"{i}: {t.unit}" for i, t in enumerate(spec.targets))
        raise click.BadParameter(f"no target {wanted!r} (targets: {known})", param_hint="--target")
    return found


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
