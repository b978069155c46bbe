"""The SQLite store: migrations, serial, journal, and its refusals."""

from __future__ import annotations

import sqlite3

from reconciler.redaction import Redactor, strip_userinfo
from reconciler.store import Observation, ResourceRecord, Store
from reconciler.store.schema import SCHEMA_VERSION
from tests.conftest import Workspace


def test_a_new_store_is_migrated_and_reopening_changes_nothing(ws: Workspace) -> None:
    store = Store(ws.state)
    assert store.schema_version() == SCHEMA_VERSION and store.serial() == 0
    store.close()
    again = Store(ws.state)
    assert again.schema_version() == SCHEMA_VERSION and again.serial() == 0
    mode = again.query("PRAGMA journal_mode")[0]["journal_mode"]
    assert mode == "wal"


def test_an_older_store_is_migrated_forward(ws: Workspace) -> None:
    Store(ws.state).close()
    with sqlite3.connect(ws.state) as db:  # make it look like a version 1 store
        db.execute("DROP TABLE versions")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    store = Store(ws.state)
    assert store.schema_version() == SCHEMA_VERSION
    assert store.add_version("Taxonomy/t", {"terms": []}, {}) == 1
    assert store.add_version("Taxonomy/t", {"terms": []}, {}) == 1  # same content, same number
    assert store.add_version("Taxonomy/t", {"terms": [1]}, {"note": "x"}) == 2
    assert [v["version"] for v in store.versions("Taxonomy/t")] == [2, 1]
    assert store.version("Taxonomy/t", 2)["content"] == {"terms": [1]}


def test_every_change_of_state_bumps_the_serial_and_observations_do_not(ws: Workspace) -> None:
    store = Store(ws.state)
    revision = store.begin_revision("apply", "specs", None, "sha256:x")
    entry = store.journal_add(revision, "Mirror/a", "/dest.git", [{"op": "create"}])
    record = ResourceRecord(
        "Mirror/a",
        "Mirror",
        "a",
        {},
        "sha256:x",
        {"/dest.git": {}},
        revision,
        "now",
        "done",
        "ok",
        None,
    )
    before = store.serial()
    store.record_result(entry, "done", 1, "ok", {}, record, [{"revision": revision}])
    assert store.serial() == before + 1
    assert store.resource("Mirror/a") == record
    assert [e["status"] for e in store.journal_entries(revision)] == ["done"]
    store.save_observation(Observation("Mirror/a", "now", "f", "Synced", "Healthy", "", {}))
    assert store.serial() == before + 1


def test_a_store_from_a_newer_reconciler_is_refused(ws: Workspace) -> None:
    Store(ws.state).close()
    with sqlite3.connect(ws.state) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    result = ws.run("state", "list")
    assert result.code == 1
    assert "schema version 99 is newer" in result.stderr and "Traceback" not in result.output


def test_a_file_that_is_not_a_store_is_refused(ws: Workspace) -> None:
    ws.state.parent.mkdir(parents=True)
    ws.state.write_text("this is not sqlite " * 100)
    result = ws.run("state", "list")
    assert result.code == 1 and "not a usable reconciler state store" in result.stderr


def test_redaction_masks_secrets_and_url_credentials() -> None:
    redact = Redactor()
    redact.add("hunter22")
    text = "fatal: https://bot:hunter22@host/x.git failed; token hunter22"
    assert redact(text) == "fatal: https://***@host/x.git failed; token ***"
    assert strip_userinfo("https://bot:pw@host/x.git") == ("https://host/x.git", "bot", "pw")
    assert strip_userinfo("ssh://git@host/x.git") == ("ssh://git@host/x.git", None, None)
