"""Shared helpers: an isolated git environment, repository builders, timing and results.

Every benchmark builds its data under a fresh temporary directory (local paths only, no
network) and times reconciler and its baseline side by side, alternating the two so that
any drift of the machine hits both equally.
"""

from __future__ import annotations

import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Fixed identity and dates make every build of the data byte-identical.
_IDENTITY = "Bench <bench@example.invalid>"
_EPOCH = 1_700_000_000


@dataclass(frozen=True)
class Result:
    """The outcome of one benchmark: medians of both sides and what was run."""

    name: str
    description: str
    target: float
    baseline: list[float]
    reconciler: list[float]
    baseline_commands: list[str]
    reconciler_commands: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def baseline_s(self) -> float:
        """Median wall time of the baseline, in seconds."""
        return statistics.median(self.baseline)

    @property
    def reconciler_s(self) -> float:
        """Median wall time of reconciler, in seconds."""
        return statistics.median(self.reconciler)

    @property
    def ratio(self) -> float:
        """reconciler / baseline (lower is better)."""
        return self.reconciler_s / self.baseline_s

    @property
    def paired_ratio(self) -> float:
        """Median of the per-run ratios (runs i of both sides ran back to back): less sensitive
        to load from other processes that comes and goes during the benchmark."""
        return statistics.median(r / b for r, b in zip(self.reconciler, self.baseline, strict=True))

    @property
    def ok(self) -> bool:
        """True when the ratio meets the target."""
        return self.ratio <= self.target

    def report(self, root: Path | None = None) -> str:
        """A human-readable block: numbers, samples and the exact commands compared.

        With `root`, that directory is written `$ROOT` in the commands, for legibility.
        """
        samples_b = ", ".join(f"{s:.3f}" for s in self.baseline)
        samples_r = ", ".join(f"{s:.3f}" for s in self.reconciler)
        lines = [
            f"### {self.name}: {self.description}",
            "",
            f"- baseline:   {self.baseline_s:.3f} s (median of {len(self.baseline)}: {samples_b})",
            f"- reconciler: {self.reconciler_s:.3f} s "
            f"(median of {len(self.reconciler)}: {samples_r})",
            f"- ratio reconciler/baseline: {self.ratio:.2f} (target <= {self.target:g}: "
            f"{'met' if self.ok else 'MISSED'}); median of per-run ratios {self.paired_ratio:.2f}",
            *(f"- note: {note}" for note in self.notes),
            "",
            "baseline commands:",
            "",
            "```sh",
            *self.baseline_commands,
            "```",
            "",
            "reconciler commands:",
            "",
            "```sh",
            *self.reconciler_commands,
            "```",
            "",
        ]
        text = "\n".join(lines)
        return text if root is None else text.replace(str(root), "$ROOT")


class Env:
    """A sandbox: a temporary HOME with a fixed git config, shared by both sides.

    Both reconciler and the baseline run with this environment, so that no user or system
    git configuration favours one side.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        # An empty template: no sample hooks in every repository (fewer files to copy).
        template = root / "git-template"
        template.mkdir(parents=True, exist_ok=True)
        (self.home / ".gitconfig").write_text(
            "[user]\n\tname = Bench\n\temail = bench@example.invalid\n"
            f"[init]\n\tdefaultBranch = main\n\ttemplateDir = {template}\n"
            "[advice]\n\tdetachedHead = false\n"
        )
        base = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "RECONCILER_"))}
        base.update(HOME=str(self.home), LC_ALL="C", GIT_CONFIG_NOSYSTEM="1")
        # Python side: bytecode cached as in any installed environment (the warm-up run
        # fills it), in the sandbox so that nothing is written into the source tree.
        base.pop("PYTHONDONTWRITEBYTECODE", None)
        base["PYTHONPYCACHEPREFIX"] = str(root / "pycache")
        self.vars: dict[str, str] = base

    def run(
        self,
        args: Sequence[str | os.PathLike[str]],
        *,
        cwd: Path | None = None,
        stdin: bytes | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run a command in the sandbox, capturing its output; raise with stderr on failure."""
        result = subprocess.run(
            [os.fspath(a) for a in args],
            cwd=cwd,
            env=self.vars,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        if check and result.returncode != 0:
            command = shlex.join(os.fspath(a) for a in args)
            output = (result.stderr or result.stdout).decode(errors="replace").strip()
            raise RuntimeError(f"`{command}` exited {result.returncode}: {output[-2000:]}")
        return result

    def git(
        self, *args: str | os.PathLike[str], cwd: Path | None = None, stdin: bytes | None = None
    ) -> str:
        """Run `git ARGS` and return its stdout as text."""
        return self.run(["git", *args], cwd=cwd, stdin=stdin).stdout.decode()


def reconciler_executable() -> str:
    """The `reconciler` console script of the running interpreter's environment."""
    beside = Path(sys.executable).with_name("reconciler")
    if beside.exists():
        return str(beside)
    found = shutil.which("reconciler")
    if found is None:
        raise RuntimeError("no `reconciler` executable: run from the project's .venv")
    return found


def reconciler_command(specs: Path, state: Path, *args: str) -> list[str]:
    """`reconciler --specs SPECS --state STATE ARGS`."""
    return [reconciler_executable(), "--specs", str(specs), "--state", str(state), *args]


def write_org_mirror(
    specs: Path, source: str, destinations: Iterable[str], repos: list[str]
) -> Path:
    """Write an organisation-form Mirror spec (`{repo}` in every URL) into `specs/mirror.yaml`."""
    specs.mkdir(parents=True, exist_ok=True)
    names = ", ".join(repos)
    dests = "\n".join(f'    - url: "{url}"' for url in destinations)
    text = (
        "apiVersion: reconciler/v1\n"
        "kind: Mirror\n"
        "metadata: {name: org}\n"
        "spec:\n"
        f"  repos: [{names}]\n"
        f'  source: {{url: "{source}"}}\n'
        "  destinations:\n"
        f"{dests}\n"
    )
    path = specs / "mirror.yaml"
    path.write_text(text)
    return path


def log(message: str) -> None:
    """A progress line on stderr (setup phases; the results go to stdout)."""
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed(action: Callable[[], object]) -> float:
    """Wall time of `action()` in seconds."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def alternate(
    runs: int,
    baseline: Callable[[], object],
    reconciler: Callable[[], object],
    *,
    before_baseline: Callable[[], object] | None = None,
    before_reconciler: Callable[[], object] | None = None,
    after_baseline: Callable[[], object] | None = None,
    after_reconciler: Callable[[], object] | None = None,
    warmup: bool = True,
) -> tuple[list[float], list[float]]:
    """Time both sides `runs` times, alternating which goes first; setup/checks are untimed.

    With `warmup`, each side runs once untimed first (page cache, .pyc files).
    """
    base_times: list[float] = []
    rec_times: list[float] = []

    def one(
        action: Callable[[], object],
        before: Callable[[], object] | None,
        after: Callable[[], object] | None,
        into: list[float] | None,
    ) -> None:
        if before is not None:
            before()
        elapsed = timed(action)
        if after is not None:
            after()
        if into is not None:
            into.append(elapsed)
        side = "baseline" if action is baseline else "reconciler"
        log(f"{side:10} {'warm-up' if into is None else 'run'}: {elapsed:.3f} s")

    if warmup:
        one(baseline, before_baseline, after_baseline, None)
        one(reconciler, before_reconciler, after_reconciler, None)
    for index in range(runs):
        sides = [
            (baseline, before_baseline, after_baseline, base_times),
            (reconciler, before_reconciler, after_reconciler, rec_times),
        ]
        if index % 2:
            sides.reverse()
        for action, before, after, into in sides:
            one(action, before, after, into)
    return base_times, rec_times


def replace_tree(source: Path, target: Path) -> None:
    """Make `target` a copy of `source` that writes to `target` never reach (untimed restores).

    Files under an `objects/` directory are hard links: git never changes an object or a
    pack in place (it writes a new file and renames it). Everything else (refs, configs, the
    SQLite store, which is written in place) is copied.
    """
    if target.exists():
        shutil.rmtree(target)
    for directory, subdirs, files in os.walk(source):
        here = Path(directory)
        relative = here.relative_to(source)
        there = target / relative
        there.mkdir(parents=True, exist_ok=True)
        shared = "objects" in relative.parts
        for name in files:
            if shared:
                os.link(here / name, there / name)
            else:
                shutil.copy2(here / name, there / name)
        for name in subdirs:
            if (here / name).is_symlink():
                raise RuntimeError(f"unexpected symbolic link {here / name}")


def remove(*paths: Path) -> None:
    """Delete files or directory trees that may not exist."""
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def shell(command: Sequence[str | os.PathLike[str]]) -> str:
    """A command as one would type it in a shell."""
    return shlex.join(os.fspath(part) for part in command)


def refs_of(env: Env, repo: Path) -> dict[str, str]:
    """{ref: sha} of the branches and tags of a local repository (one git process)."""
    text = env.git(
        "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads", "refs/tags", cwd=repo
    )
    pairs = (line.split(" ", 1) for line in text.splitlines())
    return {ref: sha for ref, sha in pairs}


def read_ref(repo: Path, ref: str) -> str | None:
    """The sha of `ref` in a bare repository, read from its files (no git process)."""
    loose = repo / ref
    if loose.is_file():
        return loose.read_text().strip()
    packed = repo / "packed-refs"
    if packed.is_file():
        for line in packed.read_text().splitlines():
            if line.endswith(" " + ref) and not line.startswith(("#", "^")):
                return line.split(" ", 1)[0]
    return None


# --- building repositories with git fast-import -------------------------------------------


@dataclass
class _Stream:
    """A git fast-import stream under construction."""

    parts: list[bytes] = field(default_factory=list)
    mark: int = 0
    clock: int = _EPOCH

    def blob(self, data: bytes) -> int:
        self.mark += 1
        self.parts.append(b"blob\nmark :%d\ndata %d\n%s\n" % (self.mark, len(data), data))
        return self.mark

    def commit(
        self,
        ref: str,
        message: str,
        files: Mapping[str, int],
        parent: str | None = None,
    ) -> int:
        """A commit on `ref` changing `files` ({path: blob mark}); `parent` is a `from` value."""
        self.mark += 1
        self.clock += 60
        text = message.encode()
        header = (
            f"commit {ref}\nmark :{self.mark}\n"
            f"author {_IDENTITY} {self.clock} +0000\n"
            f"committer {_IDENTITY} {self.clock} +0000\n"
        ).encode()
        body = [header, b"data %d\n%s\n" % (len(text), text)]
        if parent is not None:
            body.append(f"from {parent}\n".encode())
        body += [f"M 100644 :{blob} {path}\n".encode() for path, blob in files.items()]
        body.append(b"\n")
        self.parts.append(b"".join(body))
        return self.mark

    def annotated_tag(self, name: str, target: int, message: str) -> None:
        self.clock += 1
        text = message.encode()
        self.parts.append(
            f"tag {name}\nfrom :{target}\ntagger {_IDENTITY} {self.clock} +0000\n".encode()
            + b"data %d\n%s\n" % (len(text), text)
        )

    def light_tag(self, name: str, target: int) -> None:
        self.parts.append(f"reset refs/tags/{name}\nfrom :{target}\n\n".encode())

    def data(self) -> bytes:
        return b"".join(self.parts) + b"done\n"


def fast_import(env: Env, repo: Path, stream: _Stream) -> None:
    """Create (if needed) the bare repository `repo` and feed it `stream`."""
    if not (repo / "HEAD").exists():
        env.git("init", "--quiet", "--bare", repo)
    env.git("fast-import", "--quiet", "--done", cwd=repo, stdin=stream.data())


def small_repo(env: Env, repo: Path, seed: int) -> None:
    """A small repository: 5 commits on main, 2 on `dev`, an annotated and a light tag.

    `seed` makes every repository's content (and so its shas) different.
    """
    stream = _Stream(clock=_EPOCH + seed * 10_000)
    tip = 0
    for number in range(5):
        files = {
            "README.md": stream.blob(f"# repo {seed}\n\nrevision {number}\n".encode()),
            f"src/module{number % 3}.py": stream.blob(
                f"VALUE = {seed * 100 + number}\n".encode() * (number + 1)
            ),
        }
        parent = None if number == 0 else f":{tip}"
        tip = stream.commit("refs/heads/main", f"main {number} of repo {seed}", files, parent)
        if number == 2:
            stream.annotated_tag("v1.0", tip, f"release 1.0 of repo {seed}")
    stream.light_tag("v1.1", tip)
    dev = tip
    for number in range(2):
        blob = stream.blob(f"dev work {number} in repo {seed}\n".encode())
        dev = stream.commit("refs/heads/dev", f"dev {number}", {"DEV.md": blob}, f":{dev}")
    fast_import(env, repo, stream)


def add_commits(env: Env, repo: Path, count: int, label: str) -> None:
    """Append `count` commits on top of refs/heads/main of a bare repository."""
    stream = _Stream(clock=_EPOCH + 50_000_000)
    parent: str | None = "refs/heads/main^0"
    for number in range(count):
        blob = stream.blob(f"{label}: change {number} to {repo.name}\n".encode())
        mark = stream.commit("refs/heads/main", f"{label} {number}", {"CHANGES.md": blob}, parent)
        parent = f":{mark}"
    fast_import(env, repo, stream)


def big_repo(
    env: Env,
    repo: Path,
    *,
    commits: int = 5000,
    files: int = 300,
    tags: int = 50,
) -> None:
    """A repository with `commits` commits on 3 branches, `files` files and `tags` annotated tags.

    main holds 80% of the commits; `release/1.x` and `dev` fork from it and hold 10% each.
    Every commit rewrites a few lines of two files, so the pack has realistic deltas.
    """
    rng = random.Random(5000)
    stream = _Stream()
    words = [f"word{n}" for n in range(400)]
    contents = [
        [" ".join(rng.choices(words, k=10)) for _ in range(rng.randint(15, 50))]
        for _ in range(files)
    ]
    paths = [f"pkg{n % 17}/module{n}.txt" for n in range(files)]
    first = {paths[n]: stream.blob(_text(contents[n])) for n in range(files)}
    main_count = commits * 8 // 10
    side_count = (commits - main_count) // 2
    tip = stream.commit("refs/heads/main", "initial import", first)
    main_tips = [tip]

    def change(ref: str, parent: int, number: int) -> int:
        touched: dict[str, int] = {}
        for index in rng.sample(range(files), 2):
            lines = contents[index]
            for _ in range(3):
                lines[rng.randrange(len(lines))] = " ".join(rng.choices(words, k=10))
            touched[paths[index]] = stream.blob(_text(lines))
        return stream.commit(
            ref, f"{ref.rsplit('/', 1)[-1]} change {number}", touched, f":{parent}"
        )

    for number in range(1, main_count):
        tip = change("refs/heads/main", tip, number)
        main_tips.append(tip)
    step = max(1, len(main_tips) // tags)
    for index in range(tags):
        stream.annotated_tag(f"v{index // 10}.{index % 10}.0", main_tips[index * step], "release")
    for branch, fork in (("release/1.x", len(main_tips) // 2), ("dev", len(main_tips) * 9 // 10)):
        tip = main_tips[fork]
        for number in range(side_count):
            tip = change(f"refs/heads/{branch}", tip, number)
    fast_import(env, repo, stream)
    # fast-import writes a rough pack; a real server's repository has been repacked.
    env.git("repack", "-a", "-d", "-q", cwd=repo)


def many_refs_repo(
    env: Env, repo: Path, branches: int, tags: int, advance: Sequence[str] = ()
) -> None:
    """`branches` branches `topic/NNNNN`, each at its own commit of one linear history, and
    `tags` annotated tags; or, into an existing `repo`, one new commit on each of `advance`."""
    stream = _Stream(clock=_EPOCH + 90_000_000)
    blob = stream.blob(b"many refs\n")
    tip: int | None = None
    for number in range(branches):
        parent = None if tip is None else f":{tip}"
        tip = stream.commit(f"refs/heads/topic/{number:05d}", f"c{number}", {"f": blob}, parent)
        if number < tags:
            stream.annotated_tag(f"v{number:05d}", tip, f"tag {number}")
    for ref in advance:
        change = stream.blob(f"advanced {ref}\n".encode())
        stream.commit(ref, f"advance {ref}", {"f": change}, f"{ref}^0")
    fast_import(env, repo, stream)


def _text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


def count_commits(env: Env, repo: Path) -> int:
    """The number of commits reachable from any ref."""
    return int(env.git("rev-list", "--all", "--count", cwd=repo).strip())


def row(name: str, baseline: float, ours: float, target: float | None, note: str) -> dict[str, Any]:
    """One row of a row benchmark (bench/__main__.py `row_table`): both medians and the ratio."""
    return {
        "benchmark": name,
        "baseline_s": round(baseline, 4),
        "reconciler_s": round(ours, 4),
        "ratio": round(ours / baseline, 3) if baseline else None,
        "target": target,
        "note": note,
    }
