"""`watch`, `health`, `heal` and `metrics`: parse, call the engine, render."""

from __future__ import annotations

import json
import os
import signal
import sys
from types import FrameType
from typing import Any

import click
from rich.markup import escape

from reconciler.cli import render
from reconciler.cli.context import current_workspace, seconds, stdout
from reconciler.engine.planning import load
from reconciler.health.healing import heal
from reconciler.health.policies import UNHEALTHY, HealthReport, check_health
from reconciler.redaction import printable_data
from reconciler.store import now
from reconciler.watch.metrics import prometheus_text, store_metrics
from reconciler.watch.watching import Watcher, WatchOptions

SECRET_VARIABLE = "RECONCILER_WEBHOOK_SECRET"


def _listen(text: str) -> tuple[str, int] | None:
    if text.lower() in ("", "off", "none"):
        return None
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(
            f"{text!r}: use HOST:PORT, e.g. 127.0.0.1:8765", param_hint="--listen"
        )
    return host.strip("[]") or "127.0.0.1", int(port)


@click.command()
@click.option("--interval", default="5m", show_default=True, help="Reconcile at least this often.")
@click.option(
    "--poll", default="30s", show_default=True, help="Poll a git specs source this often."
)
@click.option(
    "--listen",
    default="127.0.0.1:8765",
    show_default=True,
    help="HOST:PORT for /hooks/reconcile, /metrics, /healthz ('off': none).",
)
@click.option("--once", is_flag=True, help="One cycle (reconcile, health, heal), then exit.")
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@click.option(
    "--keep",
    default=1000,
    show_default=True,
    type=click.IntRange(min=0),
    help="Prune the store hourly to this many revisions (0: keep all).",
)
@click.option(
    "--keep-for",
    default="90d",
    show_default=True,
    help="And to revisions younger than this (0: no age limit).",
)
def watch(
    interval: str, poll: str, listen: str, once: bool, log_format: str, keep: int, keep_for: str
) -> int:
    """Reconcile continuously: on spec changes, new commits, webhooks and every interval."""
    options = WatchOptions(
        interval=seconds(interval, "--interval", positive=True),
        poll=seconds(poll, "--poll", positive=True),
        listen=_listen(listen),
        secret=os.environ.get(SECRET_VARIABLE) or None,
        once=once,
        keep=keep,
        keep_for=seconds(keep_for, "--keep-for"),
    )
    watcher = Watcher(current_workspace(), options, _logger(log_format))
    if once:
        return 0 if watcher.once() else 1

    def stop(signum: int, _frame: FrameType | None) -> None:
        watcher.log({"event": "signal", "signal": signal.Signals(signum).name})
        watcher.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    watcher.run()
    return 0


def _logger(log_format: str) -> Any:
    def log(event: dict[str, Any]) -> None:
        event = printable_data(event)  # hook and git output: no terminal control, even escaped
        at = now()
        if log_format == "json":
            line = json.dumps({"at": at, **event}, sort_keys=True, default=str)
        else:
            fields = " ".join(f"{k}={_text(v)}" for k, v in event.items() if k != "event")
            line = f"{at} {event['event']} {fields}".rstrip()
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    return log


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return json.dumps(text) if (" " in text or not text) else text


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def health(as_json: bool) -> int:
    """Run the health policies' checks now; exit 1 when anything is unhealthy."""
    workspace = current_workspace()
    report = check_health(workspace, load(workspace))
    if as_json:
        render.print_json(stdout, report.to_json())
    else:
        _show_health(report)
    return 1 if report.status in UNHEALTHY else 0


def _show_health(report: HealthReport) -> None:
    render.table(
        stdout,
        ("RESOURCE", "POLICY", "HEALTH", "FAILING", "MESSAGE"),
        [(r.address, r.policy, r.status, r.failing or "-", r.message) for r in report.resources],
    )
    stdout.print(f"overall: {report.status}")


@click.command("heal")
@click.option("--dry-run", is_flag=True, help="List the remediations due now; run none.")
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def heal_command(dry_run: bool, as_json: bool) -> int:
    """Check now, then run the remediations the policies call for."""
    workspace = current_workspace()
    specs = load(workspace)
    actions = heal(workspace, specs, check_health(workspace, specs), dry_run=dry_run)
    if as_json:
        render.print_json(stdout, [a.to_json() for a in actions])
    elif not actions:
        stdout.print("nothing to heal")
    for action in [] if as_json else actions:
        stdout.print(
            f"{escape(action.address)} ({escape(action.policy)}): {action.step} "
            f"#{action.attempt} {action.outcome}: {escape(action.message)}"
        )
    return 1 if any(a.outcome == "failed" for a in actions) else 0


@click.command()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["prometheus", "json"]),
    default="prometheus",
    show_default=True,
)
def metrics(fmt: str) -> int:
    """Success rates, timings and resources per health, computed from the store."""
    workspace = current_workspace()
    if fmt == "json":
        render.print_json(stdout, store_metrics(workspace.store, workspace.registry))
    else:
        sys.stdout.write(prometheus_text(workspace.store, workspace.registry))
    return 0
