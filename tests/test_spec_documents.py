"""The spec document being loaded (SpecDocument) and pydantic's errors as spec problems."""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, field_validator

from reconciler.specs.documents import SpecDocument
from reconciler.specs.problems import validate
from reconciler.specs.yamldocs import read_documents

MIRROR = """\
kind: Mirror
metadata:
  name: core
spec:
  destinations:
    - url: https://a.example/x.git
    - url: ftp://b.example/x.git
"""


class Destination(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str

    @field_validator("url")
    @classmethod
    def _https(cls, url: str) -> str:
        if not url.startswith("https://"):
            raise ValueError(f"Must start with https://, not {url}")
        return url


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    destinations: list[Destination]


def document(text: str, environ: dict[str, str] | None = None) -> SpecDocument:
    (read,) = read_documents(text)
    return SpecDocument(read.data, "specs/m.yaml", read.line, Path("specs"), environ or {})


def problems(doc: SpecDocument) -> list[str]:
    return [str(p) for p in doc.problems]


def test_an_error_in_a_nested_list_field_is_one_line_at_that_field() -> None:
    doc = document(MIRROR)
    assert validate(doc, Spec, ("spec",)) is None
    assert problems(doc) == [
        "specs/m.yaml:7: Mirror/core: spec.destinations[1].url: must start with https://, "
        "not ftp://b.example/x.git"
    ]


def test_an_unknown_field_names_the_valid_ones_and_a_missing_one_is_at_its_mapping() -> None:
    doc = document(MIRROR.replace("- url: ftp", "- uri: ftp"))
    assert validate(doc, Spec, ("spec",)) is None
    assert problems(doc) == [
        "specs/m.yaml:7: Mirror/core: spec.destinations[1].url: field required",
        "specs/m.yaml:7: Mirror/core: spec.destinations[1].uri: unknown field; valid fields: url",
    ]


def test_a_valid_value_is_validated_and_nothing_is_reported() -> None:
    doc = document(MIRROR.replace("ftp://", "https://"))
    spec = validate(doc, Spec, ("spec",))
    assert spec is not None and spec.destinations[1].url == "https://b.example/x.git"
    assert doc.problems == []


def test_expanding_reports_each_bad_value_once_and_keeps_what_was_written() -> None:
    doc = document(
        "kind: Mirror\nmetadata:\n  name: core\nspec:\n"
        "  token: ${TOKEN}\n  key: !vault abc\n  user: ${NAME:-me}\n  port: !!str 22\n"
    )
    assert doc.expand() == {"spec.token", "spec.key"}
    assert doc.data["spec"]["user"] == "me" and doc.data["spec"]["port"] == "22"
    assert doc.written == {("spec", "token"): "${TOKEN}", ("spec", "user"): "${NAME:-me}"}
    assert problems(doc) == [
        "specs/m.yaml:5: Mirror/core: spec.token: environment variable TOKEN is not set "
        "(use ${TOKEN:-default})",
        "specs/m.yaml:6: Mirror/core: spec.key: unsupported YAML tag !vault: use plain values, "
        "and ${VAR} for secrets",
    ]


def test_no_problem_shows_the_value_of_a_variable_the_document_reads() -> None:
    doc = document(MIRROR.replace("ftp://b", "${HOST}"), {"HOST": "ftp://secret-host"})
    hidden = doc.variable_values()
    assert hidden == {"ftp://secret-host"}
    doc.expand()
    validate(doc, Spec, ("spec",))
    doc.mask(hidden)
    assert problems(doc) == [
        "specs/m.yaml:7: Mirror/core: spec.destinations[1].url: must start with https://, "
        "not ***.example/x.git"
    ]
