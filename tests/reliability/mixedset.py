"""The mixed set the crash suite applies: mirrors to several destinations, taxonomies to
several targets, and environments with real build / activate / verify hooks.

Everything is local (bare repositories under one directory) so a kill lands in reconciler's
own work, not in a network wait. `World` builds the set, makes new work between kills, and
checks the invariants a user relies on after a crash.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import sqlite3
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dulwich.errors import NotGitRepository
from dulwich.repo import Repo
from ruamel.yaml import YAML, YAMLError

from tests.gitservers import WorkRepo, git, make_bare

PY = sys.executable
DEST_ORGS = ("dest-a", "dest-b", "dest-c")
ENVIRONMENTS = ("staging", "production")  # production requires staging, blue-green

BUILD = """\
import os, pathlib
pathlib.Path("BUILT").write_text(os.environ["RECONCILER_SHA"] + "\\n")
"""
# While deploy/hold exists, activation waits (its pid in deploy/holding): lets a test kill
# an apply at a known point of a deploy.
ACTIVATE = """\
import os, pathlib, time
hold = pathlib.Path.cwd().parents[2] / "hold"
if hold.exists():
    (hold.parent / "holding").write_text(str(os.getpid()))
    while hold.exists():
        time.sleep(0.05)
pathlib.Path("ACTIVATED").write_text(os.environ["RECONCILER_SHA"] + "\\n")
"""
# The verify check fails unless the build ran for this very commit; it leaves a mark that
# the release passed verification (what "a working release" means in this suite).
VERIFY = """\
import os, pathlib, sys
built = pathlib.Path("BUILT")
if not built.is_file() or built.read_text().strip() != os.environ["RECONCILER_SHA"]:
    sys.exit("BUILT is missing or belongs to another commit")
pathlib.Path("VERIFIED").write_text(os.environ["RECONCILER_SHA"] + "\\n")
"""


@dataclass(frozen=True)
class Target:
    """One taxonomy target: a bare repository (or a working copy) and a file in it."""

    taxonomy: str
    repo: Path
    path: str
    working_copy: bool = False

    @property
    def format(self) -> str:
        return "yaml" if self.path.endswith(".yaml") else "json"

    def read(self) -> bytes | None:
        """The file at the branch tip (on disk for a working copy), or None if absent."""
        if self.working_copy:
            file = self.repo / self.path
            return file.read_bytes() if file.exists() else None
        shown = git("show", f"main:{self.path}", cwd=self.repo, check=False)
        return shown.stdout.encode() if shown.returncode == 0 else None


def _yaml() -> YAML:
    return YAML(typ="safe", pure=True)


def _dump_yaml(document: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = _yaml()
    writer.default_flow_style = False
    writer.dump(document, out)
    return out.getvalue()


def parse_target(target: Target, data: bytes) -> dict[str, Any]:
    """The document of a target file; raises ValueError for anything but a whole document."""
    text = data.decode("utf-8")
    if not text.endswith("\n"):
        raise ValueError("no trailing newline: the file was cut short")
    document = json.loads(text) if target.format == "json" else _yaml().load(text)
    if not isinstance(document, dict) or document.get("taxonomy") != target.taxonomy:
        raise ValueError(f"not a document of taxonomy {target.taxonomy}")
    if not isinstance(document.get("terms"), list):
        raise ValueError("no list of terms")
    return document


@dataclass
class World:
    """The repositories, specs and helpers of one crash run."""

    root: Path
    mirrors: int
    rng: random.Random
    sources: list[WorkRepo] = field(default_factory=list)
    app: WorkRepo | None = None
    targets: list[Target] = field(default_factory=list)
    terms: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    downstream: list[tuple[Target, str]] = field(default_factory=list)  # edits to keep
    round: int = 0

    @property
    def specs(self) -> Path:
        return self.root / "specs"

    @property
    def state(self) -> Path:
        return self.root / "state" / "reconciler.db"

    # -- building ------------------------------------------------------------------------
    def build(self) -> None:
        """Sources with history, empty target repositories, the app, and every spec."""
        self.specs.mkdir(parents=True, exist_ok=True)
        for index in range(self.mirrors):
            bare = make_bare(self.root / "src" / f"m{index:02d}.git")
            work = WorkRepo.create(self.root / "work" / f"m{index:02d}", bare_remote=bare)
            for n in range(3):
                work.commit(f"m{index} commit {n}", {"file.txt": f"m{index} {n}\n"})
            work.tag("v1")
            work.branch("release/1", "HEAD", checkout=False)
            work.push(bare)
            self.sources.append(work)
        self._build_app()
        for name in ("tax-a", "tax-b"):
            self.terms[name] = [
                {"id": "root", "label": f"Root of {name}"},
                {"id": "root.one", "label": "One", "parent": "root", "aliases": ["first"]},
                {"id": "root.two", "label": "Two", "parent": "root", "related": ["root.one"]},
            ]
            base = self.root / "tx" / name
            for n, path in enumerate(("index.json", "index.yaml", "nested/terms.json")):
                make_bare(base / f"t{n}.git")
                self.targets.append(Target(name, base / f"t{n}.git", path))
            work = WorkRepo.create(base / "work")  # a checked-out working copy as a target
            work.commit("start", {"README": "docs\n"})
            self.targets.append(Target(name, work.path, "taxonomy/index.json", True))
        self.write_specs()

    def _build_app(self) -> None:
        bare = make_bare(self.root / "src" / "app.git")
        self.app = WorkRepo.create(self.root / "work" / "app", bare_remote=bare)
        files = {"build.py": BUILD, "activate.py": ACTIVATE, "verify.py": VERIFY}
        self.app.commit("app 0", {**files, "VERSION": "0\n"})
        self.app.push(bare)

    def write_specs(self) -> None:
        """Write every spec from the current desired state."""
        mirrors = []
        for index in range(self.mirrors):
            destinations = "".join(
                f"    - {{url: {self.root / org / f'm{index:02d}.git'}}}\n" for org in DEST_ORGS
            )
            mirrors.append(
                "apiVersion: reconciler/v1\nkind: Mirror\n"
                f"metadata: {{name: m{index:02d}}}\n"
                f"spec:\n  source: {{url: {self.root / 'src' / f'm{index:02d}.git'}}}\n"
                f"  destinations:\n{destinations}"
            )
        (self.specs / "mirrors.yaml").write_text("---\n".join(mirrors))
        documents = [self._taxonomy(name) for name in sorted(self.terms)]
        (self.specs / "taxonomies.yaml").write_text("---\n".join(documents))
        (self.specs / "environments.yaml").write_text(
            "---\n".join(self._environment(name) for name in ENVIRONMENTS)
        )

    def _taxonomy(self, name: str) -> str:
        spec = {
            "apiVersion": "reconciler/v1",
            "kind": "Taxonomy",
            "metadata": {"name": name},
            "spec": {
                "terms": self.terms[name],
                "targets": [
                    {"repo": str(t.repo), "branch": "main", "path": t.path}
                    for t in self.targets
                    if t.taxonomy == name
                ],
            },
        }
        return json.dumps(spec, indent=2) + "\n"  # JSON is YAML

    def _environment(self, name: str) -> str:
        blue_green = name == "production"
        extra = "  strategy: blue-green\n  requires: [staging]\n" if blue_green else ""
        return (
            textwrap.dedent(
                f"""\
            apiVersion: reconciler/v1
            kind: Environment
            metadata: {{name: {name}}}
            spec:
              source: {{repo: {self.root / "src" / "app.git"}, ref: main}}
              target: {{path: {self.root / "deploy" / name}}}
              build: [{{run: ["{PY}", "build.py"], timeout: 30s}}]
              activate: [{{run: ["{PY}", "activate.py"], timeout: 30s}}]
              verify: [{{run: ["{PY}", "verify.py"], timeout: 30s}}]
              keepReleases: 3
            """
            )
            + extra
        )

    # -- new work between kills ----------------------------------------------------------
    def new_work(self) -> list[str]:
        """Commits on some sources, sometimes a taxonomy change, a downstream edit, a new
        app commit; returns what was done (for failure messages)."""
        self.round += 1
        done = []
        for work in self.rng.sample(self.sources, k=min(len(self.sources), self.rng.randint(2, 5))):
            work.commit(f"round {self.round}", {"file.txt": f"round {self.round}\n"})
            if self.rng.random() < 0.2:
                work.tag(f"r{self.round}")
            work.push(work.path.parent.parent / "src" / f"{work.path.name}.git")
            done.append(f"commit on {work.path.name}")
        if self.rng.random() < 0.1:  # a wiped backup: the next apply creates it again
            wiped = (
                self.root
                / self.rng.choice(DEST_ORGS)
                / f"m{self.rng.randrange(self.mirrors):02d}.git"
            )
            shutil.rmtree(wiped, ignore_errors=True)
            done.append(f"wiped {wiped}")
        if self.rng.random() < 0.4:
            name = self.rng.choice(sorted(self.terms))
            self.terms[name].append(
                {"id": f"root.r{self.round}", "label": f"Round {self.round}", "parent": "root"}
            )
            if self.rng.random() < 0.5:
                self.terms[name][1]["label"] = f"One ({self.round})"
            self.write_specs()
            done.append(f"{name}: term root.r{self.round}")
        if self.rng.random() < 0.3 and self._edit_downstream():
            done.append(f"downstream edit {self.downstream[-1][1]}")
        if self.app is not None and self.rng.random() < 0.5:
            self.app.commit(f"app {self.round}", {"VERSION": f"{self.round}\n"})
            self.app.push(self.root / "src" / "app.git")
            done.append("app commit")
        return done

    def _edit_downstream(self) -> bool:
        """Add a term by hand to one target (as a team downstream would); False if the
        target has no file yet."""
        target = self.rng.choice(self.targets)
        data = target.read()
        if data is None:
            return False
        document = parse_target(target, data)
        term = f"down{self.round}"
        document["terms"].append({"id": term, "label": f"Downstream {self.round}"})
        if target.format == "json":
            text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        else:
            text = _dump_yaml(document)
        if target.working_copy:
            work = WorkRepo(target.repo)
        else:
            work = WorkRepo.create(self.root / "edits" / f"{self.round}", bare_remote=target.repo)
        work.commit(f"downstream {term}", {target.path: text})
        if not target.working_copy:
            work.push(target.repo, "HEAD:refs/heads/main")
        self.downstream.append((target, term))
        return True

    # -- invariants ----------------------------------------------------------------------
    def destination_problems(self) -> list[str]:
        """Every destination ref must point to an object the destination holds (read
        in-process with dulwich: a git process per repository made each check a second)."""
        problems = []
        for org in DEST_ORGS:
            for path in sorted((self.root / org).glob("*.git")):
                try:
                    repo = Repo(str(path))
                except NotGitRepository:
                    continue  # a kill during `git init`: no refs yet; the re-run creates it
                try:
                    refs = repo.refs.as_dict()
                    for ref, sha in sorted(refs.items()):
                        if ref != b"HEAD" and sha not in repo.object_store:
                            problems.append(f"{org}/{path.name} {ref.decode()}: {sha.decode()}")
                finally:
                    repo.close()
        return problems

    def destination_connectivity(self) -> list[str]:
        """`git fsck --connectivity-only`: every object reachable from a ref is there."""
        problems = []
        for org in DEST_ORGS:
            for repo in sorted((self.root / org).glob("*.git")):
                fsck = git("fsck", "--connectivity-only", "--no-dangling", cwd=repo, check=False)
                if fsck.returncode != 0:
                    problems.append(f"{repo}: {fsck.stderr.strip()[:300]}")
        return problems

    def target_problems(self) -> list[str]:
        """Every taxonomy target file that exists must be a whole document."""
        problems = []
        for target in self.targets:
            data = target.read()
            if data is None:
                continue
            try:
                parse_target(target, data)
            except (ValueError, YAMLError, UnicodeDecodeError) as error:
                problems.append(f"{target.repo}:{target.path}: {error}")
        return problems

    def lost_downstream(self) -> list[str]:
        """Downstream edits missing from their target (after a converged apply)."""
        lost = []
        for target, term in self.downstream:
            data = target.read()
            ids = {t["id"] for t in parse_target(target, data)["terms"]} if data else set()
            if term not in ids:
                lost.append(f"{target.repo}:{target.path} lost {term}")
        return lost

    def current_releases(self) -> dict[str, Path | None]:
        """Where each environment's `current` resolves (None: no link yet)."""
        found: dict[str, Path | None] = {}
        for name in ENVIRONMENTS:
            link = self.root / "deploy" / name / "current"
            found[name] = Path(os.path.realpath(link)) if os.path.lexists(link) else None
        return found

    def release_problems(self, deployed: set[str], verified: bool = False) -> list[str]:
        """`current` of every environment in `deployed` resolves to a whole, built release
        (and, with `verified`, one that passed its verify check)."""
        problems = []
        for name, release in self.current_releases().items():
            if release is None:
                if name in deployed:
                    problems.append(f"{name}: `current` is missing")
                continue
            problems += [f"{name}: {p}" for p in release_problems(release, verified)]
        return problems


def release_problems(release: Path, verified: bool) -> list[str]:
    """What keeps a release directory from being a complete (built, verified) release."""
    if not release.is_dir():
        return [f"`current` dangles ({release})"]
    missing = [
        f for f in ("VERSION", "build.py", "verify.py", "BUILT") if not (release / f).is_file()
    ]
    if verified and not (release / "VERIFIED").is_file():
        missing.append("VERIFIED")
    return [f"{release.name} lacks {', '.join(missing)}"] if missing else []


@dataclass(frozen=True)
class JournalRow:
    """One journal entry as the test reads it."""

    id: int
    revision_id: int
    address: str
    status: str


def read_journal(state: Path, after_revision: int) -> list[JournalRow] | None:
    """Journal entries of revisions newer than `after_revision` (read-only; None while the
    store cannot be read yet)."""
    try:
        with _readonly(state) as db:
            rows = db.execute(
                "SELECT id, revision_id, address, status FROM journal WHERE revision_id > ?",
                (after_revision,),
            ).fetchall()
    except sqlite3.Error:
        return None
    return [JournalRow(*row) for row in rows]


def store_query(state: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a read-only query of the store."""
    with _readonly(state) as db:
        return db.execute(sql, params).fetchall()


@contextlib.contextmanager
def _readonly(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection: the test never writes the store it watches."""
    if not path.exists():
        raise sqlite3.OperationalError("no store yet")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        yield db
    finally:
        db.close()
