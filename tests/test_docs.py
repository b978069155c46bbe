"""The README documents every command and option, and the bundled specs validate."""

from __future__ import annotations

import re

import click
import pytest

from reconciler.cli.main import cli
from tests.conftest import ROOT, Workspace

README = (ROOT / "README.md").read_text()


def commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        if isinstance(command, click.Group):
            found += commands(command, f"{prefix}{name} ")
        else:
            found.append((f"{prefix}{name}", command))
    return found


def test_every_command_and_option_is_in_the_readme() -> None:
    missing = []
    for name, command in commands(cli):
        if f"`{name}" not in README:
            missing.append(name)
        for param in command.params:
            for option in getattr(param, "opts", []):
                if option.startswith("--") and option not in ("--help",) and option not in README:
                    missing.append(f"{name} {option}")
    assert missing == []


def test_the_bundled_specs_validate(ws: Workspace) -> None:
    result = ws.run("--specs", str(ROOT / "specs"), "validate")
    assert result.code == 0, result.output
    assert re.search(r"^2 resources valid", result.stdout)


@pytest.mark.parametrize("kind", ["Mirror", "Environment"])
def test_the_readme_examples_validate(ws: Workspace, kind: str) -> None:
    example = README.split(f"### {kind}\n\n```yaml\n", 1)[1].split("```", 1)[0]
    ws.write_spec("example.yaml", example)
    result = ws.run("validate", env={"BACKUP_TOKEN": "t0ken-value"})
    if "requires: [staging]" in example:  # the example names an environment it depends on
        assert result.code == 1 and "depends on Environment/staging" in result.stderr
        ws.write_spec(
            "staging.yaml",
            example.replace("production", "staging").replace("  requires: [staging]\n", ""),
        )
        result = ws.run("validate")
    assert result.code == 0, result.output
