"""The report the suites write is the README's table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_the_report_prints_the_latest_row_of_each_suite(tmp_path: Path) -> None:
    report = tmp_path / "report.jsonl"
    rows = [
        {"suite": "crash", "seconds": 10.0, "figures": {"kills": 5}},
        {"suite": "crash", "seconds": 12.0, "figures": {"kills": 100, "lost": 0}},
    ]
    report.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shown = subprocess.run(
        [sys.executable, "-m", "tests.reliability.report", str(report)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "| crash | kills: 100, lost: 0 | 12 s |" in shown
    assert "kills: 5" not in shown
