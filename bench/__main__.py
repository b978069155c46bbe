"""Run the benchmarks: `python -m bench [NAME ...] [--runs N] [--keep] [--check]`.

Prints each benchmark's report, then a markdown table, and writes both to
bench/results/latest.md (git-ignored).
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    cli_start,
    environment_deploy,
    incremental,
    incremental_sync,
    initial_mirror,
    many_refs,
    noop_plan,
    spec_load,
    store_scale,
    taxonomy_merge,
    taxonomy_scale,
    watch_latency,
)
from bench.common import Result

BENCHMARKS: dict[str, Callable[..., Result]] = {
    noop_plan.NAME: noop_plan.run,
    incremental_sync.NAME: incremental_sync.run,
    initial_mirror.NAME: initial_mirror.run,
    environment_deploy.NAME: environment_deploy.run,
    environment_deploy.NAME_WATCH: environment_deploy.run_watch,
    many_refs.NAME_CREATE: many_refs.run_create,
    many_refs.NAME_UPDATE: many_refs.run_update,
}
# Benchmarks that measure several sizes or non-time quantities report rows of their own.
ROW_BENCHMARKS: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "taxonomy_merge": taxonomy_merge.run,
    taxonomy_scale.NAME: taxonomy_scale.run,
    "watch_latency": watch_latency.run,
    cli_start.NAME: cli_start.run,
    store_scale.NAME: store_scale.run,
    spec_load.NAME: spec_load.run,
    incremental.NAME: incremental.run,
}


def row_table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of row benchmarks (units are in each row's note)."""
    lines = [
        "| benchmark | baseline | reconciler | ratio | target | note |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        ratio = "" if r.get("ratio") is None else f"{r['ratio']:.3f}"
        lines.append(
            f"| {r['benchmark']} | {r.get('baseline_s', '')} | {r.get('reconciler_s', '')} "
            f"| {ratio} | {r.get('target', '')} | {r.get('note', '')} |"
        )
    return "\n".join(lines) + "\n"


RESULTS = Path(__file__).resolve().parent / "results" / "latest.md"


def table(results: list[Result]) -> str:
    """The markdown summary table."""
    lines = [
        "| benchmark | baseline (s) | reconciler (s) | ratio | paired ratio | target | result |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.baseline_s:.3f} | {r.reconciler_s:.3f} | {r.ratio:.2f} "
            f"| {r.paired_ratio:.2f} | <= {r.target:g} | {'met' if r.ok else 'MISSED'} |"
        )
    return "\n".join(lines) + "\n"


def machine() -> str:
    """One line describing where the numbers come from."""
    git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False)
    return (
        f"{platform.node()}, {os.cpu_count()} cores, {git.stdout.strip()}, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    )


def load() -> str:
    """The 1/5/15-minute load averages: other work on the machine skews both sides."""
    return " / ".join(f"{value:.2f}" for value in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks; 1 with --check when a ratio misses its target."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run: {', '.join([*BENCHMARKS, *ROW_BENCHMARKS])}",
    )
    parser.add_argument("--runs", type=int, help="timed runs per side (default: per benchmark)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args(argv)
    everything = [*BENCHMARKS, *ROW_BENCHMARKS]
    chosen = args.names or everything
    unknown = [name for name in chosen if name not in everything]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r} (choose from {', '.join(everything)})")

    # A regular `pip install` byte-compiles the package; an editable one under
    # PYTHONDONTWRITEBYTECODE=1 would recompile every changed module at each start.
    compileall.compile_dir(Path(__file__).resolve().parent.parent / "reconciler", quiet=1)
    root = Path(tempfile.mkdtemp(prefix="reconciler-bench-"))
    load_before = load()
    results: list[Result] = []
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for name in [n for n in chosen if n in ROW_BENCHMARKS]:
            print(f"== {name} ...", flush=True)
            rows += ROW_BENCHMARKS[name]()
        for name in [n for n in chosen if n in BENCHMARKS]:
            print(f"== {name}: building data and running under {root / name} ...", flush=True)
            begin = time.perf_counter()
            extra = {} if args.runs is None else {"runs": args.runs}
            result = BENCHMARKS[name](root / name, **extra)
            results.append(result)
            print(result.report(root), flush=True)
            print(f"({name} took {time.perf_counter() - begin:.0f} s in all)\n", flush=True)
    finally:
        if args.keep:
            print(f"data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    summary = table(results) + ("\n" + row_table(rows) if rows else "")
    print(summary)
    text = "\n".join(
        [
            "# reconciler benchmarks",
            "",
            f"Machine: {machine()}; total {time.perf_counter() - started:.0f} s; "
            f"load average before {load_before}, after {load()}.",
            "ratio: reconciler / baseline of the median wall times (lower is better; the target",
            "applies to it); paired ratio: median of the per-run ratios, each run of both sides",
            "back to back (steadier when other work loads the machine).",
            "",
            summary,
            f"`$ROOT` below is the temporary directory of that run ({root}).",
            "",
            *(r.report(root) for r in results),
        ]
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(f"wrote {RESULTS}")
    return 1 if args.check and not all(r.ok for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
