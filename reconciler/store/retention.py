"""`state prune`: drop the revisions (and what belongs to them) outside a kept window.

The window is the newest `keep` revisions and/or those started within `older_than`; with
both, a revision goes when either says so (at most `keep`, none older). Whatever the
current state needs stays, wherever it falls:

- each resource's record, and the revision it was last applied in with its journal;
- each resource's newest history entry (what `status` and `history ADDR` show first);
- a revision still running, and every incident and remediation attempt (an open incident
  resumes from them, and `done_before` keeps a rollback from looping);
- the newest health result of every (policy, address) (`metrics`, `health` age);
- the newest `watch: reconcile` event (what `status` warns about);
- per resource, the newest version, every version its stored state names (a taxonomy's
  merge base, a rollback's pin) and the one before the current (`rollback`'s default).

Rows without a revision (events, health results, versions) go when they are older than
the window's oldest revision. The caller holds the apply lock, as an apply does.
"""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from reconciler.store.clock import now, stamp, utc_now
from reconciler.store.database import StoreDatabase, loads
from reconciler.store.records import Store

# The newest of these events is what `status` reports (engine.status.WATCH_EVENTS).
_WATCH_EVENTS = "watch: reconcile"
TABLES = (
    "revisions",
    "journal",
    "history",
    "events",
    "health_results",
    "versions",
    "version_chunks",
)
# The chunks no version that stays lists (store/contents.py): they go with the last version
# naming them. `{}` is the condition of the versions that go (none: FALSE).
_ORPHAN_CHUNKS = (
    "digest NOT IN (SELECT chunk.value FROM versions,"
    " json_each(versions.content, '$.\"$chunks\".digests') AS chunk WHERE NOT ({}))"
)


@dataclass(frozen=True)
class Window:
    """Where the kept window starts: the oldest revision id kept by rule, and the stamp
    before which rows without a revision go (None: no cut at all)."""

    first: int | None
    since: str | None


@dataclass
class Pruned:
    """What a prune removed (or, dry, would remove), per table, and the file's size."""

    counts: dict[str, int] = field(default_factory=dict)
    window: Window = Window(None, None)
    bytes_before: int = 0
    bytes_after: int = 0

    @property
    def total(self) -> int:
        """Rows removed in all."""
        return sum(self.counts.values())


def window(db: StoreDatabase, keep: int | None, older_than: timedelta | None) -> Window:
    """The kept window for `keep` revisions and/or `older_than`."""
    firsts: list[int] = []
    stamps: list[str] = []
    if keep is not None:
        rows = db.query(
            "SELECT id, started_at FROM revisions ORDER BY id DESC LIMIT 1 OFFSET ?", (keep - 1,)
        )
        if rows:
            firsts.append(int(rows[0]["id"]))
            stamps.append(rows[0]["started_at"])
    if older_than is not None:
        cutoff = stamp(utc_now() - older_than)
        rows = db.query("SELECT MIN(id) AS id FROM revisions WHERE started_at >= ?", (cutoff,))
        if rows[0]["id"] is not None:
            firsts.append(int(rows[0]["id"]))
        else:  # every revision is older: all may go
            rows = db.query("SELECT COALESCE(MAX(id), 0) + 1 AS id FROM revisions")
            firsts.append(int(rows[0]["id"]))
        stamps.append(cutoff)
    if not firsts:
        return Window(None, None)
    return Window(max(firsts), max(stamps))


def _rules(db: StoreDatabase, edge: Window) -> dict[str, tuple[str, tuple[Any, ...]]]:
    """Per table, the WHERE clause (and its parameters) of the rows that go."""
    first, since = edge.first, edge.since
    protected = (
        "(SELECT revision_id FROM resources WHERE revision_id IS NOT NULL "
        "UNION SELECT id FROM revisions WHERE outcome = 'running')"
    )
    rules: dict[str, tuple[str, tuple[Any, ...]]] = {
        "revisions": (f"id < ? AND id NOT IN {protected}", (first,)),
        "journal": (f"revision_id < ? AND revision_id NOT IN {protected}", (first,)),
        "history": (
            "id NOT IN (SELECT MAX(id) FROM history GROUP BY address) AND ("
            f"(revision_id < ? AND revision_id NOT IN {protected}) "
            "OR (revision_id IS NULL AND at < ?))",
            (first, since),
        ),
        "events": (
            "at < ? AND id IS NOT (SELECT MAX(id) FROM events WHERE substr(message, 1, ?) = ?)",
            (since, len(_WATCH_EVENTS), _WATCH_EVENTS),
        ),
        "health_results": (
            "at < ? AND id NOT IN (SELECT MAX(id) FROM health_results GROUP BY policy, address)",
            (since,),
        ),
    }
    doomed = _doomed_versions(db, since)
    if doomed:
        # One clause per resource: its version numbers that go (few resources have versions).
        clauses = " OR ".join(
            f"(address = ? AND version IN ({', '.join('?' * len(numbers))}))"
            for numbers in doomed.values()
        )
        params = tuple(p for address, numbers in doomed.items() for p in (address, *numbers))
        rules["versions"] = (clauses, params)
    going, params = rules.get("versions", ("FALSE", ()))
    rules["version_chunks"] = (_ORPHAN_CHUNKS.format(going), params)
    return rules


def _doomed_versions(db: StoreDatabase, since: str | None) -> dict[str, list[int]]:
    """Per address, the versions older than the window that nothing may still name."""
    if since is None:
        return {}
    named: dict[str, set[int]] = {}
    for row in db.query("SELECT address, state FROM resources"):
        state = loads(row["state"])
        units = state.values() if isinstance(state, dict) else []
        applied = {u.get("version") for u in units if isinstance(u, dict)}
        named[row["address"]] = {n for n in applied if isinstance(n, int)}
    known: dict[str, list[tuple[int, str]]] = {}
    for row in db.query("SELECT address, version, created_at FROM versions ORDER BY version"):
        known.setdefault(row["address"], []).append((int(row["version"]), row["created_at"]))
    doomed: dict[str, list[int]] = {}
    for address, versions in known.items():
        numbers = [number for number, _at in versions]
        kept = {numbers[-1], *named.get(address, set())}
        current = max(named.get(address) or {numbers[-1]})
        earlier = [n for n in numbers if n < current]
        if earlier:  # what `rollback ADDR` without --to returns to
            kept.add(earlier[-1])
        gone = [number for number, at in versions if at < since and number not in kept]
        if gone:
            doomed[address] = gone
    return doomed


def prune(
    db: StoreDatabase, keep: int | None, older_than: timedelta | None, dry_run: bool = False
) -> Pruned:
    """Remove (or with `dry_run` count) the rows outside the window, then VACUUM so the
    file shrinks. The caller holds the apply lock."""
    result = Pruned(bytes_before=_size(db))
    with db.transaction():  # the window and the deletes see one state of the store
        result.window = edge = window(db, keep, older_than)
        if edge.first is None:
            result.counts = dict.fromkeys(TABLES, 0)
            result.bytes_after = result.bytes_before
            return result
        rules = _rules(db, edge)
        # Children first: a journal row names its revision (a foreign key).
        tables = ("journal", "history", "revisions", "events", "health_results", "versions")
        for table in (*tables, "version_chunks"):
            if table not in rules:
                result.counts[table] = 0
                continue
            where, params = rules[table]
            if dry_run:
                rows = db.query(f"SELECT COUNT(*) AS n FROM {table} WHERE {where}", params)
                result.counts[table] = int(rows[0]["n"])
            else:
                result.counts[table] = db.execute(
                    f"DELETE FROM {table} WHERE {where}", params
                ).rowcount
        result.counts = {table: result.counts[table] for table in TABLES}
        if not dry_run and result.total:
            summary = ", ".join(f"{n} {t}" for t, n in result.counts.items() if n)
            db.execute(
                "INSERT INTO events(at, level, address, message) VALUES (?, 'info', NULL, ?)",
                (now(), f"state prune: removed {summary}"),
            )
    if not dry_run and result.total:
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    result.bytes_after = _size(db)
    return result


def _size(db: StoreDatabase) -> int:
    """Bytes of the store file and its write-ahead log."""
    total = 0
    for path in (db.path, db.path.with_name(db.path.name + "-wal")):
        with suppress(FileNotFoundError):
            total += os.stat(path).st_size
    return total


def prune_locked(
    store: Store,
    keep: int | None,
    older_than: timedelta | None,
    dry_run: bool = False,
    lock_timeout: float = 0.0,
    command: str = "state prune",
) -> tuple[Pruned, str | None]:
    """`prune` under the apply lock (a prune never races an apply); a dry run counts without
    it. Also returns the note of a dead holder's lock reclaimed."""
    if dry_run:
        return prune(store, keep, older_than, dry_run=True), None
    note = store.lock.acquire(command, lock_timeout)
    try:
        if note:
            store.add_event("warning", note)
        return prune(store, keep, older_than), note
    finally:
        store.lock.release()
