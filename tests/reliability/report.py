"""Figures of the reliability suites: each suite records one row; `make reliability` prints
them as the README's table.

    python -m tests.reliability.report FILE
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def record(suite: str, seconds: float, **figures: Any) -> None:
    """Append one suite's figures to $RELIABILITY_REPORT (nothing when it is unset)."""
    target = os.environ.get("RELIABILITY_REPORT")
    if not target:
        return
    row = {"suite": suite, "seconds": round(seconds, 1), "figures": figures, "at": time.time()}
    with open(target, "a", encoding="utf-8") as out:  # one short write: safe across xdist workers
        out.write(json.dumps(row, sort_keys=True) + "\n")


def table(rows: list[dict[str, Any]]) -> str:
    """A markdown table, one line per suite (the latest row of each wins)."""
    latest = {row["suite"]: row for row in rows}
    lines = ["| suite | figures | time |", "|---|---|---|"]
    for suite in sorted(latest):
        row = latest[suite]
        figures = ", ".join(f"{k}: {v}" for k, v in row["figures"].items())
        lines.append(f"| {suite} | {figures} | {row['seconds']:.0f} s |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Print the table of a report file."""
    path = Path(argv[0] if argv else "reliability-report.jsonl")
    if not path.exists():
        print(f"{path}: no report (did the suites run?)", file=sys.stderr)
        return 1
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
