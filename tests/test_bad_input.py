"""The bad-input corpus: every broken spec under tests/badinput is refused the same way.

Each case is a file (or a directory of files, for breakages that need two) carrying

    # expect: LINE: FRAGMENT     the error names specs/<file>:LINE: and contains FRAGMENT
    # env: NAME=value            set for the run (treated as a secret: never printed)
    # secret: VALUE              a credential written in the file: never printed either

and must give, through `validate`, `plan` and `apply --yes` of the real CLI: exit 1, the
expected `file:line:` message, no traceback, no secret in the output, and nothing applied:
no destination repository, a state store that is not created by validate/plan and not
changed by apply.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CliResult, Workspace
from tests.gitservers import seed_bare
from tests.reliability.scale import FULL

CORPUS = Path(__file__).resolve().parent / "badinput"
_EXPECT = re.compile(r"^# expect: (?P<line>\d+): (?P<fragment>.+)$")
_ENV = re.compile(r"^# env: (?P<name>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
_SECRET = re.compile(r"^# secret: (?P<value>.+)$")
# `apply --yes` runs on every case (it loads like the others and must also leave the store
# and the world alone). Under `make reliability` (RELIABILITY_SIZE=full) `validate` and `plan`
# run on every case too; in `make test`, `validate` on every fourth case and both on this
# representative subset, to keep the file around a minute with -n 2 (~0.6 s a process).
PLAN_TOO = {
    "dir-dependency-cycle",
    "encoding-latin1.yaml",
    "multi-doc-second-broken.yaml",
    "spec-unknown-field.yaml",
    "spec-url-password-from-env.yaml",
    "yaml-duplicate-key.yaml",
    "yaml-python-tag.yaml",
    "encoding-bom-in-joined-files.yaml",
}


@dataclass(frozen=True)
class Expected:
    """One error line the CLI must print."""

    file: str  # as printed, e.g. specs/bad.yaml
    line: int
    fragment: str

    def found_in(self, stderr: str) -> bool:
        prefix = f"{self.file}:{self.line}: "
        return any(
            text.startswith(prefix) and self.fragment in text[len(prefix) :]
            for text in stderr.splitlines()
        )


@dataclass
class Case:
    """One corpus entry: what to copy into specs/, what to expect, which variables to set."""

    path: Path
    expected: list[Expected] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Case:
        case = cls(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            shown = "specs/" + file.relative_to(CORPUS).as_posix()
            # Decoded leniently: the encoding case is not UTF-8 past its header.
            # (and a byte order mark before the header is not part of it).
            content = file.read_bytes().decode("utf-8", errors="replace").removeprefix("\ufeff")
            for text in content.splitlines():
                if expect := _EXPECT.match(text):
                    case.expected.append(Expected(shown, int(expect["line"]), expect["fragment"]))
                elif env := _ENV.match(text):
                    case.env[env["name"]] = env["value"]
                    case.secrets.append(env["value"])
                elif secret := _SECRET.match(text):
                    case.secrets.append(secret["value"])
        return case

    def install(self, specs: Path) -> None:
        if self.path.is_dir():
            shutil.copytree(self.path, specs / self.path.name)
        else:
            shutil.copyfile(self.path, specs / self.path.name)


CASES = sorted(
    (p for p in CORPUS.iterdir() if p.is_dir() or p.suffix in (".yaml", ".yml")),
    key=lambda p: p.name,
)


@dataclass(frozen=True)
class Seed:
    """A source repository, and a state store that has already applied a good spec."""

    src: Path
    store: Path


@pytest.fixture(scope="session")
def seed(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    """Built once per worker: src/origin.git and the store of one successful apply."""
    root = tmp_path_factory.mktemp("badinput-seed")
    seed_bare(root / "src" / "origin.git", branches=("main", "dev"), commits=2, tags=("v1",))
    workspace = Workspace(root)
    workspace.write_spec(
        "good.yaml",
        """
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {name: seeded}
        spec:
          source: {url: ../src/origin.git}
          destinations: [{url: ../dest/seeded.git}]
        """,
    )
    result = workspace.run("apply", "--yes")
    assert result.code == 0, result.output
    assert (root / "dest" / "seeded.git" / "HEAD").is_file()
    assert _snapshot(workspace.state)["serial"] > 0
    return Seed(root / "src", workspace.state)


def _install_store(store: Path, target: Path) -> None:
    """Put a copy of the seeded store (and its WAL, if one was left) at `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal"):
        if Path(f"{store}{suffix}").exists():
            shutil.copyfile(f"{store}{suffix}", f"{target}{suffix}")


def _snapshot(store: Path) -> dict[str, Any]:
    """What an apply would change: serial, revisions, journal, resources, the lock."""
    connection = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)
    try:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return connection.execute(sql).fetchall()

        return {
            "serial": int(rows("SELECT value FROM meta WHERE key = 'serial'")[0][0]),
            "revisions": rows("SELECT * FROM revisions ORDER BY id"),
            "journal": rows("SELECT * FROM journal ORDER BY 1"),
            "resources": rows("SELECT * FROM resources ORDER BY 1"),
            "history": rows("SELECT COUNT(*) FROM history"),
            "lock": rows("SELECT * FROM lock"),
        }
    finally:
        connection.close()


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Variables the cases use come from the test only, never from the machine."""
    for name in list(os.environ):
        if name.startswith("BADINPUT_"):
            monkeypatch.delenv(name)


def _check_refused(result: CliResult, case: Case, command: str) -> None:
    where = f"{case.path.name} / {command}:\n{result.output}"
    assert result.code == 1, where
    assert "Traceback" not in result.output, where
    assert "internal error" not in result.output, where
    for expected in case.expected:
        assert expected.found_in(result.stderr), f"missing {expected} in {where}"
    assert "problem(s) found; nothing was applied." in result.stderr, where
    for secret in case.secrets:
        assert secret not in result.output, f"a secret was printed: {where}"
    assert "Apply complete" not in result.output, where


@pytest.mark.reliability
def test_corpus_is_large_and_every_case_says_what_it_expects() -> None:
    assert len(CASES) >= 160
    for path in CASES:
        assert Case.load(path).expected, f"{path.name} has no `# expect:` line"


def _commands_before_apply(path: Path) -> list[list[str]]:
    """`validate` and `plan` runs of a case (all of them at full size, a sample otherwise)."""
    commands = []
    if FULL or path.name in PLAN_TOO or CASES.index(path) % 4 == 0:
        commands.append(["validate"])
    if FULL or path.name in PLAN_TOO:
        commands.append(["plan"])
    return commands


@pytest.mark.reliability
@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("path", CASES, ids=[p.name for p in CASES])
def test_bad_input_is_refused(path: Path, ws: Workspace, seed: Seed) -> None:
    case = Case.load(path)
    shutil.copytree(seed.src, ws.root / "src")
    case.install(ws.specs)

    commands = _commands_before_apply(path)
    for command in commands:
        result = ws.run(*command, env=case.env)
        _check_refused(result, case, command[0])
        assert not ws.state.exists(), f"{command[0]} created the state store"

    _install_store(seed.store, ws.state)
    before = _snapshot(ws.state)
    result = ws.run("apply", "--yes", env=case.env)
    _check_refused(result, case, "apply")
    assert _snapshot(ws.state) == before
    assert not (ws.root / "dest").exists()
    assert sorted(p.name for p in ws.root.iterdir()) == ["specs", "src", "state"]


def test_three_independent_errors_are_reported_at_once(ws: Workspace, seed: Seed) -> None:
    shutil.copytree(seed.src, ws.root / "src")
    ws.write_spec(
        "three.yaml",
        """
        apiVersion: reconciler/v1
        kind: Mirror
        metadata:
          name: Three_Errors
        spec:
          source: {url: ../src/origin.git}
          destinations:
            - {url: ../dest/three.git}
          branches: ["main", "release 1"]
          prune: maybe
        """,
    )
    wanted = [
        "specs/three.yaml:4: Mirror/Three_Errors: metadata.name: invalid name 'Three_Errors'",
        "specs/three.yaml:9: Mirror/Three_Errors: spec.branches[1]: invalid glob 'release 1'",
        "specs/three.yaml:10: Mirror/Three_Errors: spec.prune: input should be a valid boolean",
    ]
    for command in (["validate"], ["apply", "--yes"]):
        result = ws.run(*command)
        assert result.code == 1, result.output
        assert "Traceback" not in result.output
        problems = [line for line in result.stderr.splitlines() if line.startswith("specs/")]
        assert len(problems) == 3, result.stderr
        for line, text in zip(problems, wanted, strict=True):
            assert line.startswith(text), result.stderr
        assert "3 problem(s) found; nothing was applied." in result.stderr
    assert not (ws.root / "dest").exists()


def test_a_good_spec_beside_a_bad_one_is_not_applied(ws: Workspace, seed: Seed) -> None:
    shutil.copytree(seed.src, ws.root / "src")
    good = """
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {name: good}
        spec:
          source: {url: ../src/origin.git}
          destinations: [{url: ../dest/good.git}]
        """
    ws.write_spec("good.yaml", good)
    ws.write_spec(
        "zz-bad.yaml", good.replace("name: good", "name: bad").replace("url: ../d", "uri: ../d")
    )
    _install_store(seed.store, ws.state)
    before = _snapshot(ws.state)

    for command in (["validate"], ["plan"], ["apply", "--yes"]):
        result = ws.run(*command)
        assert result.code == 1, result.output
        assert "Traceback" not in result.output
        assert "specs/zz-bad.yaml:6: Mirror/bad: spec.destinations[0].uri: unknown field" in (
            result.stderr
        )
        assert "good" not in result.stderr
    assert _snapshot(ws.state) == before
    assert not (ws.root / "dest").exists()

    # The premise: on its own, the good spec really does apply.
    (ws.specs / "zz-bad.yaml").unlink()
    result = ws.run("apply", "--yes")
    assert result.code == 0, result.output
    assert (ws.root / "dest" / "good.git" / "HEAD").is_file()


def test_an_unreadable_spec_file_is_a_spec_error(ws: Workspace) -> None:
    (ws.specs / "gone.yaml").symlink_to(ws.root / "nowhere.yaml")
    result = ws.run("validate")
    assert result.code == 1, result.output
    assert "Traceback" not in result.output
    assert "specs/gone.yaml: cannot read: No such file or directory" in result.stderr
