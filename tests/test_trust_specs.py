"""Issue 12, items 7, 15 and 23: specs are read whole, bounded and as the user laid them out.

- watch never acts on a spec file caught between two writes, nor forgets a resource whose
  spec was missing on one load only;
- YAML aliases are limited by what they expand to, not by the size of what is written;
- a linked spec directory loads like a linked spec file (a loop is an error), and a git
  specs source reads its links as links.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CliResult, Workspace
from tests.gitservers import git, refs_of, seed_bare
from tests.test_watch import Watch, watching  # noqa: F401 (fixture)


def mirror_doc(name: str, destination: str | None = None) -> str:
    """One Mirror document of src/core.git; its destination last, on its own line."""
    return (
        "apiVersion: reconciler/v1\nkind: Mirror\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n  source: {url: ../src/core.git}\n  destinations:\n"
        f"    - url: {destination or f'../dst/{name}.git'}\n"
    )


def history_events(ws: Workspace, address: str) -> list[str]:
    with sqlite3.connect(ws.state) as db:
        rows = db.execute("SELECT entry FROM history WHERE address = ?", (address,)).fetchall()
    return [str(json.loads(entry).get("event")) for (entry,) in rows]


def write_in_two(path: Path, text: str, cut: int, pause: float) -> None:
    """Save `text` as an editor that truncates, writes part, then the rest would."""
    with path.open("w") as handle:
        handle.write(text[:cut])
        handle.flush()
        os.fsync(handle.fileno())
        time.sleep(pause)
        handle.write(text[cut:])


# 7: watch never reads a spec half-written


def test_watch_never_forgets_a_resource_whose_spec_was_missing_between_two_writes(
    ws: Workspace,
    watching: Callable[..., Watch],  # noqa: F811
) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    spec = ws.specs / "pair.yaml"
    full = mirror_doc("one") + "---\n" + mirror_doc("two")
    spec.write_text(full)
    watch = watching()
    watch.wait_until(lambda: "outcome=success" in watch.text())
    assert refs_of(ws.root / "dst" / "two.git")
    done = len(watch.lines("reconcile"))

    # The first write is valid YAML without Mirror/two; the rest comes 0.5 s later (longer
    # than the 50 ms debounce, shorter than the 2 s a forget waits to be confirmed).
    write_in_two(spec, full, len(mirror_doc("one")), pause=0.5)
    watch.wait_until(lambda: len(watch.lines("reconcile")) > done)
    time.sleep(3)  # a held forget's follow-up reconcile, had there been one
    assert "forgotten" not in history_events(ws, "Mirror/two"), watch.text()
    assert "forgotten" not in watch.text()
    assert all("outcome=success" in line for line in watch.lines("reconcile")[done:])
    assert watch.stop() == 0
    plan = ws.run("plan", "--detailed-exitcode")
    assert plan.code == 0, plan.output

    # A spec really removed is forgotten, once the second load agrees.
    spec.write_text(mirror_doc("one"))
    deadline = time.monotonic() + 20
    watch = watching()
    while "forgotten" not in history_events(ws, "Mirror/two"):
        assert time.monotonic() < deadline, watch.text()
        time.sleep(0.1)
    assert watch.stop() == 0


def test_watch_never_acts_on_a_value_cut_short_by_a_save_in_two_writes(
    ws: Workspace,
    watching: Callable[..., Watch],  # noqa: F811
) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    spec = ws.specs / "two.yaml"
    spec.write_text(mirror_doc("two"))
    watch = watching()
    watch.wait_until(lambda: "outcome=success" in watch.text())
    done = len(watch.lines("reconcile"))

    # The edit moves the destination to dst/two-new.git; cut after `../dst/two-n`, the file
    # is a valid spec naming another destination, for 30 ms (less than the debounce).
    edited = mirror_doc("two", "../dst/two-new.git")
    write_in_two(spec, edited, edited.index("two-n") + len("two-n"), pause=0.03)
    watch.wait_until(lambda: (ws.root / "dst" / "two-new.git" / "HEAD").exists())
    watch.wait_until(lambda: len(watch.lines("reconcile")) > done)
    time.sleep(0.5)
    assert not (ws.root / "dst" / "two-n").exists(), watch.text()
    assert "two-n\n" not in watch.text() and "two-n " not in watch.text()
    assert watch.stop() == 0
    assert ws.run("plan", "--detailed-exitcode").code == 0


# 15: the YAML alias limit counts what is built, not values


def test_a_large_spec_without_aliases_validates(ws: Workspace) -> None:
    # 100,001 values and no alias: the old count of every value refused it (as it refused
    # a 26,000-term taxonomy); a flow list parses three times faster than as many terms.
    globs = ", ".join(f"b{n}" for n in range(100_001))
    (ws.specs / "big.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Mirror\nmetadata: {name: big}\nspec:\n"
        "  source: {url: ./src.git}\n  destinations: [{url: ./dst.git}]\n"
        f"  branches: [{globs}]\n"
    )
    result = ws.run("validate", timeout=300)
    assert result.code == 0, result.output
    assert "1 resources valid" in result.output


def run_limited(ws: Workspace, *args: str, memory: int) -> tuple[CliResult, int]:
    """The CLI in a child with at most `memory` bytes of address space; and its peak RSS
    (bytes), measured by a parent of its own so that nothing else is counted."""
    script = (
        "import resource, subprocess, sys\n"
        "def limit():\n"
        f"    resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory}))\n"
        "done = subprocess.run(sys.argv[1:], preexec_fn=limit, capture_output=True, text=True)\n"
        "sys.stdout.write(done.stdout)\n"
        "sys.stderr.write(done.stderr)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "sys.stderr.write(f'\\npeak-rss-kb={peak}\\n')\n"
        "sys.exit(done.returncode)\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    process = subprocess.run(
        [sys.executable, "-c", script, sys.executable, "-m", "reconciler", *args],
        cwd=ws.root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    stderr, _, peak = process.stderr.rpartition("\npeak-rss-kb=")
    return CliResult(process.returncode, process.stdout, stderr), int(peak) * 1024


def test_a_big_string_aliased_a_thousand_times_is_refused_at_its_line_in_bounded_memory(
    ws: Workspace,
) -> None:
    big = "x" * 1_000_000
    (ws.specs / "big.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Mirror\n"
        f"metadata:\n  name: big\n  labels: {{a: &big {big}}}\n"
        "spec:\n  source: {url: ../src/core.git}\n  destinations: [{url: ../dst/big.git}]\n"
        "  branches: [" + ", ".join(["*big"] * 1000) + "]\n"
    )
    result, peak = run_limited(ws, "validate", memory=1024**3)
    assert result.code == 1, result.output
    expected = "specs/big.yaml:9: Mirror/big: aliases (*name) repeat more than 10000000 bytes"
    assert result.stderr.startswith(expected), result.output
    assert "Traceback" not in result.output and "internal error" not in result.output
    assert peak < 200 * 1024**2, f"peak RSS {peak // 1024**2} MB"
    print(f"peak RSS of validate on 1 MB x 1,000 aliases: {peak / 1024**2:.0f} MB")


def test_a_billion_laughs_is_refused_at_its_line(ws: Workspace) -> None:
    levels = ["    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for before, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"    {name}: &{name} [" + ", ".join([f"*{before}"] * 9) + "]")
    (ws.specs / "laughs.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Mirror\nmetadata:\n  name: laughs\n  labels:\n"
        + "\n".join(levels)
        + "\nspec:\n  source: {url: ../src/core.git}\n  destinations: [{url: ../d.git}]\n"
    )
    result, peak = run_limited(ws, "validate", memory=1024**3)
    assert result.code == 1, result.output
    # The alias that crosses 100,000 values: the first `*e` of line 11 (f).
    assert result.stderr.startswith(
        "specs/laughs.yaml:11: Mirror/laughs: aliases (*name) repeat more than 100000 values"
    ), result.output
    assert peak < 200 * 1024**2


# 23: spec directories behave like files


def write_mirror(path: Path, name: str, root: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"apiVersion: reconciler/v1\nkind: Mirror\nmetadata: {{name: {name}}}\n"
        f"spec:\n  source: {{url: {root}/src/core.git}}\n"
        f"  destinations: [{{url: {root}/dst/{name}.git}}]\n"
    )


def test_a_linked_spec_directory_loads_like_a_linked_file(ws: Workspace) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    write_mirror(ws.root / "team" / "specs" / "team.yaml", "team", ws.root)  # outside specs/
    write_mirror(ws.root / "single.yaml", "single", ws.root)
    (ws.specs / "team").symlink_to("../team/specs")
    (ws.specs / "single.yaml").symlink_to("../single.yaml")
    result = ws.run("validate")
    assert result.code == 0 and "2 resources valid" in result.output, result.output
    applied = ws.run("apply", "--yes")
    assert applied.code == 0, applied.output
    assert refs_of(ws.root / "dst" / "team.git") and refs_of(ws.root / "dst" / "single.git")
    assert ws.run("plan", "--detailed-exitcode").code == 0


def test_a_directory_link_loop_is_an_error_naming_the_link(ws: Workspace) -> None:
    write_mirror(ws.specs / "sub" / "one.yaml", "one", ws.root)
    (ws.specs / "sub" / "again").symlink_to("..")
    result = ws.run("validate")
    assert result.code == 1, result.output
    assert (
        "specs/sub/again: directory link loops: it leads back to specs, a directory it is in"
        in result.stderr
    ), result.output
    assert "Traceback" not in result.output
    assert ws.run("plan").code == 1


def specs_repository(ws: Workspace, links: dict[str, str]) -> str:
    """A bare repository whose main holds specs/own.yaml, shared/linked.yaml and `links`
    (path -> target text); its `--specs` text."""
    work = ws.root / "infra"
    git("init", "--quiet", "-b", "main", str(work))
    write_mirror(work / "specs" / "own.yaml", "own", ws.root)
    write_mirror(work / "shared" / "linked.yaml", "linked", ws.root)
    for name, target in links.items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).symlink_to(target)
    git("-C", str(work), "add", "-A")
    git("-C", str(work), "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "specs")
    git("clone", "--quiet", "--bare", str(work), str(ws.root / "infra.git"))
    return f"file://{ws.root}/infra.git#main:specs"


def test_a_git_specs_source_with_an_absolute_link_loads_and_watch_applies_it(
    ws: Workspace,
) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    source = specs_repository(ws, {"specs/notes": "/etc/passwd"})  # not a spec: left out
    result = ws.run("--specs", source, "validate")
    assert result.code == 0 and "1 resources valid" in result.output, result.output
    once = ws.run("--specs", source, "watch", "--once", "--listen", "off")
    assert "internal error" not in once.output and "Traceback" not in once.output
    assert refs_of(ws.root / "dst" / "own.git"), once.output
    assert ws.run("--specs", source, "plan", "--detailed-exitcode").code == 0


def test_a_spec_named_link_out_of_a_git_specs_source_is_a_one_line_error(
    ws: Workspace,
) -> None:
    source = specs_repository(ws, {"specs/hosts.yaml": "/etc/hosts", "specs/up.yaml": "../../x"})
    result = ws.run("--specs", source, "validate")
    assert result.code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if "outside the commit" in line]
    assert len(errors) == 2, result.output
    assert errors[0].startswith(f"file://{ws.root}/infra.git@"), result.output
    assert ":specs/hosts.yaml: a link to '/etc/hosts', outside the commit" in errors[0]
    assert ":specs/up.yaml: a link to '../../x', outside the commit" in errors[1]
    assert "Traceback" not in result.output and "internal error" not in result.output


def test_a_link_inside_a_git_specs_source_is_followed_within_the_commit(
    ws: Workspace,
) -> None:
    seed_bare(ws.root / "src" / "core.git", branches=("main",), commits=1)
    source = specs_repository(
        ws,
        {"specs/linked.yaml": "../shared/linked.yaml", "specs/more": "../shared"},
    )
    result = ws.run("--specs", source, "validate")
    assert result.code == 1, result.output  # shared/linked.yaml reached twice
    assert "duplicate address" in result.output and "Traceback" not in result.output
    work = str(ws.root / "infra")
    git("-C", work, "rm", "--quiet", "specs/more")
    git("-C", work, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "one link")
    git("-C", work, "push", "--quiet", str(ws.root / "infra.git"), "main")
    result = ws.run("--specs", source, "plan")
    assert result.code == 0 and "Mirror/linked" in result.output, result.output
    assert "Mirror/own" in result.output
