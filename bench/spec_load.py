"""spec_load: reading YAML specs, against the parse floor (PyYAML's `CSafeLoader` loading the
same files in a process of its own), side by side in one run.

Rows:

- `spec_load_taxonomy_100k`: one Taxonomy spec of 100,000 terms written in the YAML (two
  targets, JSON and YAML), `reconciler validate` vs `python -c` a CSafeLoader load of the
  file; target <= 1.5x;
- `spec_load_3000_docs`: 3,000 Mirror documents in 1,000 files (3 a file), `reconciler
  validate` vs a CSafeLoader load of every file; target <= 3x;
- `spec_load_memory_10k` / `_100k`: peak RSS of `validate` at 10,000 and 100,000 terms
  (MB, from getrusage of the child), beside CSafeLoader's; the issue's budget is 400 MB,
  growing linearly.

Every spec is generated deterministically. Run alone: `python -m bench spec_load`.
"""

from __future__ import annotations

import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import Env, alternate, log, reconciler_command

NAME = "spec_load"
TERMS = 100_000
DOCUMENTS, PER_FILE = 3_000, 3
TAXONOMY_TARGET, DOCUMENTS_TARGET, MEMORY_BUDGET_MB = 1.5, 3.0, 400
RUNS = 3

# The baseline: the same files loaded by PyYAML's C loader, nothing else.
_CSAFE = (
    "import sys, yaml\n"
    "for path in sys.argv[1:]:\n"
    "    with open(path, encoding='utf-8') as f:\n"
    "        list(yaml.load_all(f.read(), Loader=yaml.CSafeLoader))\n"
)
# Peak RSS of one child (KB), measured by a parent of its own so nothing else counts.
_PEAK = (
    "import resource, subprocess, sys\n"
    "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def taxonomy_spec(size: int, seed: int = 7) -> str:
    """A valid Taxonomy of `size` terms in block style (a tree, aliases, related terms)."""
    rng = random.Random(seed)
    ids = [f"t{n:06d}" for n in range(size)]
    lines = ["apiVersion: reconciler/v1", "kind: Taxonomy", "metadata:", "  name: big"]
    lines += ["spec:", "  terms:"]
    for n, term in enumerate(ids):
        lines += [f"    - id: {term}", f"      label: Term {n}"]
        if n and rng.random() < 0.95:
            lines.append(f"      parent: {ids[rng.randrange(n)]}")
        if n % 3 == 0:
            lines.append(f"      aliases: [alias {n}]")
        related = ids[rng.randrange(size)]
        if n % 4 == 0 and related != term:
            lines.append(f"      related: [{related}]")
        if n % 5 == 0:
            lines.append(f'      description: "What {term} covers"')
    lines += [
        "  targets:",
        "    - {repo: ../site.git, branch: main, path: taxonomy/index.json, format: json}",
        "    - {repo: ../search.git, branch: main, path: index/taxonomy.yaml, format: yaml}",
        "",
    ]
    return "\n".join(lines)


def mirror_files(specs: Path, documents: int = DOCUMENTS, per_file: int = PER_FILE) -> list[Path]:
    """`documents` Mirror documents, `per_file` to a file (`---` between them)."""
    specs.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, documents, per_file):
        docs = [
            f"apiVersion: reconciler/v1\nkind: Mirror\nmetadata:\n  name: m{n:05d}\n"
            f"  labels: {{team: t{n % 17}}}\nspec:\n  source: {{url: ../src/r{n:05d}.git}}\n"
            f"  destinations:\n    - url: ../dst/r{n:05d}.git\n  branches: [main, 'release/*']\n"
            for n in range(start, min(start + per_file, documents))
        ]
        path = specs / f"m{start // per_file:04d}.yaml"
        path.write_text("---\n".join(docs))
        paths.append(path)
    return paths


def _row(
    name: str, base: list[float], rec: list[float], target: float, note: str
) -> dict[str, Any]:
    baseline, reconciler = statistics.median(base), statistics.median(rec)
    paired = statistics.median(r / b for r, b in zip(rec, base, strict=True))
    verdict = "met" if reconciler / baseline <= target else "MISSED"
    return {
        "benchmark": name,
        "baseline_s": round(baseline, 3),
        "reconciler_s": round(reconciler, 3),
        "ratio": reconciler / baseline,
        "target": f"<= {target:g}x ({verdict})",
        "note": f"{note}; paired ratio {paired:.2f}; runs {len(rec)}",
    }


def _validate_pair(env: Env, root: Path, files: list[Path]) -> tuple[list[str], list[str]]:
    specs, state = root / "specs", root / "state" / "r.db"
    validate = reconciler_command(specs, state, "validate")
    csafe = [sys.executable, "-c", _CSAFE, *map(str, files)]
    return validate, csafe


def _time_pair(env: Env, validate: list[str], csafe: list[str], runs: int) -> Any:
    return alternate(runs, lambda: env.run(csafe), lambda: env.run(validate))


def _peak_mb(env: Env, command: list[str]) -> float:
    done = env.run([sys.executable, "-c", _PEAK, *command])
    return int(done.stdout.decode().split()[-1]) / 1024


def run(runs: int = RUNS) -> list[dict[str, Any]]:
    """The four rows (see the module's docstring)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-spec-load-") as temporary:
        root = Path(temporary)
        env = Env(root)
        peaks: dict[int, tuple[float, float]] = {}
        for size in (10_000, TERMS):
            where = root / f"tax{size}"
            (where / "specs").mkdir(parents=True)
            spec = where / "specs" / "taxonomy.yaml"
            spec.write_text(taxonomy_spec(size))
            validate, csafe = _validate_pair(env, where, [spec])
            log(f"{size} terms ({spec.stat().st_size / 1e6:.1f} MB): peak memory")
            peaks[size] = (_peak_mb(env, csafe), _peak_mb(env, validate))
            if size == TERMS:
                log(f"{size} terms: validate vs CSafeLoader")
                base, rec = _time_pair(env, validate, csafe, runs)
                rows.append(
                    _row(
                        f"{NAME}_taxonomy_100k",
                        base,
                        rec,
                        TAXONOMY_TARGET,
                        f"`validate` of {size:,} terms in YAML vs a CSafeLoader load (s)",
                    )
                )
        where = root / "mirrors"
        files = mirror_files(where / "specs")
        validate, csafe = _validate_pair(env, where, files)
        log(f"{DOCUMENTS} Mirror documents in {len(files)} files: validate vs CSafeLoader")
        base, rec = _time_pair(env, validate, csafe, runs)
        note = f"`validate` of {DOCUMENTS:,} Mirror documents in {len(files)} files (s)"
        rows.append(_row(f"{NAME}_3000_docs", base, rec, DOCUMENTS_TARGET, note))
        for size, (floor, peak) in peaks.items():
            rows.append(
                {
                    "benchmark": f"{NAME}_memory_{size // 1000}k",
                    "baseline_s": f"{floor:.0f} MB",
                    "reconciler_s": f"{peak:.0f} MB",
                    "ratio": peak / floor,
                    "target": f"<= {MEMORY_BUDGET_MB} MB "
                    f"({'met' if peak <= MEMORY_BUDGET_MB else 'MISSED'})",
                    "note": f"peak RSS of `validate` at {size:,} terms vs CSafeLoader's",
                }
            )
    return rows
