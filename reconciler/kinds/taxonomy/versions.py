"""The spec's content as a version: its digest (computed once per spec and name), and
keeping it in the store, its terms in shared chunks (`store.contents`): 100 versions of a
100,000-term taxonomy that differ by one term each store about one copy, not 100."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.kinds.base import Context
from reconciler.kinds.taxonomy.changes import describe
from reconciler.kinds.taxonomy.documents import canonical_items, from_content
from reconciler.kinds.taxonomy.model import TaxonomySpec
from reconciler.kinds.taxonomy.terms import Taxonomy
from reconciler.store.contents import add_chunked_version, digest_of, version_content


@dataclass(frozen=True)
class SpecContent:
    """The spec's terms (after the term merges) as a stored version would hold them."""

    digest: str  # canonical_digest(document(name, spec.taxonomy))
    items: list[str]  # each term's canonical JSON, in id order


def spec_content(name: str, spec: TaxonomySpec) -> SpecContent:
    """The spec's content, computed once per spec."""

    def compute() -> SpecContent:
        items = canonical_items(spec.taxonomy)
        return SpecContent(digest_of({"taxonomy": name}, "terms", items), items)

    return spec.memo(("content", name), compute)


def record_version(
    address: str,
    name: str,
    spec: TaxonomySpec,
    context: Context,
    known: tuple[str | None, Taxonomy | None] = (None, None),
) -> int:
    """Keep the spec's terms as the next version of the taxonomy (unless they are the
    latest); its number. `known` is a version's (digest, terms) already read (a target's
    base), so the latest need not be read again to say what changed since."""
    content = spec_content(name, spec)
    latest = context.store.versions(address)
    if latest and latest[0]["digest"] == content.digest:
        return int(latest[0]["version"])
    terms = spec.taxonomy
    meta: dict[str, Any] = {"terms": len(terms), "spec_commit": context.spec_commit}
    previous: Taxonomy = {}
    if latest and known[1] is not None and latest[0]["digest"] == known[0]:
        previous = known[1]
    elif latest:
        previous = from_content(version_content(context.store, address, latest[0]["version"]))
    changes = describe(previous, terms)
    meta["changes"] = {category: len(ids) for category, ids in changes.items()}
    return add_chunked_version(
        context.store, address, {"taxonomy": name}, "terms", content.items, meta, content.digest
    )
