"""A short command imports only what it uses (issue 14, CLI start): `--help` lists the lazy
commands from summaries kept beside their import paths, equal to their own; `validate`
of a Mirror imports neither rich nor the other kinds. Each check runs in a fresh process."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap

import click

from reconciler import __version__
from reconciler.cli.main import LazyGroup, cli
from tests.conftest import ROOT, Workspace, ok

# Modules `--help` must not import: every kind, the engine and the heavy libraries.
NOT_FOR_HELP = (
    "pydantic",
    "rich",
    "ruamel",
    "dulwich",
    "sqlite3",
    "reconciler.engine",
    "reconciler.kinds",
    "reconciler.health",
    "reconciler.watch",
    "reconciler.store",
    "reconciler.git",
    "reconciler.specs",
    "reconciler.cli.watch",
    "reconciler.cli.taxonomy",
)


def imported_after(script: str) -> dict[str, object]:
    """Run `script` in a fresh interpreter; it leaves its answer in `answer`, and the
    modules it imported are returned beside it."""
    code = textwrap.dedent(script) + (
        "\nimport json, sys\n"
        "sys.__stdout__.write(json.dumps({'answer': answer, 'modules': sorted(sys.modules)}))\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert process.returncode == 0, process.stderr
    result: dict[str, object] = json.loads(process.stdout.splitlines()[-1])
    return result


def loaded(modules: object, prefixes: tuple[str, ...]) -> list[str]:
    assert isinstance(modules, list)
    return [m for m in modules if m.split(".")[0] in prefixes or m.startswith(prefixes)]


def test_help_imports_no_kind_no_engine_and_no_pydantic_or_rich() -> None:
    result = imported_after(
        """
        import contextlib, io
        from reconciler.cli.main import run
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = run(["--help"])
        answer = [code, out.getvalue()]
        """
    )
    code, text = result["answer"]  # type: ignore[misc]
    assert code == 0 and "watch" in text and "Taxonomy helpers." in text
    assert loaded(result["modules"], NOT_FOR_HELP) == []


def test_the_lazy_summaries_list_as_the_commands_themselves_do() -> None:
    # The same `--help`, once from the summaries, once with every lazy command imported.
    result = imported_after(
        """
        import sys
        import click
        from click.testing import CliRunner
        from reconciler.cli.main import LazyGroup, cli
        before = CliRunner().invoke(cli, ["--help"], terminal_width=80).output
        lazy_imported = [m for m in sys.modules if m in ("reconciler.cli.watch",
                         "reconciler.cli.taxonomy")]
        context = click.Context(cli)
        for name in LazyGroup.lazy:
            cli.get_command(context, name)
        after = CliRunner().invoke(cli, ["--help"], terminal_width=80).output
        answer = [before, after, lazy_imported]
        """
    )
    before, after, lazy_imported = result["answer"]  # type: ignore[misc]
    assert lazy_imported == []
    assert before == after


def test_each_summary_is_its_command_docstring_summary() -> None:
    context = click.Context(cli)
    for name, lazy in LazyGroup.lazy.items():
        command = cli.get_command(context, name)
        assert command is not None and command.help is not None
        assert command.short_help is None  # click shortens the help, as for the stand-in
        assert lazy.summary == command.help.partition("\n\n")[0], name
        module, _, attribute = lazy.target.partition(":")
        assert getattr(sys.modules[module], attribute) is command


def test_a_lazy_command_still_runs_and_shows_its_own_help(ws: Workspace) -> None:
    result = ok(ws.run("metrics", "--help"))
    assert result.stdout.startswith("Usage: reconciler metrics [OPTIONS]")
    assert "[prometheus|json]" in result.stdout


def test_validate_of_a_mirror_imports_neither_rich_nor_the_other_kinds(ws: Workspace) -> None:
    ws.write_spec(
        "mirror.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: one}}
        spec:
          source: {{url: "{ws.root}/src/one.git"}}
          destinations:
            - url: "{ws.root}/dst/one.git"
        """,
    )
    result = imported_after(
        f"""
        import contextlib, io
        from reconciler.cli.main import run
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = run(["--specs", {str(ws.specs)!r}, "--state", {str(ws.state)!r}, "validate"])
        answer = [code, out.getvalue()]
        """
    )
    code, text = result["answer"]  # type: ignore[misc]
    assert code == 0
    assert text.startswith("1 resources valid (sha256:") and text.endswith(").\n")
    others = ("rich", "dulwich", "reconciler.kinds.taxonomy", "reconciler.kinds.environment")
    assert loaded(result["modules"], (*others, "reconciler.health", "reconciler.watch")) == []
    # And the line is the one a real process prints into a pipe.
    assert ok(ws.run("validate")).stdout == text


def test_the_version_is_the_installed_distributions() -> None:
    assert __version__ == importlib.metadata.version("reconciler")
    process = subprocess.run(
        [sys.executable, "-m", "reconciler", "--version"], capture_output=True, text=True
    )
    assert process.stdout == f"reconciler, version {__version__}\n"


def test_apply_on_a_terminal_draws_its_progress_with_the_console_made_late(
    ws: Workspace,
) -> None:
    # A rich Progress takes the stderr console as a context manager: the real one is given.
    ok(ws.run("init", "specs"))
    leader, follower = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "--yes"],
        cwd=ws.root,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=120) == 0
    text = b"".join(chunks).decode(errors="replace")
    assert "internal error" not in text
    assert "applying" in text and "Apply complete (revision 1)" in text
