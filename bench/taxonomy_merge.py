"""taxonomy_merge: the three-way merge of a taxonomy with 1% of its terms edited on each side.

At 10,000, 30,000 and 100,000 terms, side by side in one run:

- baseline: a plain DeepDiff of the same two versions (the spec's and the target's,
  as dicts by id) — what describing the difference with a generic diff costs;
- reconciler: `merging.merge(base, ours, theirs)`, the whole three-way merge including
  the structural checks (references, cycles, aliases) of the result.

Each row's `target` is a time budget in seconds for the merge: 2 s at 100,000 terms (the
issue's target) and proportionally less for the smaller sizes, so a quadratic step would
miss the small budgets or the large one. Run alone: `python -m bench.taxonomy_merge`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from reconciler.kinds.taxonomy.merging import merge
from reconciler.kinds.taxonomy.terms import Taxonomy, Term
from reconciler.kinds.taxonomy.validating import problems

NAME = "taxonomy_merge"
SIZES = (10_000, 30_000, 100_000)
EDITED = 0.01
BUDGET_AT_100K = 2.0


def build(size: int, seed: int = 7) -> Taxonomy:
    """A valid taxonomy: a tree (parents point at earlier terms), aliases and related sets."""
    rng = random.Random(seed)
    terms: Taxonomy = {}
    ids = [f"t{n:06d}" for n in range(size)]
    for n, term_id in enumerate(ids):
        parent = ids[rng.randrange(n)] if n and rng.random() < 0.95 else None
        aliases = frozenset({f"alias {n}"}) if n % 3 == 0 else frozenset()
        related = frozenset({ids[rng.randrange(size)]}) - {term_id} if n % 4 == 0 else frozenset()
        description = f"What {term_id} covers" if n % 5 == 0 else None
        terms[term_id] = Term(term_id, f"Term {n}", parent, aliases, related, description)
    return terms


def edit(base: Taxonomy, side: str, seed: int) -> Taxonomy:
    """`base` with 1% of its terms edited: relabelled, described, aliased, moved, or added."""
    rng = random.Random(seed)
    edited = dict(base)
    ids = list(base)
    for number, term_id in enumerate(rng.sample(ids, int(len(ids) * EDITED))):
        term = edited[term_id]
        choice = number % 5
        if choice == 0:
            edited[term_id] = term.with_values(label=f"{term.label} ({side})")
        elif choice == 1:
            edited[term_id] = term.with_values(description=f"edited by {side}")
        elif choice == 2:
            edited[term_id] = term.with_values(aliases=term.aliases | {f"{side} {term_id}"})
        elif choice == 3 and term.parent is not None:
            edited[term_id] = term.with_values(parent=base[term.parent].parent)
        else:
            new_id = f"{side}-{term_id}"
            edited[new_id] = Term(new_id, f"New {number} ({side})", term_id)
    return edited


def _timed(function: Callable[[], Any], runs: int) -> tuple[float, Any]:
    samples, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), result


def measure(size: int, runs: int = 3) -> dict[str, Any]:
    """One row: DeepDiff of ours vs theirs, and the three-way merge, at `size` terms."""
    from deepdiff import DeepDiff

    base = build(size)
    ours, theirs = edit(base, "spec", 1), edit(base, "target", 2)
    ours_docs = {i: t.to_dict() for i, t in ours.items()}
    theirs_docs = {i: t.to_dict() for i, t in theirs.items()}
    baseline_runs = 1 if size >= 100_000 else runs
    baseline, _ = _timed(lambda: DeepDiff(ours_docs, theirs_docs), baseline_runs)
    merged_s, result = _timed(lambda: merge(base, ours, theirs, "spec"), runs)
    assert not problems(result.terms)
    budget = BUDGET_AT_100K * size / 100_000
    note = (
        f"{len(result.terms)} terms out, {len(result.conflicts)} conflicts resolved; "
        f"{merged_s / size * 1e6:.2f} us per term; budget {budget:.1f} s "
        f"{'met' if merged_s <= budget else 'MISSED'}"
    )
    return {
        "benchmark": f"{NAME}_{size // 1000}k",
        "baseline_s": round(baseline, 3),
        "reconciler_s": round(merged_s, 3),
        "ratio": round(merged_s / baseline, 3),
        "target": budget,
        "note": note,
    }


def run(sizes: tuple[int, ...] = SIZES, runs: int = 3) -> list[dict[str, Any]]:
    """Every size's row, smallest first."""
    return [measure(size, runs) for size in sizes]


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a markdown table."""
    lines = [
        "| benchmark | DeepDiff (s) | merge (s) | ratio | budget (s) | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['benchmark']} | {r['baseline_s']:.3f} | {r['reconciler_s']:.3f} "
            f"| {r['ratio']:.3f} | {r['target']:.1f} | {r['note']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the table; exit 1 when a merge misses its budget."""
    parser = argparse.ArgumentParser(prog="python -m bench.taxonomy_merge", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    args = parser.parse_args(argv)
    rows = run(tuple(args.sizes), args.runs)
    print(table(rows))
    return 0 if all(r["reconciler_s"] <= r["target"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
