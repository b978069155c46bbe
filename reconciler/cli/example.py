"""What `reconciler init` writes: a commented example spec that works where it is written,
mirroring small demo repositories it builds beside it (so the first `plan` tells the truth:
there is something to create, and after `apply` nothing is left to do)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from reconciler.errors import ReconcilerError
from reconciler.git import GitRunner
from reconciler.redaction import Redactor

DEMO_DIRECTORY = "demo"
DEMO_REPOS = ("vision-cortex", "auto-builder")

EXAMPLE_MIRRORS = """\
# Desired state for reconciler: every YAML document under this directory is one resource.
# Validate with `reconciler validate`, preview with `reconciler plan`, apply with
# `reconciler apply`. Reference: README.md, "Spec reference".
#
# `reconciler init` also built two small demo repositories under demo/source/ (next to this
# file), so this example works as written: `plan` shows the backups it would create,
# `apply` makes them under demo/backup/, and the next `plan` has nothing left to do.
# To mirror your own repositories, edit `repos`, `source.url` and `destinations` below,
# then delete demo/.
apiVersion: reconciler/v1
kind: Mirror
metadata:
  name: core-repos              # lowercase letters, digits and '-'; unique per kind
  labels: {team: platform}
spec:
  # The organisation form: every listed repository (or ["*"]: every bare repository in
  # the source directory) is mirrored; {repo} is replaced by each name.
  repos: [vision-cortex, auto-builder]
  source:
    # Edit this: your source organisation, e.g. /srv/git/infinityxai/{repo}.git.
    # A relative path is resolved against the directory of this file.
    url: demo/source/{repo}.git   # in a {flow: mapping}, quote a URL with {repo}
  destinations:
    # Edit this: where the backups go. A local destination that does not exist yet is
    # created as a bare repository.
    - url: demo/backup/{repo}.git
    # Credentials only ever come from the environment, and are never stored or printed.
    # - url: "https://git.example.com/backup/{repo}.git"
    #   username: bot
    #   password: "${BACKUP_TOKEN}"
  branches: ["main", "release/*"]   # globs; default ["*"]; an empty list mirrors no branch
  tags: ["v*"]                      # globs; default ["*"]
  prune: false                      # delete destination refs that vanished at the source
  conflictStrategy: fail            # fail | force | skip, for a destination ref that diverged
"""

# A commit of the demo is made without the user's identity or signing configuration.
_IDENTITY = (
    "-c",
    "user.name=reconciler init",
    "-c",
    "user.email=reconciler@localhost",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "tag.gpgsign=false",
)


def write_example(directory: Path) -> tuple[Path, Path]:
    """Write `DIRECTORY/mirrors.yaml` and build the demo repositories it mirrors from under
    `DIRECTORY/demo/source/`; never overwrites anything. Returns what was written."""
    spec = directory / "mirrors.yaml"
    demo = directory / DEMO_DIRECTORY
    for path in (spec, demo):
        if path.exists() or path.is_symlink():
            raise ReconcilerError(f"{path} already exists; not overwriting it")
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".reconciler-init-", dir=directory) as scratch:
        building = Path(scratch) / DEMO_DIRECTORY
        git = GitRunner(Path(scratch) / "git", Redactor())
        for repo in DEMO_REPOS:
            _demo_repository(git, building / "source" / f"{repo}.git", repo)
        building.rename(demo)  # all or nothing: a failed build leaves no half demo behind
    spec.write_text(EXAMPLE_MIRRORS)
    return spec, demo / "source"


def _demo_repository(git: GitRunner, bare: Path, name: str) -> None:
    """A bare repository with `main` (two commits), `release/1.0`, `feature/experiment`
    and the tag `v1.0.0`."""
    git.run(["init", "--quiet", "--bare", "--initial-branch=main", "--", str(bare)])
    work = bare.parent / f".{name}-work"
    work.mkdir()
    inside = [f"--git-dir={bare}", f"--work-tree={work}", *_IDENTITY]
    for number in (1, 2):
        (work / "README.md").write_text(f"{name}: demo change {number}\n")
        git.run([*inside, "add", "README.md"])
        git.run([*inside, "commit", "--quiet", "--no-verify", "-m", f"{name}: change {number}"])
    for branch in ("release/1.0", "feature/experiment"):
        git.run([*inside, "branch", branch])
    git.run([*inside, "tag", "v1.0.0"])
    (bare / "index").unlink(missing_ok=True)  # the commits' staging area: not part of a bare repo
    shutil.rmtree(work)
