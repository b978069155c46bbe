"""Fuzzing the spec loader (issue 6): random YAML and mutated valid specs never get past it
with a traceback, and every problem it reports names a file and a line.

Four phases, run by one test so that one row of figures is recorded:

1. random documents: nested mappings, lists and scalars (with the spec's own field names
   among the keys, so they reach deep into the models) dumped as YAML, some inside a valid
   envelope;
2. text mutations of valid specs (the README's examples and specs/): characters and junk
   lines inserted, lines deleted, duplicated, swapped or re-indented, the text truncated,
   bytes that are not UTF-8, byte order marks, tabs, control characters;
3. tree mutations of the same specs: a field deleted, a value replaced by another type,
   two values swapped, an unknown field inserted at any depth;
4. a smaller sample of 2 and 3 through the real CLI (`validate`, `apply --yes` on a store
   that already applied a good spec): exit 1, `file:line:` messages, no traceback, the
   store and the disk unchanged.

Phases 1-3 call what `reconciler validate` calls (engine.planning.load: loading, then the
dependency graph) in-process, with warnings as errors; only SpecError may escape.
Sizes: `make test` runs a short sample, `make reliability` the full one (tests/reliability).
Examples are drawn from RELIABILITY_SEED (a fixed seed by default) with no example
database, so every run tries the same ones.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
import string
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from reconciler.engine.planning import load
from reconciler.engine.workspace import Workspace
from reconciler.errors import SpecError
from tests.conftest import ROOT
from tests.conftest import Workspace as CliWorkspace
from tests.gitservers import seed_bare
from tests.reliability import scale
from tests.reliability.report import record
from tests.reliability.scale import size

CORPUS = Path(__file__).resolve().parent / "badinput"

# The credential the README's Mirror example reads, set for every load.
ENVIRON = {"BACKUP_TOKEN": "fuzz-sentinel-token-0f9a"}
EXAMPLES = {
    "structured": size(120, 1500),
    "text": size(160, 3000),
    "tree": size(160, 3000),
    "cli": size(10, 120),
}


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _seeded(phase: int) -> Any:
    """The same examples on every run (CI failures reproduce); RELIABILITY_SEED explores
    others."""
    return seed(scale.seed() + phase)


def _seeds() -> dict[str, str]:
    """Valid specs: the README's examples of each kind, and the bundled specs/.

    Paths are moved under ../sandbox, so that nothing a mutation leaves valid could ever
    point at a real /srv; the Environment gets the `staging` it requires."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    seeds = {
        f"readme-{i}.yaml": block
        for i, block in enumerate(blocks)
        if "kind:" in block and "spec: {...}" not in block
    }
    seeds["bundled.yaml"] = (ROOT / "specs" / "mirrors.yaml").read_text()
    staging = (
        "\n---\napiVersion: reconciler/v1\nkind: Environment\nmetadata: {name: staging}\n"
        "spec:\n  source: {repo: /srv/git/app.git, ref: main}\n"
        "  target: {path: /srv/deploy/staging}\n"
    )
    seeds = {
        name: text + (staging if "requires: [staging]" in text else "")
        for name, text in seeds.items()
    }
    return {name: text.replace("/srv/", "../sandbox/") for name, text in seeds.items()}


SEEDS = _seeds()
SEED_NAMES = sorted(SEEDS)
FIELD_NAMES = sorted(
    set(re.findall(r"([A-Za-z][A-Za-z]*):", "\n".join(SEEDS.values())))
    | {"apiVersion", "kind", "metadata", "spec", "name", "labels", "dependsOn", "driftPolicy"}
)
KINDS = ["Mirror", "Taxonomy", "Environment", "HealthPolicy"]


@dataclass
class Tally:
    """What the fuzzing did, for the report."""

    examples: Counter[str] = field(default_factory=Counter)
    refused: int = 0
    accepted: int = 0


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def check_loader(files: dict[str, bytes], tally: Tally) -> list[str]:
    """Load `files` as a specs directory the way `validate` does; assert that it either
    loads or raises SpecError whose every problem names one of the files and a line
    inside it. Returns the problems as printed."""
    with tempfile.TemporaryDirectory() as tmp:
        specs = Path(tmp) / "specs"
        lines: dict[str, int] = {}
        for name, data in files.items():
            (specs / name).parent.mkdir(parents=True, exist_ok=True)
            (specs / name).write_bytes(data)
            # an upper bound: YAML also breaks lines at \r, NEL, U+2028 and U+2029
            breaks = (b"\n", b"\r", "\x85".encode(), "\u2028".encode(), "\u2029".encode())
            lines[name] = sum(data.count(b) for b in breaks) + 1
        workspace = Workspace(specs=str(specs), state=Path(tmp) / "state" / "reconciler.db")
        try:
            with _environ(ENVIRON):
                load(workspace)
        except SpecError as error:
            tally.refused += 1
            assert error.problems, "a SpecError without problems"
            for problem in error.problems:
                shown = str(problem)
                assert "\n" not in shown and "\r" not in shown, f"a multi-line message: {shown!r}"
                name = next((n for n in files if problem.file.endswith("specs/" + n)), None)
                assert name is not None, f"names no spec file: {shown}"
                assert problem.line is not None, f"no line: {shown}"
                assert 1 <= problem.line <= lines[name], f"line out of the file: {shown}"
                assert shown.startswith(f"{problem.file}:{problem.line}: "), shown
                assert problem.message.strip(), f"an empty message: {shown}"
                assert ENVIRON["BACKUP_TOKEN"] not in shown, f"a secret was shown: {shown}"
            return [str(p) for p in error.problems]
        tally.accepted += 1
        assert not (Path(tmp) / "state").exists(), "loading created the state directory"
        return []


# ---- strategies


def _dump(data: Any) -> str:
    out = StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None
    yaml.dump(data, out)
    return out.getvalue()


_text = st.text(
    alphabet=st.sampled_from(
        string.ascii_letters + string.digits + " -_./:*?[]{}$@~^!&#%'\"\\\t\n\u00e9\u2603\U0001f600"
    ),
    max_size=24,
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    _text,
    st.sampled_from(
        ["reconciler/v1", *KINDS, "${FUZZ_UNSET}", "${BACKUP_TOKEN}", "${X:-5m}", "5m", "-1s"]
    ),
)
_keys = st.one_of(st.sampled_from(FIELD_NAMES), _text.filter(bool))
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=5)),
    max_leaves=30,
)


@st.composite
def random_documents(draw: st.DrawFn) -> bytes:
    """One file of 1-3 random documents, some with a valid envelope around a random spec."""
    documents = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            documents.append(
                {
                    "apiVersion": "reconciler/v1",
                    "kind": draw(st.sampled_from(KINDS)),
                    "metadata": {"name": draw(st.sampled_from(["a", "b", "fuzz-1"]))},
                    "spec": draw(st.dictionaries(_keys, _values, max_size=6)),
                }
            )
        else:
            documents.append(draw(_values))
    return "---\n".join(_dump(d) for d in documents).encode()


_JUNK = [
    "\t",
    "  ",
    ":",
    "- ",
    "{",
    "}",
    "[",
    "]",
    '"',
    "'",
    "&a ",
    "*a",
    "<<: *a",
    "!vault ",
    "!!binary ",
    "!!python/object/apply:os.system ['true']",
    "%YAML 1.1\n",
    "---\n",
    "...\n",
    "${",
    "${UNSET_FUZZ}",
    "$$",
    "#",
    "? ",
    "|\n",
    ">-\n",
    "\ufeff",
    "\x00",
    "\x07",
    "\u2028",
    "\r",
    "\r\n",
    "key: value\n",
    "spec: []\n",
    "url: ~/x.git",
    "password: hunter2",
]


@st.composite
def text_mutations(draw: st.DrawFn) -> tuple[str, bytes]:
    """A seed spec with 1-4 text edits; sometimes bytes that are not UTF-8."""
    name = draw(st.sampled_from(SEED_NAMES))
    lines = SEEDS[name].splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, max(0, len(lines) - 1)))
        edit = draw(
            st.sampled_from(["insert", "junk-line", "delete", "duplicate", "swap", "indent"])
        )
        line = lines[at] if lines else ""
        if edit == "insert":
            column = draw(st.integers(0, len(line)))
            junk = draw(st.one_of(st.sampled_from(_JUNK), _text))
            lines[at] = line[:column] + junk + line[column:]
        elif edit == "junk-line":
            lines.insert(at, draw(st.one_of(st.sampled_from(_JUNK), _text)) + "\n")
        elif edit == "delete" and lines:
            del lines[at]
        elif edit == "duplicate":
            lines.insert(at, line)
        elif edit == "swap" and lines:
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif edit == "indent":
            lines[at] = " " * draw(st.integers(0, 7)) + line.lstrip(" ")
    data = "".join(lines).encode("utf-8", errors="surrogatepass")
    if draw(st.integers(0, 9)) == 0:
        data = data[: draw(st.integers(0, len(data)))]  # truncated mid-write
    if draw(st.integers(0, 19)) == 0:
        at = draw(st.integers(0, len(data)))
        data = (
            data[:at]
            + draw(st.sampled_from([b"\xff", b"\xc3", b"\xe9", b"\xed\xa0\x80"]))
            + data[at:]
        )
    return name, data


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside plain YAML data."""
    found = [here]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*here, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*here, index))
    return found


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


def _retype(value: Any, draw: st.DrawFn) -> Any:
    """The value as another type: what a user gets by a missing dash, quotes or brackets."""
    choices: list[Any] = [
        None,
        [value],
        {"value": value},
        str(value),
        draw(st.integers(-5, 10**6)),
        draw(st.booleans()),
        draw(st.floats(allow_nan=False)),
        "",
    ]
    if isinstance(value, list) and value:
        choices.append(value[0])
    if isinstance(value, dict) and value:
        choices.append(next(iter(value)))
    return draw(st.sampled_from(choices))


@st.composite
def tree_mutations(draw: st.DrawFn) -> tuple[str, bytes]:
    """A seed spec whose data had 1-3 fields deleted, retyped, swapped or added."""
    name = draw(st.sampled_from(SEED_NAMES))
    documents = list(YAML(typ="safe", pure=True).load_all(SEEDS[name]))
    for _ in range(draw(st.integers(1, 3))):
        document = documents[draw(st.integers(0, len(documents) - 1))]
        paths = [p for p in _paths(document) if p]
        if not paths:
            continue
        path = draw(st.sampled_from(paths))
        parent, last = _at(document, path[:-1]), path[-1]
        edit = draw(st.sampled_from(["delete", "retype", "replace", "swap", "unknown"]))
        if edit == "delete":
            del parent[last]
        elif edit == "retype":
            parent[last] = _retype(parent[last], draw)
        elif edit == "replace":
            parent[last] = draw(_values)
        elif edit == "swap":
            other = draw(st.sampled_from(paths))
            if other[: len(path)] != path and path[: len(other)] != other:
                other_parent = _at(document, other[:-1])
                parent[last], other_parent[other[-1]] = other_parent[other[-1]], parent[last]
        elif isinstance(parent, dict):
            parent[draw(_keys)] = draw(_scalars)
    return name, "---\n".join(_dump(d) for d in documents).encode()


# ---- the CLI sample


@dataclass(frozen=True)
class CliSeed:
    """A store that already applied a good spec, and the source it mirrored."""

    root: Path

    @property
    def store(self) -> Path:
        return self.root / "state" / "reconciler.db"


def _cli_seed(root: Path) -> CliSeed:
    seed_bare(root / "src" / "origin.git", branches=("main",), commits=1)
    workspace = CliWorkspace(root)
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
    shutil.rmtree(root / "specs")
    return CliSeed(root)


def _store_snapshot(store: Path) -> list[Any]:
    connection = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True)
    try:
        return [
            connection.execute(sql).fetchall()
            for sql in (
                "SELECT value FROM meta WHERE key = 'serial'",
                "SELECT * FROM revisions ORDER BY id",
                "SELECT * FROM journal ORDER BY 1",
                "SELECT * FROM resources ORDER BY 1",
                "SELECT * FROM lock",
            )
        ]
    finally:
        connection.close()


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if "state" not in p.parts}


def check_cli(seed: CliSeed, name: str, data: bytes, tally: Tally) -> None:
    """Run `validate` and `apply --yes` on a spec the loader refuses: exit 1, messages with
    file:line, no traceback, nothing applied."""
    if not check_loader({name: data}, Tally()):
        return  # still a valid spec: nothing to refuse (and nothing to run)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(seed.root, root, dirs_exist_ok=True)
        (root / "specs").mkdir()
        (root / "specs" / name).write_bytes(data)
        workspace = CliWorkspace(root)
        before, files = _store_snapshot(workspace.state), _files(root)
        for command in (["validate"], ["apply", "--yes"]):
            tally.examples["cli runs"] += 1
            result = workspace.run(*command, env=ENVIRON)
            where = f"{command[0]} of {name}:\n{data!r}\n{result.output}"
            assert result.code == 1, where
            assert "Traceback" not in result.output, where
            assert "internal error" not in result.output, where
            assert "problem(s) found; nothing was applied." in result.stderr, where
            problems = result.stderr.splitlines()[:-1]
            assert problems, where
            for text in problems:
                assert re.match(rf"^specs/{re.escape(name)}:\d+: ", text), where
            assert ENVIRON["BACKUP_TOKEN"] not in result.output, where
            assert _store_snapshot(workspace.state) == before, where
            assert _files(root) == files, where


# ---- the test


@pytest.mark.reliability
@pytest.mark.timeout(size(600, 3600))
def test_the_loader_survives_fuzzing(tmp_path: Path) -> None:
    tally = Tally()
    started = time.monotonic()

    @_seeded(0)
    @_settings(EXAMPLES["structured"])
    @given(random_documents())
    def structured(data: bytes) -> None:
        tally.examples["structured"] += 1
        check_loader({"random.yaml": data}, tally)

    @_seeded(1)
    @_settings(EXAMPLES["text"])
    @given(text_mutations())
    def text(mutated: tuple[str, bytes]) -> None:
        tally.examples["text"] += 1
        check_loader({mutated[0]: mutated[1]}, tally)

    @_seeded(2)
    @_settings(EXAMPLES["tree"])
    @given(tree_mutations())
    def tree(mutated: tuple[str, bytes]) -> None:
        tally.examples["tree"] += 1
        check_loader({mutated[0]: mutated[1]}, tally)

    seed = _cli_seed(tmp_path / "seed")

    @_seeded(3)
    @_settings(EXAMPLES["cli"])
    @given(st.one_of(text_mutations(), tree_mutations()))
    def cli(mutated: tuple[str, bytes]) -> None:
        tally.examples["cli"] += 1
        check_cli(seed, mutated[0], mutated[1], tally)

    structured()
    text()
    tree()
    cli()

    in_process = sum(tally.examples[k] for k in ("structured", "text", "tree"))
    assert in_process >= 100 and tally.refused > tally.accepted
    record(
        "bad input",
        time.monotonic() - started,
        corpus_files=sum(1 for p in CORPUS.iterdir() if p.is_dir() or p.suffix == ".yaml"),
        fuzzed_examples=in_process + tally.examples["cli"],
        cli_runs=tally.examples["cli runs"],
        tracebacks=0,
        applied=0,
    )
