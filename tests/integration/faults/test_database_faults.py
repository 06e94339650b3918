"""Database faults: PostgreSQL sessions terminated mid-run, a PostgreSQL restart (long version
only: it disturbs every client of the shared server), SQLite locked by another process."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url, text

from adapters.sql.store import SqlOutboxStore
from tests.conftest import THROWAWAY, fresh_schema
from tests.integration.faults.fault_receiver import FaultReceiver, Faults
from tests.integration.faults.fleet import (
    CAPACITY,
    Fleet,
    fault_env,
    feed,
    settle,
    top_up,
    wait_for,
)
from tests.integration.faults.invariants import assert_invariants
from tests.integration.faults.scale import is_long, report, scaled
from tests.integration.sql_stores import migrated_store
from tests.integration.worker_harness import SECRET

pytestmark = pytest.mark.faults
WORKERS = 2
ADMIN = "outbox-faults-admin"
RECOVERED = (
    "claim failed",
    "ack failed",
    "lease renewal failed",
    "database busy",
    "LISTEN connection lost",
)


@pytest.mark.postgres
def test_workers_whose_postgresql_sessions_are_terminated_mid_run_lose_nothing(
    pg_url: str, tmp_path: Path
) -> None:
    store = migrated_store(pg_url)
    terminations = scaled(8, 60)
    written = feed(store, scaled(3000, 30_000), "pg terminate")
    rng = random.Random(21)
    ended: list[tuple[int, int]] = []

    with (
        FaultReceiver(secret=SECRET, faults=Faults(latency_seconds=0.01)) as receiver,
        Fleet(fault_env(pg_url, receiver.url), tmp_path) as fleet,
    ):
        for _ in range(WORKERS):
            fleet.start()
        wait_for(lambda: len(fleet.ready()) == WORKERS, 30, "workers started")
        while len(ended) < terminations:
            time.sleep(rng.uniform(0.3, 1.2))
            top_up(store, written, len(ended))
            ended.append(terminate_sessions(store, [w.pid for w in fleet.alive()]))
        settle(store, timeout=scaled(120, 900))
        codes = fleet.stop_all()

    bound = terminations * WORKERS * CAPACITY
    tally = assert_invariants(store, written, receiver.deliveries(), held_at_faults=bound)
    report(
        f"pg-terminate[postgresql]: {terminations} rounds, {sum(e for e, _ in ended)} sessions "
        f"terminated ({sum(u for _, u in ended)} without application_name), "
        f"{recoveries(fleet.logs())} recovered errors logged, {tally.figures()}"
    )
    assert all(e >= 1 for e, _ in ended), ended
    assert codes == [0] * WORKERS, fleet.logs()[-3000:]
    store.close()


def test_workers_wait_out_a_sqlite_database_locked_by_another_process(
    sqlite_url: str, tmp_path: Path
) -> None:
    store = migrated_store(sqlite_url)
    # the long version also holds one lock past the workers' 30 s busy timeout
    holds = [2.5] * scaled(4, 10) + ([35.0] if is_long() else [])
    written = feed(store, scaled(3000, 30_000), "sqlite lock")
    database = make_url(sqlite_url).database
    assert database is not None

    with (
        FaultReceiver(secret=SECRET, faults=Faults(latency_seconds=0.01)) as receiver,
        Fleet(fault_env(sqlite_url, receiver.url), tmp_path) as fleet,
    ):
        for _ in range(WORKERS):
            fleet.start()
        wait_for(lambda: len(fleet.ready()) == WORKERS, 30, "workers started")
        for number, seconds in enumerate(holds):
            time.sleep(0.5)
            top_up(store, written, number)
            hold_exclusive_lock(database, seconds)
        settle(store, timeout=scaled(120, 900))
        codes = fleet.stop_all()

    bound = len(holds) * WORKERS * CAPACITY
    tally = assert_invariants(store, written, receiver.deliveries(), held_at_faults=bound)
    report(
        f"sqlite-locked[sqlite]: {len(holds)} exclusive locks ({sum(holds):g} s), "
        f"{recoveries(fleet.logs())} recovered errors logged, {tally.figures()}"
    )
    assert codes == [0] * WORKERS, fleet.logs()[-3000:]
    store.close()


@pytest.mark.postgres
@pytest.mark.skipif(not is_long(), reason="restarts the shared server: long version only")
def test_workers_survive_a_postgresql_restart(own_pg_schema: str, tmp_path: Path) -> None:
    store = migrated_store(own_pg_schema)
    written = feed(store, scaled(3000, 20_000), "pg restart")
    started_at = postmaster_start(store)

    with (
        FaultReceiver(secret=SECRET, faults=Faults(latency_seconds=0.01)) as receiver,
        Fleet(fault_env(own_pg_schema, receiver.url), tmp_path) as fleet,
    ):
        for _ in range(WORKERS):
            fleet.start()
        wait_for(lambda: len(receiver.deliveries()) > 2000, 60, "deliveries under way")
        others = other_sessions(store, [w.pid for w in fleet.alive()])
        if others:
            why = f"{others} other client session(s) on the server: not restarting it"
            report(f"pg-restart[postgresql]: skipped, {why}")
            pytest.skip(why)
        restart = restart_postgresql()
        settle(store, timeout=600)
        codes = fleet.stop_all()

    bound = WORKERS * CAPACITY
    tally = assert_invariants(store, written, receiver.deliveries(), held_at_faults=bound)
    report(
        f"pg-restart[postgresql]: server restarted in {restart:.1f} s, "
        f"{recoveries(fleet.logs())} recovered errors logged, {tally.figures()}"
    )
    assert postmaster_start(store) != started_at, "the server did not restart"
    assert codes == [0] * WORKERS, fleet.logs()[-3000:]
    store.close()


def terminate_sessions(store: SqlOutboxStore, pids: list[int]) -> tuple[int, int]:
    """End every session of these workers, found by their sockets' ports (application_name
    alone misses any connection that does not set it); returns (ended, ended without it)."""
    ports = [port for pid in pids for port in local_ports(pid)]
    query = text(
        "SELECT count(pg_terminate_backend(pid)), count(*) FILTER (WHERE"
        " coalesce(application_name, '') NOT LIKE 'outbox-dispatcher/%')"
        " FROM pg_stat_activity WHERE client_port = ANY(:ports) AND pid <> pg_backend_pid()"
    )
    with store.engine.connect() as conn:
        ended, unnamed = conn.execute(query, {"ports": ports}).one()
    return int(ended), int(unnamed)


def local_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def hold_exclusive_lock(database: str, seconds: float) -> None:
    """Another process takes SQLite's write lock and keeps it; returns once it let go."""
    script = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)\n"
        "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2])); c.execute('ROLLBACK')\n"
    )
    locker = subprocess.run(
        [sys.executable, "-c", script, database, str(seconds)],
        capture_output=True,
        text=True,
        timeout=seconds + 90,
    )
    assert locker.returncode == 0 and "locked" in locker.stdout, locker.stderr


def recoveries(logs: str) -> int:
    return sum(logs.count(phrase) for phrase in RECOVERED)


@pytest.fixture
def own_pg_schema(pg_server: str) -> Iterator[str]:
    """Like `pg_url`, but its admin engine pre-pings: it outlives the restart."""
    options = {"pool_pre_ping": True, "connect_args": {"application_name": ADMIN}}
    with fresh_schema(pg_server, "t_restart", **options) as url:
        yield url


def other_sessions(store: SqlOutboxStore, worker_pids: list[int]) -> int:
    """Client sessions not of this test (idle LISTENers reconnect by design: not counted)."""
    ours = [f"outbox-dispatcher/{pid}" for pid in (*worker_pids, os.getpid())] + [ADMIN]
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
        " AND pid <> pg_backend_pid() AND NOT (coalesce(application_name, '') = ANY(:ours))"
        " AND NOT (state = 'idle' AND query ILIKE 'LISTEN %')"
    )
    with store.engine.connect() as conn:
        return int(conn.execute(query, {"ours": ours}).scalar_one())


def restart_postgresql() -> float:
    started = time.monotonic()
    if THROWAWAY:  # the session's own server
        THROWAWAY[0].restart()
        return time.monotonic() - started
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        timeout=120,
    )
    return time.monotonic() - started


def postmaster_start(store: SqlOutboxStore) -> object:
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT pg_postmaster_start_time()")).scalar_one()
