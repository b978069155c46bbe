"""`reconciler taxonomy pull NAME`: bring the edits made in target files back into the spec.

A downstream edit is what a target's file changed relative to the version last applied to
it (its base). An edit is taken into the spec when the spec did not change the same thing
since; otherwise the spec's value is kept and reported: the merge's three-way rule
(`merging.three_way`, `merging.merged_set`) with the spec winning conflicts. The spec file
is rewritten with ruamel.yaml's round trip, so its comments, key order, quoting and flow
style stay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.kinds.base import Context
from reconciler.kinds.taxonomy.documents import DocumentError, from_content, parse
from reconciler.kinds.taxonomy.folding import fold
from reconciler.kinds.taxonomy.merging import BLANK, merged_set, three_way
from reconciler.kinds.taxonomy.model import TargetSpec, TaxonomySpec
from reconciler.kinds.taxonomy.observing import observe_target
from reconciler.kinds.taxonomy.specfile import SpecFile
from reconciler.kinds.taxonomy.terms import (
    SCALAR_FIELDS,
    SET_FIELDS,
    Taxonomy,
    Term,
    document_key,
)
from reconciler.specs import Resource


@dataclass
class PullReport:
    """What a pull took from the targets, what it left, and what it could not read."""

    file: Path
    taken: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def pull_taxonomy(
    resource: Resource, targets: list[TargetSpec], context: Context, write: bool = True
) -> PullReport:
    """Take the downstream edits of `targets` into the resource's spec file."""
    spec = resource.spec
    assert isinstance(spec, TaxonomySpec)
    path = resource.base_dir / Path(resource.file).name
    specfile = SpecFile.load(path, resource.name)
    report = PullReport(path)
    current = {t.id: t.term() for t in spec.terms}
    record = context.store.resource(resource.address)
    for target in targets:
        state = record.state.get(target.unit) if record else None
        version = state.get("version") if isinstance(state, dict) else None
        edits = _target_edits(resource, spec, target, version, context, report)
        if edits is not None:
            base, theirs = edits
            ours = fold(current, spec.folds())
            for term_id in sorted(base.keys() | theirs.keys()):
                _pull_term(term_id, base, ours, theirs, current, specfile, report)
    if write and report.taken:
        specfile.save()
    return report


def _target_edits(
    resource: Resource,
    spec: TaxonomySpec,
    target: TargetSpec,
    version: int | None,
    context: Context,
    report: PullReport,
) -> tuple[Taxonomy, Taxonomy] | None:
    observed = observe_target(resource.address, target, version, context)
    if observed.error or observed.text is None:
        report.skipped.append(f"{target.unit}: {observed.error or 'no file there yet'}")
        return None
    try:
        theirs = parse(observed.text, target.format or "json", resource.name)
    except DocumentError as error:
        report.skipped.append(f"{target.unit}: cannot parse {target.path}: {error}")
        return None
    return (from_content(observed.base) if observed.base else {}), theirs


def _pull_term(
    term_id: str,
    base: Taxonomy,
    ours: Taxonomy,
    theirs: Taxonomy,
    current: dict[str, Term],
    specfile: SpecFile,
    report: PullReport,
) -> None:
    b, o, t = base.get(term_id), ours.get(term_id), theirs.get(term_id)
    side = three_way(b, o, t)
    if side == "ours":
        return
    if t is None:
        if side == "theirs" and term_id in current:
            del current[term_id]
            specfile.remove(term_id)
            report.taken.append(f"removed {term_id}")
        else:
            report.kept.append(f"{term_id}: removed downstream, changed in the spec; kept")
        return
    if o is None and b is not None:
        report.kept.append(f"{term_id}: removed in the spec, changed downstream; not re-added")
        return
    if o is None or term_id not in current:
        current[term_id] = t
        specfile.add(t)
        report.taken.append(f"added {term_id} ({t.label!r})")
        return
    _pull_fields(b or BLANK, o, t, current, specfile, report)


def _pull_fields(
    base: Term,
    ours: Term,
    theirs: Term,
    current: dict[str, Term],
    specfile: SpecFile,
    report: PullReport,
) -> None:
    term_id = theirs.id
    values = taken_fields(base, ours, theirs, current[term_id], report)
    if values:
        current[term_id] = current[term_id].with_values(**values)
        specfile.update(term_id, {document_key(k): v for k, v in values.items()})


def taken_fields(
    base: Term, ours: Term, theirs: Term, mine: Term, report: PullReport
) -> dict[str, Any]:
    """The field values of `theirs` that a pull takes into the spec's term `mine` (`ours`
    is that term after the term merges), each noted in `report` as taken or kept. Pure."""
    term_id = theirs.id
    values: dict[str, Any] = {}
    for name in SCALAR_FIELDS:
        b, o, t = getattr(base, name), getattr(ours, name), getattr(theirs, name)
        side = three_way(b, o, t)
        if side == "ours":
            continue
        key = document_key(name)
        if side == "theirs":
            values[name] = t
            report.taken.append(f"{term_id}.{key}: {o!r} -> {t!r}")
        else:
            report.kept.append(f"{term_id}.{key}: the spec's {o!r} kept (downstream: {t!r})")
    for name in SET_FIELDS:
        b, t, own = getattr(base, name), getattr(theirs, name), getattr(mine, name)
        wanted = merged_set(b, own, t)
        if wanted != own:
            values[name] = wanted
            change = [f"+{v}" for v in sorted(wanted - own)] + [
                f"-{v}" for v in sorted(own - wanted)
            ]
            report.taken.append(f"{term_id}.{document_key(name)}: {' '.join(change)}")
    return values


def check_pullable(resource: Resource, commit: str | None) -> None:
    """Refuse a pull whose spec file is not a file the user can commit, or whose terms are
    not in it."""
    spec = resource.spec
    if isinstance(spec, TaxonomySpec) and spec.termsFrom is not None:
        raise ReconcilerError(
            f"{resource.address} reads its terms from {spec.termsFrom.file}; pull writes "
            "terms into the spec file only: make the edits in that file (or its generator)"
        )
    if commit is not None:
        raise ReconcilerError(
            f"{resource.address} comes from a git commit; pull writes the spec file, so run it "
            "with --specs pointing at a working copy of the specs"
        )
