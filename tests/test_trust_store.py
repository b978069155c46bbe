"""Issue 12, items 10 and 14: a live lock is never taken, a holder whose lock was forced
away stops, an empty or foreign state.db is refused, and read-only commands work on a
store nobody can write (real processes, real PID namespaces and read-only mounts)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.store import Store
from reconciler.store.schema import SCHEMA_VERSION
from tests.conftest import ROOT, Workspace
from tests.gitservers import WorkRepo, refs_of, seed_bare

PY = sys.executable


def mirror(ws: Workspace) -> None:
    """specs/core.yaml mirroring ws/source.git (seeded) to ws/dest1.git."""
    seed_bare(ws.root / "source.git", branches=("main", "dev"), tags=("v1",))
    ws.write_spec(
        "core.yaml",
        """
        apiVersion: reconciler/v1
        kind: Mirror
        metadata: {name: core}
        spec:
          source: {url: ../source.git}
          destinations:
            - url: ../dest1.git
        """,
    )


def proc_start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat: when the process started, in clock ticks after boot."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[19])


def write_lock(ws: Workspace, pid: int, **identity: object) -> None:
    """A lock row as another process would have written it (our identity unless told)."""
    row: dict[str, object] = {
        "id": 1,
        "holder": "x",
        "pid": pid,
        "host": socket.gethostname(),
        "command": "apply",
        "acquired_at": "2026-01-01T00:00:00Z",
        "boot_id": Path("/proc/sys/kernel/random/boot_id").read_text().strip(),
        "pid_namespace": os.readlink("/proc/self/ns/pid"),
        "start_time": proc_start_time(pid) if os.path.exists(f"/proc/{pid}") else None,
        "token": "theirs",
        **identity,
    }
    Store(ws.state).close()
    with contextlib.closing(sqlite3.connect(ws.state)) as db:
        columns = [c[1] for c in db.execute("PRAGMA table_info(lock)")]
        names = [c for c in row if c in columns]
        db.execute(
            f"INSERT OR REPLACE INTO lock({', '.join(names)}) "
            f"VALUES ({', '.join('?' for _ in names)})",
            [row[c] for c in names],
        )
        db.commit()


def dead_pid() -> int:
    process = subprocess.Popen([PY, "-c", "pass"])
    process.wait()
    return process.pid


def lock_row(ws: Workspace) -> dict[str, object] | None:
    with contextlib.closing(sqlite3.connect(ws.state)) as db:
        db.row_factory = sqlite3.Row
        row = db.execute("SELECT * FROM lock").fetchone()
        return dict(row) if row else None


# -- item 10: a live lock is never taken ---------------------------------------------------

HOLD_IN_NAMESPACE = """
import os, sys, time
from pathlib import Path
outside = {int(p) for p in sys.argv[2].split(",")}
while True:  # pid 1 of a new PID namespace: fork until a pid is free outside it too
    child = os.fork()
    if child == 0:
        if os.getpid() in outside:
            os._exit(0)
        from reconciler.store import Store
        Store(Path(sys.argv[1])).lock.acquire("apply (in a container)")
        print(os.getpid(), flush=True)
        time.sleep(600)
        os._exit(0)
    _, status = os.waitpid(child, 0)
    if status:
        os._exit(1)
    if child not in outside:
        os._exit(0)
"""


def test_a_lock_held_in_another_pid_namespace_is_not_taken(ws: Workspace) -> None:
    """A real process in its own PID namespace (a container sharing the state volume)
    holds the lock under a pid that does not exist here: apply refuses, naming it."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) for a PID namespace")
    mirror(ws)
    Store(ws.state).close()
    outside = ",".join(p for p in os.listdir("/proc") if p.isdigit())
    holder = subprocess.Popen(
        ["unshare", "--pid", "--fork", PY, "-c", HOLD_IN_NAMESPACE, str(ws.state), outside],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        assert holder.stdout is not None
        inner = int(holder.stdout.readline())
        assert not os.path.exists(f"/proc/{inner}")  # its pid means nothing here
        refused = ws.run("apply", "--yes")
        assert refused.code == 1, refused.output
        assert f"state is locked by pid {inner} on {socket.gethostname()}" in refused.stderr
        assert "(apply (in a container))" in refused.stderr
        assert "another PID namespace" in refused.stderr
        assert not (ws.root / "dest1.git").exists()  # nothing applied
        unlock = ws.run("state", "unlock")
        assert unlock.code == 1 and "another PID namespace" in unlock.stderr
        assert lock_row(ws) is not None  # still theirs
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()


def test_a_lock_written_from_another_pid_namespace_is_not_reclaimed(ws: Workspace) -> None:
    """The same without root: the row another namespace wrote names a pid that is gone here."""
    mirror(ws)
    write_lock(ws, dead_pid(), pid_namespace="pid:[4026599999]", start_time=12345)
    refused = ws.run("apply", "--yes")
    assert refused.code == 1, refused.output
    assert "state is locked by pid" in refused.stderr
    assert "another PID namespace (pid:[4026599999]" in refused.stderr
    assert "state unlock --force" in refused.stderr
    assert not (ws.root / "dest1.git").exists()
    forced = ws.run("state", "unlock", "--force")
    assert forced.code == 0 and "released" in forced.stdout
    assert ws.run("apply", "--yes").code == 0
    assert ws.run("plan", "--detailed-exitcode").code == 0


def test_a_lock_from_another_boot_of_the_host_name_is_not_reclaimed(ws: Workspace) -> None:
    """Another boot id under our host name: a reboot, or another machine of that name."""
    mirror(ws)
    write_lock(ws, dead_pid(), boot_id="00000000-0000-0000-0000-000000000000")
    refused = ws.run("apply", "--yes")
    assert refused.code == 1, refused.output
    assert "ran under another boot (00000000-" in refused.stderr
    assert not (ws.root / "dest1.git").exists()


@pytest.mark.skipif(not Path("/etc/machine-id").is_file(), reason="no machine id here")
def test_a_lock_from_before_this_machines_restart_is_reclaimed(ws: Workspace) -> None:
    """Our own machine id under another boot, taken before this kernel booted: a reboot
    ended the holder (a watch service after a power cut must not stay locked out)."""
    mirror(ws)
    write_lock(
        ws,
        os.getpid(),  # alive in this boot, but the lock's pid belonged to the earlier one
        boot_id="00000000-0000-0000-0000-000000000000",
        machine_id=Path("/etc/machine-id").read_text().strip(),
        acquired_at="2000-01-01T00:00:00Z",
    )
    applied = ws.run("apply", "--yes")
    assert applied.code == 0, applied.output
    assert "its machine has restarted since" in applied.stdout
    assert refs_of(ws.root / "dest1.git") == refs_of(ws.root / "source.git")


def test_a_lock_from_another_machine_of_the_same_name_is_not_reclaimed(ws: Workspace) -> None:
    """Another machine id (or a lock taken after this boot) under another boot: refused."""
    mirror(ws)
    write_lock(
        ws,
        dead_pid(),
        boot_id="00000000-0000-0000-0000-000000000000",
        machine_id="0" * 32,
        acquired_at="2000-01-01T00:00:00Z",
    )
    refused = ws.run("apply", "--yes")
    assert refused.code == 1, refused.output
    assert "ran under another boot (00000000-" in refused.stderr
    assert not (ws.root / "dest1.git").exists()


def test_a_lock_whose_process_died_here_is_reclaimed(ws: Workspace) -> None:
    """A real holder in our namespace, killed -9 while holding the lock."""
    mirror(ws)
    Store(ws.state).close()
    holder = subprocess.Popen(
        [
            PY,
            "-c",
            "import sys, time; from pathlib import Path; from reconciler.store import Store;"
            "Store(Path(sys.argv[1])).lock.acquire('apply (killed)'); print('locked', flush=True);"
            "time.sleep(600)",
            str(ws.state),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    row = lock_row(ws)
    assert row is not None and row["pid"] == holder.pid
    assert row["boot_id"] and row["pid_namespace"] and row["start_time"]
    holder.kill()
    holder.wait()
    holder.stdout.close()
    applied = ws.run("apply", "--yes")
    assert applied.code == 0, applied.output
    assert (
        "reclaimed the lock of pid" in applied.stdout and "that process is gone" in applied.stdout
    )
    assert refs_of(ws.root / "dest1.git") == refs_of(ws.root / "source.git")
    assert lock_row(ws) is None
    assert ws.run("plan", "--detailed-exitcode").code == 0


def test_a_lock_whose_pid_now_names_another_process_is_reclaimed(ws: Workspace) -> None:
    """The pid is alive, but its process started at another time: the holder is gone."""
    mirror(ws)
    other = subprocess.Popen([PY, "-c", "import time; time.sleep(600)"])
    try:
        started = proc_start_time(other.pid)
        write_lock(ws, other.pid, start_time=started - 100)
        applied = ws.run("apply", "--yes")
        assert applied.code == 0, applied.output
        assert f"pid {other.pid} now belongs to another process" in applied.stdout
        assert ws.run("plan", "--detailed-exitcode").code == 0
        # The same pid with its true start time is a live holder: refused.
        write_lock(ws, other.pid)
        refused = ws.run("apply", "--yes")
        assert refused.code == 1 and "is still running" in refused.stderr
    finally:
        other.kill()
        other.wait()


SLOW_HOOK = """
import sys, time
from pathlib import Path
markers = Path(sys.argv[1])
(markers / f"started-{sys.argv[2]}").write_text("")
for _ in range(600):
    if (markers / "go").exists():
        break
    time.sleep(0.1)
"""


def test_a_holder_whose_lock_is_forced_away_stops_before_its_next_action(
    ws: Workspace,
) -> None:
    """Two environments one after the other; the lock is forced away while the first's
    activate hook runs: the second is never deployed."""
    app = WorkRepo.create(ws.root / "app")
    app.commit("v1", {"VERSION": "v1\n"})
    markers = ws.root / "markers"
    markers.mkdir()
    hook = ws.root / "slow_hook.py"
    hook.write_text(SLOW_HOOK)
    for name in ("one", "two"):
        ws.write_spec(
            f"{name}.yaml",
            f"""
            apiVersion: reconciler/v1
            kind: Environment
            metadata: {{name: {name}}}
            spec:
              source: {{repo: ../app, ref: main}}
              target: {{path: ../deploy/{name}}}
              activate: [{{run: ["{PY}", "{hook}", "{markers}", "{name}"], timeout: 60s}}]
            """,
        )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    apply = subprocess.Popen(
        [PY, "-m", "reconciler", "apply", "--yes", "--parallelism", "1"],
        cwd=ws.root,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list(markers.glob("started-*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        first = [p.name for p in markers.glob("started-*")]
        assert len(first) == 1, apply.communicate(timeout=60)
        forced = ws.run("state", "unlock", "--force")
        assert forced.code == 0 and "released the lock held by" in forced.stdout
        (markers / "go").write_text("")
        out, err = apply.communicate(timeout=120)
    finally:
        apply.kill()
    assert apply.returncode == 1, out + err
    assert "no longer holds the state lock" in out and "1 actions not started" in out
    assert [p.name for p in markers.glob("started-*")] == first  # the second never ran
    other = "two" if first == ["started-one"] else "one"
    assert not (ws.root / "deploy" / other / "current").exists()
    assert lock_row(ws) is None  # its release did not remove anybody else's lock
    again = ws.run("apply", "--yes", "--parallelism", "1")  # a later apply converges
    assert again.code == 0, again.output
    assert ws.run("plan", "--detailed-exitcode").code == 0


def test_an_older_store_gains_the_lock_identity_with_a_backup(ws: Workspace) -> None:
    Store(ws.state).close()
    with contextlib.closing(sqlite3.connect(ws.state)) as db:
        for column in ("boot_id", "pid_namespace", "start_time", "token"):
            db.execute(f"ALTER TABLE lock DROP COLUMN {column}")
        db.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
        db.commit()
    listed = ws.run("state", "list")
    assert listed.code == 0, listed.output
    assert f"schema version {SCHEMA_VERSION}" in listed.stdout
    assert "migrated the state store from schema v3" in listed.stderr
    assert (ws.state.parent / "reconciler.db.v3.bak").exists()
    store = Store(ws.state)
    store.lock.acquire("test")
    row = lock_row(ws)
    assert row is not None and row["token"] and row["boot_id"]
    store.lock.release()
    assert lock_row(ws) is None


# -- item 14: an empty or foreign state.db is not a new store --------------------------------


def test_a_zero_byte_store_is_refused_and_left_alone(ws: Workspace) -> None:
    mirror(ws)
    ws.state.parent.mkdir(parents=True)
    ws.state.write_bytes(b"")
    for command in (("state", "list"), ("status",), ("plan",), ("apply", "--yes")):
        result = ws.run(*command)
        assert result.code == 1, (command, result.output)
        assert "the file is empty (0 bytes)" in result.stderr, result.stderr
        assert "Traceback" not in result.output
    assert ws.state.stat().st_size == 0
    assert not (ws.root / "dest1.git").exists()


@pytest.mark.parametrize("tables", [["users", "orders"], []])
def test_a_sqlite_file_without_reconcilers_tables_is_refused(
    ws: Workspace, tables: list[str]
) -> None:
    ws.state.parent.mkdir(parents=True)
    with contextlib.closing(sqlite3.connect(ws.state)) as db:
        for table in tables:
            db.execute(f"CREATE TABLE {table}(id INTEGER PRIMARY KEY, name TEXT)")
        db.execute("PRAGMA user_version = 7")  # a header change, so an empty one is a file
        db.commit()
    before = ws.state.read_bytes()
    result = ws.run("state", "list")
    assert result.code == 1, result.output
    assert "without reconciler's schema" in result.stderr
    assert ("its tables are orders, users" if tables else "it has no tables") in result.stderr
    assert ws.run("apply", "--yes").code == 1
    assert ws.state.read_bytes() == before  # not migrated, not switched to WAL
    assert not Path(f"{ws.state}-wal").exists()


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(ws: Workspace) -> None:
    ws.state.parent.mkdir(parents=True)
    ws.state.write_text("backup of something else\n")
    result = ws.run("history")
    assert result.code == 1 and "the file is not a SQLite database" in result.stderr
    assert ws.state.read_text() == "backup of something else\n"


def test_a_new_path_is_a_new_store(ws: Workspace) -> None:
    listed = ws.run("state", "list")
    assert listed.code == 0, listed.output
    assert f"serial 0, schema version {SCHEMA_VERSION}" in listed.stdout
    assert ws.state.stat().st_size > 0
    assert not [p for p in ws.state.parent.iterdir() if p.name.startswith(".")]  # no litter


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """Make `directory` (and its files) unwritable, really: a read-only bind mount as root
    (chmod does not stop root), chmod otherwise; skips where neither holds."""
    mounted = False
    modes = {p: p.stat().st_mode for p in [directory, *directory.iterdir()]}
    if os.geteuid() == 0:
        done = subprocess.run(
            ["mount", "--bind", "-o", "ro", str(directory), str(directory)],
            capture_output=True,
        )
        mounted = done.returncode == 0
    else:
        for path in modes:
            path.chmod(0o555 if path.is_dir() else 0o444)
    try:
        probe = directory / "probe"
        try:
            probe.write_text("")
        except OSError:
            pass
        else:
            probe.unlink()
            pytest.skip("cannot make a directory read-only here")
        yield
    finally:
        if mounted:
            subprocess.run(["umount", str(directory)], check=True)
        for path, mode in modes.items():
            path.chmod(mode)


def test_read_only_commands_work_on_a_read_only_store(ws: Workspace) -> None:
    mirror(ws)
    assert ws.run("apply", "--yes").code == 0
    copy = ws.root / "copy" / "reconciler.db"  # a copy, as the item asks
    copy.parent.mkdir()
    shutil.copy(ws.state, copy)
    state = ("--state", str(copy))
    with read_only(copy.parent):
        listed = ws.run(*state, "state", "list")
        assert listed.code == 0, listed.output
        assert "Mirror/core" in listed.stdout
        shown = ws.run(*state, "state", "show", "Mirror/core")
        assert shown.code == 0 and json.loads(shown.stdout)["outcome"] == "done"
        history = ws.run(*state, "history")
        assert history.code == 0 and "success" in history.stdout, history.output
        status = ws.run(*state, "status", "--json")
        assert status.code == 0, status.output
        assert [r["sync"] for r in json.loads(status.stdout)] == ["Synced"]
        refused = ws.run(*state, "apply", "--yes")  # a writer still says why it cannot
        assert refused.code == 1 and "Traceback" not in refused.output
        assert "read-only" in refused.stderr or "readonly" in refused.stderr
    assert [p.name for p in copy.parent.iterdir()] == ["reconciler.db"]  # nothing written


def test_read_only_commands_see_what_a_killed_writer_left_in_the_wal(ws: Workspace) -> None:
    """A writer killed before closing leaves its last commits only in the -wal file."""
    mirror(ws)
    assert ws.run("apply", "--yes").code == 0
    killed = subprocess.run(
        [
            PY,
            "-c",
            "import os, sys; from pathlib import Path; from reconciler.store import Store;"
            "s = Store(Path(sys.argv[1])); s.begin_revision('watch', 'specs', None, 'sha256:x');"
            "os._exit(0)",
            str(ws.state),
        ],
        cwd=ROOT,
    )
    assert killed.returncode == 0
    assert Path(f"{ws.state}-wal").stat().st_size > 0
    with read_only(ws.state.parent):
        history = ws.run("history", "--json")
        assert history.code == 0, history.output
        assert [r["trigger"] for r in json.loads(history.stdout)] == ["watch", "apply"]
