"""Two `apply` processes and a `watch` started together, many times (issue 6).

Never two applies at once, detected for real: the Environment's build hook takes a marker
directory with mkdir (atomic) and notes an overlap if another hook holds it; the
revisions' time spans must not overlap either. Every refused apply names the holder, and
the holder it names is one of the other processes of the round. A control run with two
stores (so two lock holders) proves the detector does see an overlap.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import Workspace
from tests.gitservers import WorkRepo, make_bare
from tests.reliability.report import record
from tests.reliability.scale import seed, size

PROBE = """\
import os, sys, time
marker, log, hold = sys.argv[1], sys.argv[2], float(sys.argv[3])
with open(log, "a") as out:
    out.write(f"enter {os.getpid()}\\n")
try:
    os.mkdir(marker)
except FileExistsError:
    with open(log, "a") as out:
        out.write(f"overlap {os.getpid()}\\n")
    time.sleep(hold)
    sys.exit(0)
try:
    time.sleep(hold)
finally:
    os.rmdir(marker)
"""

LOCKED = re.compile(
    r"state is locked by pid (?P<pid>\d+) on (?P<host>\S+) \((?P<command>[^)]+)\) since \S+"
)


@dataclass
class Rig:
    """An app repository, an Environment deploying its main, and the probe's files."""

    ws: Workspace
    app: WorkRepo
    origin: Path
    log: Path

    def new_commit(self, label: str) -> None:
        self.app.commit(label, {"version.txt": f"{label}\n"})
        self.app.push(self.origin, "main:main")

    def overlaps(self) -> list[str]:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return [ln for ln in lines if ln.startswith("overlap")]

    def hook_runs(self) -> int:
        lines = self.log.read_text().splitlines() if self.log.exists() else []
        return sum(ln.startswith("enter") for ln in lines)

    def start(self, *args: str, state: Path | None = None) -> subprocess.Popen[str]:
        prefix = ["--state", str(state)] if state else []
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler", *prefix, *args],
            cwd=self.ws.root,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}


def _rig(ws: Workspace, hold: float = 0.5, specs: str = "specs") -> Rig:
    """The Environment in `ws/SPECS`, its build hook holding the marker `hold` seconds."""
    origin = ws.root / "app.git"
    if not origin.exists():
        make_bare(origin)
    app = WorkRepo.create(ws.root / f"app-{specs}", origin)
    probe = ws.root / "probe.py"
    probe.write_text(PROBE)
    marker, log = ws.root / "applying", ws.root / "probe.log"
    run = f'["{sys.executable}", "{probe}", "{marker}", "{log}", "{hold}"]'
    spec = ws.root / specs / "env.yaml"
    spec.parent.mkdir(exist_ok=True)
    spec.write_text(
        textwrap.dedent(
            f"""
            apiVersion: reconciler/v1
            kind: Environment
            metadata: {{name: prod}}
            spec:
              source: {{repo: {origin}, ref: main}}
              target: {{path: {ws.root / "deploy" / specs}}}
              build: [{{run: {run}, timeout: 30s}}]
              keepReleases: 3
            """
        )
    )
    rig = Rig(ws, app, origin, log)
    rig.new_commit("c0")
    return rig


def _revision_spans(state: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(f"file:{state}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT started_at, finished_at FROM revisions ORDER BY started_at"
        ).fetchall()
    return [(a, b) for a, b in rows]


def test_two_applies_and_a_watch_never_apply_at_once(ws: Workspace) -> None:
    started = time.monotonic()
    rig = _rig(ws)
    rounds = size(3, 50)
    refused = named = 0
    holders: set[str] = set()
    for round_ in range(rounds):
        rig.new_commit(f"round{round_}")
        # Started together, give or take a seeded jitter, so that in some rounds the watch
        # (slower to start) is the one holding the lock.
        commands = [["apply", "--yes"], ["apply", "--yes"], ["watch", "--once", "--listen", "off"]]
        jitter = random.Random(seed() + round_)
        offsets = sorted((jitter.uniform(0, 1.2) * (i < 2), i) for i in range(3))
        processes = []
        origin = time.monotonic()
        for offset, i in offsets:
            time.sleep(max(0.0, origin + offset - time.monotonic()))
            processes.append(rig.start(*commands[i]))
        outputs = [p.communicate(timeout=120) for p in processes]
        pids = {p.pid: p.args[3] for p in processes}  # the pid's command: apply or watch
        holders.update(pids[int(m["pid"])] for _, err in outputs if (m := LOCKED.search(err)))
        for process, (out, err) in zip(processes, outputs, strict=True):
            assert "Traceback" not in out + err
            if process.returncode == 0:
                continue
            # The only failure allowed is a refusal, and it names the real holder.
            assert process.args[3:] == ["apply", "--yes"], out + err
            found = LOCKED.search(err)
            assert found, out + err
            refused += 1
            holder = int(found["pid"])
            assert holder != process.pid and holder in pids, (holder, pids)
            assert found["command"] == pids[holder], (found["command"], pids[holder])
            named += 1
        plan = ws.run("plan", "--detailed-exitcode")
        assert plan.code == 0, plan.output  # whoever applied, the round converged
    spans = _revision_spans(ws.state)
    overlapping = [(a, b) for a, b in itertools.pairwise(spans) if a[1] is None or b[0] < a[1]]
    assert rig.overlaps() == []
    assert overlapping == []
    assert rig.hook_runs() >= rounds  # the detector ran in every round
    record(
        "concurrency: 2 applies + watch",
        time.monotonic() - started,
        rounds=rounds,
        processes=3 * rounds,
        refused=refused,
        refusals_named_holder=named,
        overlaps=len(rig.overlaps()) + len(overlapping),
        holders_seen="+".join(sorted(holders)),
    )


def test_the_overlap_detector_sees_two_holders(ws: Workspace) -> None:
    """Control: two stores mean two locks; their builds overlap, and the probe notices.
    (Separate specs and targets, the same probe; a 5 s hold makes the overlap certain.)"""
    rig = _rig(ws, hold=5, specs="specs")
    _rig(ws, hold=5, specs="specs-b")
    processes = [
        rig.start("--specs", specs, "apply", "--yes", state=ws.root / specs / "reconciler.db")
        for specs in ("specs", "specs-b")
    ]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, out + err
    assert rig.hook_runs() == 2
    assert rig.overlaps(), rig.log.read_text()
