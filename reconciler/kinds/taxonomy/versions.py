"""The spec's content as a version: its digest (computed once per spec and name), and
keeping it in the store, its terms in shared chunks (`store.contents`): 100 versions of a
100,000-term taxonomy that differ by one term each store about one copy, not 100."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from reconciler.kinds.base import Context
from reconciler.kinds.taxonomy.changes import describe
from reconciler.kinds.taxonomy.documents import canonical_items, from_content
from reconciler.kinds.taxonomy.model import TaxonomySpec
from reconciler.kinds.taxonomy.terms import Taxonomy
from reconciler.store.contents import (
    add_chunked_version,
    chunk_list,
    chunk_spans,
    chunk_texts,
    digest_of,
    version_content,
    version_manifest,
)


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
    spans = spec.memo(("spans", name), lambda: chunk_spans(content.items))
    head = {"taxonomy": name}
    return add_chunked_version(
        context.store, address, head, "terms", content.items, meta, content.digest, spans
    )


def version_terms(
    address: str, number: int, name: str, spec: TaxonomySpec, context: Context
) -> Taxonomy:
    """The terms of stored version `number`. A version stored in chunks shares most of them
    with the spec's content (an edit changes one or two): those terms are the spec's own,
    and only the other chunks are read and parsed."""
    manifest = version_manifest(context.store, address, number)
    listed = chunk_list(manifest)
    if listed is None:
        return from_content(manifest)
    content = spec_content(name, spec)
    spans = spec.memo(("spans", name), lambda: chunk_spans(content.items))
    ids = spec.memo(("ids", name), lambda: sorted(spec.taxonomy))
    ours = {digest: (start, end) for digest, start, end in spans}
    texts = chunk_texts(context.store, [d for d in listed[1] if d not in ours])
    terms: Taxonomy = {}
    for digest in listed[1]:
        if digest in ours:
            start, end = ours[digest]
            terms.update((i, spec.taxonomy[i]) for i in ids[start:end])
        else:
            terms.update(from_content({listed[0]: json.loads("[" + texts[digest] + "]")}))
    return terms
