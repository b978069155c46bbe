"""The fast YAML reader (issue 14): libyaml's events built into the values ruamel.yaml's
round trip gave, lines included; whatever it does not read alike goes to the general reader.

Each case compares the two readers on the same text (yamlfast against yamlruamel, the
reader of before), or loads a big spec through the real loader and CLI.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import SpecError
from reconciler.kinds.registry import default_registry
from reconciler.specs import yamlfast, yamlruamel
from reconciler.specs.loading import load_directory
from reconciler.specs.yamldocs import read_documents
from reconciler.specs.yamltree import Map, Seq, YamlSyntaxError
from tests.conftest import Workspace

CORPUS = Path(__file__).resolve().parent / "badinput"


def shape(value: Any, seen: dict[int, int] | None = None) -> Any:
    """A comparable picture of read values: types, lines, tags, keys and shared nodes."""
    seen = {} if seen is None else seen
    if isinstance(value, Map | Seq) and id(value) in seen:
        return ("shared", seen[id(value)])
    if isinstance(value, Map):
        seen[id(value)] = len(seen)
        items = [(shape(k, seen), value.lines[k], shape(v, seen)) for k, v in value.items()]
        return ("map", value.line, value.tag, items)
    if isinstance(value, Seq):
        seen[id(value)] = len(seen)
        return (
            "seq",
            value.line,
            value.tag,
            list(zip(value.lines, [shape(v, seen) for v in value], strict=False)),
        )
    for kind in (bool, int, float, str):
        if isinstance(value, kind):
            return (kind.__name__, repr(kind(value)) if kind is float else kind(value))
    return (type(value).__name__, repr(value))


def both(text: str) -> tuple[Any, Any]:
    """(fast, general) readings of `text`; the fast one None when it leaves the text."""
    try:
        fast = [(shape(d.data), d.line, d.too_big) for d in yamlfast.read_documents(text)]
    except yamlfast.Unsupported:
        fast = None
    try:
        general: Any = [(shape(d.data), d.line, d.too_big) for d in yamlruamel.read_documents(text)]
    except YamlSyntaxError as error:
        general = ("error", str(error), error.line)
    return fast, general


SCALARS = [
    *["yes", "no", "on", "off", "y", "n", "Yes", "NO", "True", "TRUE", "true", "False"],
    *["false", "~", "null", "Null", "NULL", "0o17", "017", "09", "0x1F", "0xFF_FF", "0b101"],
    *["-0b1", "+12", "-0", "1_000", "1__0", "_1", "0o8", "0_7", "1e3", "1.0e3", "1E3", "1e+3"],
    *["1.5", "1.", "-.5", "0.", "1_0.5", "685.230_15e+03", ".inf", "-.Inf", "+.inf", ".NaN"],
    *["1:20", "190:20:30.15", "1-2", "0xg", "00", "-00.5", "1,000", "tru", "nULL", "v1.2"],
    *["main", "release/*", "x=y", "'quoted'", '"double \\t"', "''", "a b c"],
]


@pytest.mark.parametrize("scalar", SCALARS)
def test_a_scalar_reads_as_the_general_reader_read_it(scalar: str) -> None:
    for text in (f"k: {scalar}\n", f"{scalar}: v\n", f"- {scalar}\n"):
        fast, general = both(text)
        assert fast is not None, text
        assert fast == general, text
    assert math.isnan(read_documents("k: .nan\n")[0].data["k"])


def test_yaml_1_2_values_are_kept() -> None:
    data = read_documents("a: yes\nb: on\nc: 0o17\nd: 017\ne: 1_000\nf: true\ng: ~\n")[0].data
    assert data == {"a": "yes", "b": "on", "c": 15, "d": 17, "e": 1000, "f": True, "g": None}


STRUCTURES = [
    "a: &x [1, 2]\nb: *x\nc:\n  - &y {k: v}\n  - *y\n  - &z s\n  - *z\n",
    "? a\n: b\n? c\n",
    "k: |\n  text\n  more\nj: >-\n  folded\n",
    "- - - a\n    - b\n  - c\n",
    "a: 'q''x'\nb: \"\\u00e9\"\n",
    "{a: 1, b: [x, y], c: {d: e}}\n",
    "# c\na: 1 # c\n# c\nb: 2\n...\n---\nc: 3\n",
    "---\n---\na: 1\n---\n",
    "\ufeffa: 1\nb:\n  - c\n",
    "a: 1\r\nb:\r\n  - 2\r\n",
]


@pytest.mark.parametrize("text", STRUCTURES)
def test_a_structure_reads_with_the_same_lines_and_sharing(text: str) -> None:
    fast, general = both(text)
    assert fast is not None
    assert fast == general


LEFT_TO_THE_GENERAL_READER = [
    "k: !!str 1.0\n",  # a tag
    "k: !vault x\n",
    "%YAML 1.2\n---\nk: v\n",  # a directive
    "base: &b {x: 1}\nm:\n  <<: *b\n",  # a merge key
    "k: 2020-01-01\n",  # a timestamp
    "k: v\nk: w\n",  # a duplicate key
    "a: &x 1\nb: &x 2\n",  # an anchor defined twice
    "a: *nowhere\n",  # an undefined alias
    "a: &r [*r]\n",  # a recursive alias
    "? [a]\n: v\n",  # a key that is a list
    "k: a\tb\n",  # a tab
    "k: [1, 2\n",  # a syntax error
    "a: 1\n\ufeffb: 2\n",  # a byte order mark inside
    "k: " + "[" * 101 + "]" * 101 + "\n",  # nesting past the limit
]


@pytest.mark.parametrize("text", LEFT_TO_THE_GENERAL_READER)
def test_what_the_fast_reader_does_not_read_alike_is_left_to_the_general_one(text: str) -> None:
    with pytest.raises(yamlfast.Unsupported):
        yamlfast.read_documents(text)


def test_mutated_specs_read_alike_or_are_left_to_the_general_reader() -> None:
    # Text mutations of the bad-input corpus (as the loader fuzzing makes): wherever the
    # fast reader gives values, they are the general reader's.
    rng = random.Random(14)
    seeds = [p.read_text() for p in sorted(CORPUS.glob("*.yaml")) if _utf8(p)]
    junk = [":", "-", " ", "\n", "'", '"', "{", "}", "[", "]", ",", "#", "&a ", "*a", "?"]
    junk += ["|", ">", "  ", "- ", ": ", "\r\n", "...", "---", "&b", "*b", "!", "%"]
    same = 0
    for _ in range(400):
        text = rng.choice(seeds)
        for _ in range(rng.randint(1, 3)):
            lines = text.split("\n")
            if rng.random() < 0.5:
                at = rng.randrange(len(text) + 1)
                text = text[:at] + rng.choice(junk) + text[at:]
            else:
                at = rng.randrange(len(lines))
                lines[at] = " " * rng.randint(1, 3) + lines[at]
                text = "\n".join(lines)
        fast, general = both(text)
        if fast is not None:
            assert fast == general, text
            same += 1
    assert same > 100  # most mutations still read fast


def _utf8(path: Path) -> bool:
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return False
    return True


def billion_laughs() -> str:
    levels = ["    a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for before, name in zip("abcdefgh", "bcdefghi", strict=True):
        levels.append(f"    {name}: &{name} [" + ", ".join([f"*{before}"] * 9) + "]")
    return (
        "apiVersion: reconciler/v1\nkind: Mirror\nmetadata:\n  name: laughs\n  labels:\n"
        + "\n".join(levels)
        + "\nspec:\n  source: {url: ../src/core.git}\n  destinations: [{url: ../d.git}]\n"
    )


def test_an_alias_bomb_is_still_refused_by_the_fast_reader_at_the_same_alias() -> None:
    fast, general = both(billion_laughs())
    assert fast is not None and fast == general
    assert fast[0][2] == (11, "aliases (*name) repeat more than 100000 values")
    big = "x" * 1_000_000
    text = f"a: &big {big}\nb: [" + ", ".join(["*big"] * 20) + "]\n"
    (document,) = yamlfast.read_documents(text)
    assert document.too_big == (2, "aliases (*name) repeat more than 10000000 bytes")


def taxonomy(size: int, bad: int | None = None) -> str:
    """A Taxonomy of `size` terms, one line per field; term `bad` with an invalid id."""
    lines = ["apiVersion: reconciler/v1", "kind: Taxonomy", "metadata:", "  name: big", "spec:"]
    lines.append("  terms:")
    for n in range(size):
        term = "not valid!" if n == bad else f"t{n:06d}"
        lines += [f"    - id: {term}", f"      label: Term {n}"]
        if n:
            lines.append(f"      parent: t{n // 2:06d}")
    lines += ["  targets:", "    - {repo: ../site.git, path: taxonomy.json}", ""]
    return "\n".join(lines)


def test_an_error_deep_in_a_big_spec_is_at_its_line(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "tax.yaml").write_text(taxonomy(20_000, bad=17_000))
    with pytest.raises(SpecError) as raised:
        load_directory(specs, default_registry().spec_models(), display_root="specs")
    (problem,) = raised.value.problems
    # 6 lines of envelope, then 3 a term (the first has no parent): term n at 3n + 6.
    assert (problem.file, problem.line) == ("specs/tax.yaml", 3 * 17_000 + 6)
    assert problem.field == "spec.terms[17000].id"


def test_a_60000_term_taxonomy_validates(ws: Workspace) -> None:
    # More values than the alias limit, and no alias: nothing is refused.
    (ws.specs / "tax.yaml").write_text(taxonomy(60_000))
    result = ws.run("validate", timeout=300)
    assert result.code == 0, result.output
    assert "1 resources valid" in result.output
