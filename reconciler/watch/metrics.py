"""Metrics computed from the store (`reconciler metrics`), and watch mode's live ones.

Both render through prometheus-client, so `/metrics` and `metrics --format prometheus`
speak the same text format.
"""

from __future__ import annotations

import math
from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from reconciler.health.kind import POLICY_KIND
from reconciler.health.policies import RANK
from reconciler.kinds.base import Activity, Checker
from reconciler.kinds.registry import Registry
from reconciler.store import Store
from reconciler.store.health import HealthRecords


def store_metrics(store: Store, registry: Registry) -> dict[str, Any]:
    """Success rates and timings of syncs, deploys and remediations; resources per health.

    SQLite counts the journal's finished entries by address, status and duration (from an
    index: the journal's rows are never read); the few groups are summed here per activity.
    """
    records = HealthRecords(store)
    outcomes = records.remediation_outcomes()
    done, failed = outcomes.get("done", 0), outcomes.get("failed", 0)
    activities: dict[str, Activity | None] = {}
    by_activity: dict[Activity | None, list[dict[str, Any]]] = {"sync": [], "deploy": []}
    for group in records.journal_durations():
        kind = group["address"].partition("/")[0]
        if kind not in activities:
            activities[kind] = _activity(registry, kind)
        by_activity.setdefault(activities[kind], []).append(group)
    return {
        "sync": _summary(by_activity["sync"]),
        "deploy": _summary(by_activity["deploy"]),
        "remediation": {"total": done + failed, "success_rate": _rate(done, done + failed)},
        "resources_by_health": resources_by_health(records),
    }


def resources_by_health(records: HealthRecords) -> dict[str, int]:
    """Stored resources counted by their latest health (a policy's verdict, else observed)."""
    verdicts: dict[str, str] = {}
    for row in records.latest_results():
        old = verdicts.get(row["address"], "Healthy")
        verdicts[row["address"]] = max(old, row["status"], key=lambda s: RANK.get(s, 3))
    tally: Tally[str] = Tally()
    for row in records.observed_health():
        if row["kind"] == POLICY_KIND:
            continue
        fallback = row["health"] if row["observed"] else "Unknown"
        tally[verdicts.get(row["address"], fallback)] += 1
    return dict(sorted(tally.items()))


def _activity(registry: Registry, kind: str) -> Activity | None:
    """Whether applying the kind is a sync or a deploy (None: neither, or a kind unknown)."""
    controller = registry[kind] if kind in registry.kinds() else None
    return controller.activity if isinstance(controller, Checker) else None


def _summary(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """Count, success rate, mean and p95 of groups {status, ms, n}: the figures a list of
    every duration in seconds would give, to the bit (the mean is `statistics.fmean`'s
    exactly rounded sum, divided by the count)."""
    total = sum(int(g["n"]) for g in groups)
    ok = sum(int(g["n"]) for g in groups if g["status"] == "done")
    if not total:
        return {"total": 0, "success_rate": None, "mean_seconds": None, "p95_seconds": None}
    counts: Tally[int] = Tally()
    for group in groups:
        counts[int(group["ms"])] += int(group["n"])
    # Each duration as the float a division by 1000 gives, summed exactly over a common
    # power-of-two denominator; one correctly rounded division, as math.fsum rounds.
    ratios = {ms: (ms / 1000).as_integer_ratio() for ms in counts}
    denominator = max(q for _p, q in ratios.values())
    numerator = sum(p * (denominator // q) * counts[ms] for ms, (p, q) in ratios.items())
    return {
        "total": total,
        "success_rate": _rate(ok, total),
        "mean_seconds": round((numerator / denominator) / total, 3),
        "p95_seconds": round(_nth(counts, max(0, math.ceil(0.95 * total) - 1)), 3),
    }


def _nth(counts: Tally[int], index: int) -> float:
    """The `index`-th smallest duration (from 0), in seconds, of {milliseconds: count}."""
    seen = 0
    for ms in sorted(counts):
        seen += counts[ms]
        if seen > index:
            return ms / 1000
    raise IndexError(index)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


class StoreCollector(Collector):
    """Exposes store_metrics() as Prometheus gauges."""

    def __init__(self, store: Store, registry: Registry) -> None:
        self.store = store
        self.registry = registry

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Read the store and yield one family per figure."""
        data = store_metrics(self.store, self.registry)
        for name in ("sync", "deploy"):
            part = data[name]
            yield _gauge(f"reconciler_{name}_actions", f"{name} actions recorded", part["total"])
            yield _gauge(
                f"reconciler_{name}_success_ratio", f"{name} success rate", part["success_rate"]
            )
            yield _gauge(
                f"reconciler_{name}_mean_seconds", f"mean {name} time", part["mean_seconds"]
            )
            yield _gauge(f"reconciler_{name}_p95_seconds", f"p95 {name} time", part["p95_seconds"])
        rate = data["remediation"]["success_rate"]
        yield _gauge("reconciler_remediation_success_ratio", "remediation success rate", rate)
        family = GaugeMetricFamily(
            "reconciler_resources", "resources by health status", labels=["health"]
        )
        for health, count in data["resources_by_health"].items():
            family.add_metric([health], count)
        yield family


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=math.nan if value is None else value)


def prometheus_text(store: Store, kinds: Registry) -> str:
    """`metrics --format prometheus`."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(store, kinds))
    return generate_latest(registry).decode()


class WatchMetrics:
    """The live metrics of one `watch` process, plus the store's, on one registry."""

    def __init__(self, store: Store, kinds: Registry) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(store, kinds))
        self.reconciles = Counter(
            "reconciler_reconciles", "reconciles run", ["outcome"], registry=self.registry
        )
        self.duration = Histogram(
            "reconciler_reconcile_duration_seconds",
            "time of one reconcile",
            registry=self.registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.actions = Counter(
            "reconciler_actions", "actions applied", ["outcome"], registry=self.registry
        )
        self.last_success = Gauge(
            "reconciler_last_success_timestamp_seconds",
            "when a reconcile last succeeded (unix time)",
            registry=self.registry,
        )

    def text(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
