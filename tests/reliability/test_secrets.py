"""Secrets (issue 6): a sentinel credential, given through `${VAR}` in every place a
credential can go, never shows up anywhere reconciler writes or prints.

One full flow through the real CLI against `git http-backend` behind Basic auth: mirrors,
a taxonomy target and an environment source over http with the sentinel as password, a
health policy that escalates to a webhook and a file, `watch --once` with the sentinel as
its webhook secret, and failure paths (a server that refuses the password, a server that is
down, a whole run with a wrong password, hooks and checks that print their environment) so
that error messages are produced. Then every output, every file under the workspace (the
store and its -wal/-shm, caches, git configs, plan files, alerts, releases) and every object
of every git repository involved is searched for the sentinel in its raw, URL-encoded,
JSON-escaped and base64 forms (Basic auth headers included).
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.conftest import CliResult, Workspace
from tests.gitservers import GitHttpServer, WorkRepo, free_port, git, make_bare, seed_bare
from tests.reliability.report import record
from tests.reliability.scale import size

PY = sys.executable
VAR = "RELIABILITY_SENTINEL"
ALERT_VAR = "RELIABILITY_ALERT_TOKEN"


def sentinel(kind: str) -> str:
    """A value that cannot appear by chance, with characters that URLs and shells encode."""
    return f"S3ntinel-{kind}-{secrets.token_hex(8)}:p@ss/w+rd"


def needles(secret: str) -> dict[str, bytes]:
    """Every form the secret could leak in, each as bytes to search for."""
    raw = secret.encode()
    token = secret.split("-")[2].split(":")[0]  # the random part: catches partial leaks too
    found = {
        "raw": raw,
        "random part": token.encode(),
        "url-encoded": quote(secret, safe="").encode(),
        "form-encoded": quote_plus(secret).encode(),
        "json-escaped": json.dumps(secret)[1:-1].encode(),
        "basic-auth": base64.b64encode(f"bot:{secret}".encode()),
    }
    for shift in range(3):  # base64 at each alignment: the core that any prefix leaves intact
        for name, encode in (("base64", base64.b64encode), ("base64url", base64.urlsafe_b64encode)):
            encoded = encode(b"\0" * shift + raw)
            found[f"{name}@{shift}"] = encoded[4 if shift else 0 : -4]
    return found


@dataclass
class Scanner:
    """Searches outputs, files and git objects for any form of any secret."""

    secrets: list[str]
    places: int = 0
    leaks: list[str] = field(default_factory=list)

    def check(self, where: str, data: bytes | str) -> None:
        """Search one place."""
        blob = data.encode(errors="surrogateescape") if isinstance(data, str) else data
        self.places += 1
        for secret in self.secrets:
            for form, needle in needles(secret).items():
                if needle in blob:
                    self.leaks.append(f"{where}: {form} of {secret[:14]}...")

    def tree(self, root: Path) -> None:
        """Every regular file under `root`, raw bytes, and the objects of every repository."""
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                self.check(str(path.relative_to(root)), path.read_bytes())
        for repo in repositories(root):
            self.check(f"{repo.relative_to(root)} (objects)", objects_of(repo))
            refs = git("for-each-ref", "--format=%(refname) %(objectname)", cwd=repo).stdout
            self.check(f"{repo.relative_to(root)} (refs)", refs)


def repositories(root: Path) -> Iterator[Path]:
    """Every git repository (bare or not) under `root`."""
    for head in root.rglob("HEAD"):
        repo = head.parent
        if (repo / "objects").is_dir() and (repo / "refs").exists():
            yield repo.parent if repo.name == ".git" else repo


def objects_of(repo: Path) -> bytes:
    """Every object of `repo`, inflated (packs and loose objects alike)."""
    return subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch", "--unordered"],
        cwd=repo,
        capture_output=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout


def test_the_scanner_finds_every_form_of_a_secret(tmp_path: Path) -> None:
    """A scan that could not find the sentinel would prove nothing."""
    secret = sentinel("selftest")
    scanner = Scanner([secret])
    for form, needle in needles(secret).items():
        if form.startswith("base64"):
            shift = int(form[-1])
            codec = base64.urlsafe_b64encode if "url" in form else base64.b64encode
            text = b"Authorization: Basic " + codec(b"x" * shift + secret.encode() + b"tail")
        else:
            text = b"prefix " + needle + b" suffix"
        before = len(scanner.leaks)
        scanner.check(form, text)
        assert len(scanner.leaks) > before, form
    assert scanner.leaks and all("S3ntinel-selft" in leak for leak in scanner.leaks)
    # In a packed, compressed git object only the inflating scan finds it.
    repo = WorkRepo.create(tmp_path / "repo")
    repo.commit("c", {"config.txt": f"password = {secret}\n" + "padding\n" * 200})
    repo.git("gc", "-q", "--aggressive")
    packs = list((repo.path / ".git" / "objects" / "pack").glob("*.pack"))
    assert packs and not any(secret.encode() in p.read_bytes() for p in packs)
    found = Scanner([secret])
    found.tree(tmp_path)
    assert any("(objects)" in leak for leak in found.leaks), found.leaks


class Receiver:
    """A webhook receiver on 127.0.0.1 that keeps each POST's body and headers."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                owner.bodies.append(self.rfile.read(length))
                owner.headers.append(dict(self.headers.items()))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Flow:
    """The workspace, the servers and every command run."""

    ws: Workspace
    env: dict[str, str]
    results: list[tuple[str, CliResult]] = field(default_factory=list)

    def run(self, *args: str, env: dict[str, str] | None = None) -> CliResult:
        result = self.ws.run(*args, env={**self.env, **(env or {})}, timeout=180)
        assert "Traceback" not in result.output or "-v" in args, result.output
        self.results.append((" ".join(args), result))
        return result


def write_specs(
    flow: Flow, http: GitHttpServer, refusing: GitHttpServer, down: int, receiver: Receiver
) -> None:
    creds = f'username: bot, password: "${{{VAR}}}"'
    dead = f"http://127.0.0.1:{down}/gone.git"
    leaky = "import os, sys; print('env:', os.environ.get('RELIABILITY_SENTINEL')); sys.exit({})"
    flow.ws.write_spec(
        "secure.yaml",
        f"""
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: secure, labels: {{team: platform}}}}
        spec:
          source: {{url: "{http.url("src.git")}", {creds}}}
          destinations:
            - {{url: "{http.url("dst.git")}", {creds}}}
            - {{url: ../local/secure.git}}
        ---
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: denied, labels: {{team: platform}}}}
        spec:
          source: {{url: "{http.url("src.git")}", {creds}}}
          destinations: [{{url: "{refusing.url("denied.git")}", {creds}}}]
        ---
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {{name: down, labels: {{team: platform}}}}
        spec:
          source: {{url: "{http.url("src.git")}", {creds}}}
          destinations: [{{url: "{dead}", {creds}}}]
        ---
        apiVersion: reconciler/v1
        kind: Taxonomy
        metadata: {{name: docs, labels: {{team: platform}}}}
        spec:
          terms: [{{id: infra, label: Infrastructure}}]
          targets:
            - {{repo: "{http.url("site.git")}", {creds}, path: taxonomy/index.json}}
            - {{repo: "{refusing.url("denied.git")}", {creds}, path: t.json}}
        ---
        apiVersion: reconciler/v1
        kind: Environment
        metadata: {{name: prod, labels: {{team: platform}}}}
        spec:
          source: {{repo: "{http.url("app.git")}", {creds}, ref: v1}}
          target: {{path: ../deploy/prod}}
          build: [{{run: ["{PY}", "-c", "{leaky.format(0)}"]}}]
        ---
        apiVersion: reconciler/v1
        kind: Environment
        metadata: {{name: broken, labels: {{team: platform}}}}
        spec:
          source: {{repo: "{http.url("app.git")}", {creds}, ref: v1}}
          target: {{path: ../deploy/broken}}
          verify: [{{run: ["{PY}", "-c", "{leaky.format(3)}"]}}]
        ---
        apiVersion: reconciler/v1
        kind: HealthPolicy
        metadata: {{name: guard}}
        spec:
          selector: {{labels: {{team: platform}}}}
          interval: 1s
          checks:
            - {{type: drift}}
            - {{type: deployment}}
            - {{type: command, run: ["{PY}", "-c", "{leaky.format(1)}"]}}
          remediation:
            - escalate:
                webhook: "{receiver.url}"
                headers: {{Authorization: "${{{ALERT_VAR}}}"}}
                file: ../state/alerts.jsonl
            - retry: {{attempts: 1, base: 1s}}
        """,
    )


def build_servers(root: Path) -> None:
    seed_bare(root / "http" / "src.git", branches=("main", "dev"), commits=2, tags=("v1",))
    make_bare(root / "http" / "dst.git")
    make_bare(root / "http" / "site.git")
    make_bare(root / "refusing" / "denied.git")
    app = WorkRepo.create(root / "app-work")
    app.commit("v1", {"VERSION": "v1\n"})
    app.tag("v1")
    app.push(make_bare(root / "http" / "app.git"), "main:main", "refs/tags/v1:refs/tags/v1")


def specs_repository(root: Path, http: GitHttpServer, password: str) -> str:
    """Specs in a git repository behind the same server: `RECONCILER_SPECS` is its URL with
    the sentinel as password (a git source's credentials have nowhere else to go)."""
    work = WorkRepo.create(root / "infra-work")
    creds = f'username: bot, password: "${{{VAR}}}"'
    spec = (
        "apiVersion: reconciler/v1\nkind: Mirror\nmetadata: {name: from-git}\nspec:\n"
        f'  source: {{url: "{http.url("src.git")}", {creds}}}\n'
        f"  destinations: [{{url: {root / 'local' / 'from-git.git'}}}]\n"
    )
    work.commit("specs", {"specs/mirror.yaml": spec})
    work.push(make_bare(root / "http" / "infra.git"), "main:main")
    return http.url("infra.git", username="bot", password=password) + "#main:specs"


def run_everything(flow: Flow, addresses: list[str], wrong: str) -> None:
    """Every command a user would run, on success and failure paths (the full size runs
    each read command for every resource and in every format)."""
    full = size(0, 1) == 1
    plan_file = flow.ws.root / "plan.json"
    flow.run("validate")
    flow.run("plan", "--json")
    flow.run("plan", "--out", str(plan_file))
    assert flow.run("apply", str(plan_file)).code == 1  # denied and down fail
    flow.run("status", "--json")
    flow.run("history", "--json")
    for address in addresses if full else ["Environment/broken"]:
        flow.run("history", address, "--json")
        flow.run("state", "show", address)
    flow.run("state", "list")
    flow.run("health", "--json")
    flow.run("heal")
    flow.run("metrics", "--format", "json")
    flow.run("watch", "--once", "--log-format", "json", "--listen", f"127.0.0.1:{free_port()}")
    if full:
        time.sleep(1.1)  # the retry's backoff: the second heal retries
        flow.run("heal", "--json")
        flow.run("-v", "apply", "--yes")
        flow.run("taxonomy", "pull", "docs", "--dry-run")
        for command in (["plan"], ["apply", "--yes"], ["status"], ["history"], ["health"]):
            flow.run(*command)
        for command in (["heal", "--dry-run"], ["metrics"], ["rollback", "Environment/prod"]):
            flow.run(*command)
        flow.run("plan", "--json", "--detailed-exitcode")
        flow.run("watch", "--once", "--log-format", "text", "--listen", "off")
    # Specs read from git, with the sentinel in the source URL.
    source = {"RECONCILER_SPECS": flow.env["SPECS_URL"]}
    assert flow.run("apply", "--yes", env=source).code == 0
    flow.run("history", "--json", env=source)
    flow.run("watch", "--once", "--log-format", "json", "--listen", "off", env=source)
    # Again with a wrong password: every request is refused.
    for args in (["-v", "plan"], ["apply", "--yes"]) + ((["status", "--json"],) if full else ()):
        flow.run(*args, env={VAR: wrong})


def live_watch(flow: Flow, scanner: Scanner) -> tuple[list[int], bool]:
    """A running watcher: webhook calls with no, a wrong and the right secret; the store's
    -wal and -shm are scanned while it holds the store open. Returns the status codes and
    whether the -wal file existed to be scanned."""
    port = free_port()
    log = flow.ws.root / "watch.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    command = [PY, "-m", "reconciler", "watch", "--listen", f"127.0.0.1:{port}"]
    with log.open("w") as sink:
        process = subprocess.Popen(
            [*command, "--interval", "10m", "--log-format", "json"],
            cwd=flow.ws.root,
            env={**environment, **flow.env},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: '"event": "watching"' in log.read_text(), process)
            wait_for(lambda: log.read_text().count('"event": "reconcile"') >= 1, process)
            codes = [
                post(port, {}),
                post(port, {"X-Reconciler-Secret": "wrong"}),
                post(port, {"X-Reconciler-Secret": flow.env["RECONCILER_WEBHOOK_SECRET"]}),
            ]
            wait_for(lambda: '"trigger": "webhook"' in log.read_text(), process)
            state = flow.ws.root / "state"
            wal = Path(f"{flow.ws.state}-wal").exists()
            for path in sorted(state.glob("reconciler.db*")):
                scanner.check(f"{path.name} (while watch runs)", path.read_bytes())
        finally:
            process.terminate()
            process.wait(timeout=30)
    scanner.check("watch log", log.read_text())
    flow.results.append(("watch (live)", CliResult(process.returncode, "", log.read_text())))
    return codes, wal


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert process.poll() is None and time.monotonic() < deadline, "watch did not get there"
        time.sleep(0.05)


def post(port: int, headers: dict[str, str]) -> int:
    url = f"http://127.0.0.1:{port}/hooks/reconcile"
    request = urllib.request.Request(url, data=b"{}", method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.mark.timeout(600)
def test_a_sentinel_credential_never_leaks(ws: Workspace) -> None:
    started = time.monotonic()
    password, wrong = sentinel("password"), sentinel("wrong")
    alert_token, hook_secret = sentinel("alert"), sentinel("webhook")
    build_servers(ws.root)
    down = free_port()
    env = {VAR: password, ALERT_VAR: alert_token, "RECONCILER_WEBHOOK_SECRET": hook_secret}
    flow = Flow(ws, env)
    with (
        GitHttpServer(ws.root / "http", username="bot", password=password) as http,
        GitHttpServer(ws.root / "refusing", username="bot", password="another-one") as refusing,
        Receiver() as receiver,
    ):
        write_specs(flow, http, refusing, down, receiver)
        flow.env["SPECS_URL"] = specs_repository(ws.root, http, password)
        addresses = [
            "Mirror/secure",
            "Mirror/denied",
            "Mirror/down",
            "Taxonomy/docs",
            "Environment/prod",
            "Environment/broken",
        ]
        run_everything(flow, addresses, wrong)
        scanner = Scanner([password, wrong, alert_token, hook_secret])
        codes, wal_seen = live_watch(flow, scanner)
        accepted = [r for r in http.records if r.status != 401]
        refused = [r for r in refusing.records if r.status == 401]
        bodies, headers = list(receiver.bodies), list(receiver.headers)

    # The flow really used the credentials, and really failed where it should.
    assert accepted and all(r.user == "bot" for r in accepted)
    assert refused and not [r for r in refusing.records if r.status != 401]
    assert git("rev-parse", "main", cwd=ws.root / "http" / "dst.git").returncode == 0
    assert git("show", "main:taxonomy/index.json", cwd=ws.root / "http" / "site.git").stdout
    assert (ws.root / "deploy" / "prod" / "current" / "VERSION").read_text() == "v1\n"
    assert bodies and (ws.root / "state" / "alerts.jsonl").read_text().strip()
    assert all(h.get("Authorization") == alert_token for h in headers)  # delivered, only there
    failing = [out for cmd, out in flow.results if out.code != 0]
    assert any("Unauthorized" in r.output for r in failing)
    assert any("Connection refused" in r.output for r in failing)

    assert codes == [401, 401, 202]
    assert wal_seen  # the write-ahead log was there to be searched
    for command, result in flow.results:
        scanner.check(f"`{command}` stdout", result.stdout)
        scanner.check(f"`{command}` stderr", result.stderr)
    for index, body in enumerate(bodies):
        scanner.check(f"webhook body {index}", body)
    scanner.tree(ws.root)
    record(
        "secrets",
        time.monotonic() - started,
        places_checked=scanner.places,
        commands_run=len(flow.results),
        leaked=len(scanner.leaks),
    )
    assert scanner.leaks == [], "\n".join(scanner.leaks)
