"""cli_start: whole `reconciler` processes that do little, beside `python -c pass`.

`reconciler --help`, `reconciler --version` and `reconciler validate` of a one-Mirror spec,
each alternated with `python -c pass` of the same interpreter (same site, same start-up):
what reconciler adds to a bare interpreter is its imports. The issue's targets are 0.08 s
(`--help`) and 0.10 s (`validate`) where `python -c pass` takes 0.02 s, i.e. 4x and 5x
`python -c pass` in the same run, which is what each row checks (the paired ratio: the
median of the per-run ratios, steadier on a loaded machine). `--version` has no target
of its own; it is held to `--help`'s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.common import Env, alternate, log, reconciler_executable, shell

NAME = "cli_start"
RUNS = 25
PASS_S = 0.02  # `python -c pass` where the absolute targets were set
TARGETS = {"help": 0.08, "version": 0.08, "validate": 0.10}  # seconds, at PASS_S

SPEC = """\
apiVersion: reconciler/v1
kind: Mirror
metadata: {name: one}
spec:
  source: {url: "SRC/one.git"}
  destinations:
    - url: "DST/one.git"
"""


def commands(root: Path) -> dict[str, list[str]]:
    """The three reconciler commands timed, with their small spec under `root`."""
    specs = root / "specs"
    specs.mkdir(parents=True, exist_ok=True)
    (specs / "mirror.yaml").write_text(
        SPEC.replace("SRC", str(root / "src")).replace("DST", str(root / "dst"))
    )
    state = root / "state" / "reconciler.db"
    exe = reconciler_executable()
    return {
        "help": [exe, "--help"],
        "version": [exe, "--version"],
        "validate": [exe, "--specs", str(specs), "--state", str(state), "validate"],
    }


def measure(env: Env, name: str, command: list[str], runs: int) -> dict[str, Any]:
    """One row: `command` alternated with `python -c pass`, `runs` times each."""
    log(f"{name}: {shell(command)}")
    base, rec = alternate(
        runs, lambda: env.run([sys.executable, "-c", "pass"]), lambda: env.run(command)
    )
    paired = statistics.median(r / b for r, b in zip(rec, base, strict=True))
    target = TARGETS[name] / PASS_S
    return {
        "benchmark": f"{NAME} `{name}`",
        "baseline_s": round(statistics.median(base), 3),
        "reconciler_s": round(statistics.median(rec), 3),
        "ratio": round(paired, 3),
        "target": f"<= {target:g}x `python -c pass`",
        "ok": paired <= target,
        "note": f"paired ratio of {runs} runs; {'met' if paired <= target else 'MISSED'} "
        f"({TARGETS[name]:g} s at `python -c pass` = {PASS_S:g} s)",
    }


def run(runs: int = RUNS) -> list[dict[str, Any]]:
    """The `--help`, `--version` and `validate` rows."""
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-cli-") as scratch:
        root = Path(scratch)
        env = Env(root)
        return [measure(env, name, cmd, runs) for name, cmd in commands(root).items()]


def main(argv: list[str] | None = None) -> int:
    """Print the rows; exit 1 when one misses its target."""
    parser = argparse.ArgumentParser(prog="python -m bench.cli_start", description=__doc__)
    parser.add_argument("--runs", type=int, default=RUNS, help="timed runs per side")
    args = parser.parse_args(argv)
    rows = run(args.runs)
    for row in rows:
        print(row)
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
