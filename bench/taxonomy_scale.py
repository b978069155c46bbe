"""taxonomy_scale: a Taxonomy of 10,000 and 100,000 terms kept in `termsFrom: terms.json`,
written to 2 targets (a JSON and a YAML file, each in its own bare repository).

Per size, side by side in one run (reconciler as its real CLI, each baseline one process):

- validate: `reconciler validate` / `python -c 'json.load(open("terms.json"))'` (the parse
  floor of the terms file);
- no-op plan: `reconciler plan` after an apply / one python process that parses
  terms.json and reads both target files from git (`git cat-file`, the JSON one parsed):
  what any plan must read;
- apply after one edit: one term relabelled in terms.json, `reconciler apply --yes` / the
  same edit written the way a script would: python renders both files, then per target
  `git commit -qam` and `git push` in a working clone;
- peak RSS of each reconciler command (`wait4`), against the issue's 400 MB.

Targets (the issue's): validate <= 2 s, no-op plan <= 3 s, apply <= 5 s at 100,000
terms; peak memory <= 400 MB; linear from 10k to 100k (the rows' per-term figures).
Run alone: `python -m bench.taxonomy_scale [--sizes 10000 100000] [--runs 3]`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Env, log, reconciler_command
from bench.taxonomy_merge import build

NAME = "taxonomy_scale"
SIZES = (10_000, 100_000)
LIMITS = {"validate": 2.0, "plan": 3.0, "apply": 5.0}  # seconds at 100,000 terms
MEMORY_MB = 400
CPU: list[float] = []  # CPU seconds of each measured command, in order

SPEC = """\
apiVersion: reconciler/v1
kind: Taxonomy
metadata: {name: big}
spec:
  termsFrom: {file: terms.json, format: json}
  targets:
    - {repo: ../repos/site.git, path: taxonomy.json}
    - {repo: ../repos/search.git, path: index/taxonomy.yaml}
"""

PLAN_FLOOR = """\
import json, subprocess, sys
json.load(open(sys.argv[1], encoding="utf-8"))
json.loads(subprocess.run(["git", "-C", sys.argv[2], "cat-file", "blob", "main:taxonomy.json"],
    capture_output=True, check=True).stdout)
subprocess.run(["git", "-C", sys.argv[3], "cat-file", "blob", "main:index/taxonomy.yaml"],
    capture_output=True, check=True)
"""

RENDER = """\
import json, sys
data = json.load(open(sys.argv[1], encoding="utf-8"))
document = {"taxonomy": "big", "terms": sorted(data, key=lambda t: t["id"])}
text = json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\\n"
open(sys.argv[2], "w", encoding="utf-8").write(text)
lines = ["taxonomy: big", "terms:"]
for term in document["terms"]:
    dash = "  - "
    for key in sorted(term):
        value = term[key]
        if isinstance(value, list):
            lines.append(f"{dash}{key}:")
            lines += [f"      - {json.dumps(v)}" for v in value]
        else:
            lines.append(f"{dash}{key}: {json.dumps(value)}")
        dash = "    "
open(sys.argv[3], "w", encoding="utf-8").write("\\n".join(lines) + "\\n")
"""


def measured(env: Env, command: list[str], cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one command, which must succeed; its CPU seconds
    (with the children it waited for: git) are kept in `CPU`."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env.vars,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None
    stderr = process.stderr.read()
    _pid, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    CPU.append(usage.ru_utime + usage.ru_stime)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 2):
        raise RuntimeError(f"{command[:4]} exited {process.returncode}: {stderr[-2000:]!r}")
    return elapsed, usage.ru_maxrss / 1024


def write_terms(path: Path, size: int) -> list[dict[str, Any]]:
    """`size` terms as a JSON list (the bench's tree: parents, aliases, related sets)."""
    terms = [term.to_dict() for term in build(size).values()]
    path.write_text(json.dumps(terms, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return terms


def setup(env: Env, root: Path, size: int) -> dict[str, Path]:
    """Specs, two target repositories, working clones for the baseline, an applied store."""
    specs, repos = root / "specs", root / "repos"
    specs.mkdir(parents=True)
    (specs / "big.yaml").write_text(SPEC)
    write_terms(specs / "terms.json", size)
    paths = {"specs": specs, "state": root / "state" / "r.db"}
    for name in ("site", "search"):
        repo = repos / f"{name}.git"
        env.git("init", "-q", "--bare", repo)
        paths[name] = repo
    env.run(reconciler_command(specs, paths["state"], "apply", "--yes"))
    for name in ("site", "search"):  # the baseline's own repositories, with the same files
        bare, clone = root / "baseline" / f"{name}.git", root / "baseline" / name
        env.git("clone", "-q", "--bare", paths[name], bare)
        env.git("clone", "-q", bare, clone)
        paths[f"{name}-clone"] = clone
    return paths


def edit(terms_file: Path, number: int) -> None:
    """Relabel one term of the file (a different label every time)."""
    terms = json.loads(terms_file.read_text(encoding="utf-8"))
    terms[len(terms) // 2]["label"] = f"Edited {number}"
    terms_file.write_text(json.dumps(terms, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def measure(size: int, runs: int, root: Path) -> list[dict[str, Any]]:
    """The rows of one size."""
    env = Env(root)
    log(f"{NAME}: building {size} terms")
    paths = setup(env, root, size)
    specs, state = paths["specs"], paths["state"]
    terms = specs / "terms.json"
    python = sys.executable
    samples: dict[str, list[tuple[float, float]]] = {}

    def both(name: str, base: list[str], ours: list[str], before: Any = None) -> None:
        for index in range(runs + 1):  # the first is a warm-up
            pair = []
            for side, command in (("baseline", base), ("reconciler", ours))[:: 1 - 2 * (index % 2)]:
                if before is not None:
                    before(side, index)
                pair.append((side, measured(env, command, cwd=root)))
                if index and side == "reconciler":
                    samples.setdefault(f"{name}:cpu", []).append((CPU[-1], 0.0))
            if index:
                for side, result in pair:
                    samples.setdefault(f"{name}:{side}", []).append(result)
            log(f"{name} {size}: " + ", ".join(f"{s} {r[0]:.2f} s" for s, r in pair))

    both(
        "validate",
        [python, "-c", f"import json; json.load(open({str(terms)!r}))"],
        reconciler_command(specs, state, "validate"),
    )
    both(
        "plan",
        [python, "-c", PLAN_FLOOR, str(terms), str(paths["site"]), str(paths["search"])],
        reconciler_command(specs, state, "plan", "--detailed-exitcode"),
    )
    counter = iter(range(1_000_000))

    def before_apply(_side: str, _index: int) -> None:
        edit(terms, next(counter))

    site, search = paths["site-clone"], paths["search-clone"]
    script = (
        f"{python} -c {_quote(RENDER)} {terms} {site / 'taxonomy.json'} "
        f"{search / 'index' / 'taxonomy.yaml'}"
        f" && git -C {site} commit -qam edit && git -C {site} push -q"
        f" && git -C {search} commit -qam edit && git -C {search} push -q"
    )
    both(
        "apply",
        ["sh", "-c", script],
        reconciler_command(specs, state, "apply", "--yes"),
        before_apply,
    )
    return [_row(size, name, samples) for name in ("validate", "plan", "apply")]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def _row(size: int, name: str, samples: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    base = statistics.median(t for t, _ in samples[f"{name}:baseline"])
    ours = statistics.median(t for t, _ in samples[f"{name}:reconciler"])
    peak = max(m for _, m in samples[f"{name}:reconciler"])
    cpu = statistics.median(c for c, _ in samples[f"{name}:cpu"])
    limit = LIMITS[name] * size / 100_000 if size < 100_000 else LIMITS[name]
    ok = ours <= LIMITS[name] and peak <= MEMORY_MB
    note = (
        f"{ours / size * 1e6:.1f} us/term; CPU {cpu:.2f} s; peak RSS {peak:.0f} MB; "
        f"limit {LIMITS[name]:g} s at 100k ({'met' if ok else 'MISSED'})"
    )
    return {
        "benchmark": f"{NAME}_{size // 1000}k_{name}",
        "baseline_s": round(base, 3),
        "reconciler_s": round(ours, 3),
        "ratio": round(ours / base, 3),
        "target": f"<= {limit:.2g} s" if size >= 100_000 else "linear",
        "note": note,
    }


def run(sizes: tuple[int, ...] = SIZES, runs: int = 3) -> list[dict[str, Any]]:
    """Every size's rows, smallest first; the largest's notes add the cost per term from
    the smallest size to it (start-up left out: what linear means here)."""
    rows: list[dict[str, Any]] = []
    for size in sorted(sizes):
        root = Path(tempfile.mkdtemp(prefix=f"reconciler-{NAME}-"))
        try:
            rows += measure(size, runs, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        for first, last in zip(rows[:3], rows[-3:], strict=True):
            step = (last["reconciler_s"] - first["reconciler_s"]) / (large - small) * 1e6
            last["note"] += f"; {step:.1f} us per term added from {small // 1000}k"
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the rows as a table."""
    parser = argparse.ArgumentParser(prog="python -m bench.taxonomy_scale", description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="timed runs per side")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES))
    args = parser.parse_args(argv)
    from bench.__main__ import row_table

    print(row_table(run(tuple(args.sizes), args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
