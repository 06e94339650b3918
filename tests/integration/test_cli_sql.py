"""`outbox` in a subprocess against SQLite and PostgreSQL, configured only by environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from adapters.sql.engine import make_engine
from adapters.sql.store import SqlOutboxStore
from application.ports import NewMessage
from domain.model import State
from entrypoints.receiver import STATE, build_app
from tests.integration.http_servers import serving
from tests.integration.sql_stores import migrated_store
from tests.integration.worker_harness import SECRET

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def outbox(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
    clean.update(OUTBOX_DATABASE_URL=url, **env)
    return subprocess.run(
        [sys.executable, "-m", "entrypoints", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def with_dead_rows(url: str, count: int) -> SqlOutboxStore:
    store = migrated_store(url)
    store.enqueue([NewMessage(user_id=7, body=f"m{i}") for i in range(count)])
    claimed = store.claim(
        owner="w", token="t", limit=count, now=T0, lease_until=T0 + timedelta(seconds=30)
    )
    store.ack("t", [m.reject("Message is empty") for m in claimed], [])
    return store


@pytest.mark.covered_on_mssql
def test_migrate_enqueue_and_status_show_a_thousand_pending_rows(sql_url: str) -> None:
    migrated = outbox(sql_url, "migrate")
    enqueued = outbox(sql_url, "enqueue", "--user-id", "7", "--message", "hi", "--count", "1000")

    status = outbox(sql_url, "status")

    assert migrated.returncode == 0 and "migrated table 'Messages'" in migrated.stdout
    assert enqueued.returncode == 0 and "enqueued 1000 row(s)" in enqueued.stdout
    assert status.returncode == 0, status.stderr
    assert re.search(r"^ToSend 1 pending\s+1000$", status.stdout, re.MULTILINE), status.stdout


def test_status_as_json_counts_each_state_and_lists_dead_rows(sql_url: str) -> None:
    store = with_dead_rows(sql_url, 2)
    store.enqueue([NewMessage(user_id=7, body="waiting")])

    status = outbox(sql_url, "status", "--json")

    report = json.loads(status.stdout)
    assert report["counts"] == {"sent": 0, "pending": 1, "in_flight": 0, "dead": 2}
    assert [d["status"] for d in report["recent_dead"]] == ["invalid: Message is empty"] * 2
    store.close()


@pytest.mark.covered_on_mssql
def test_retry_all_dead_requeues_every_dead_row(sql_url: str) -> None:
    store = with_dead_rows(sql_url, 3)

    retried = outbox(sql_url, "retry", "--all-dead")

    assert retried.returncode == 0 and "re-queued 3 dead row(s)" in retried.stdout
    assert store.unfinished() == 3
    assert store.overview(T0).counts.get(int(State.DEAD), 0) == 0
    store.close()


def test_a_table_name_that_is_not_an_identifier_stops_with_one_line(sqlite_url: str) -> None:
    # Checked while reading the configuration, before any database is touched: one is enough.
    store = migrated_store(sqlite_url)

    refused = outbox(sqlite_url, "status", OUTBOX_TABLE="Messages; DROP TABLE x")

    assert refused.returncode == 2 and refused.stdout == ""
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "OUTBOX_TABLE" in lines[0]
    assert inspect(store.engine).has_table("Messages")
    store.close()


@pytest.mark.covered_on_mssql
def test_a_message_that_looks_like_sql_is_stored_verbatim(sql_url: str) -> None:
    store = migrated_store(sql_url)
    hostile = "x'); DROP TABLE Messages;--"

    enqueued = outbox(sql_url, "enqueue", "--user-id", "7", "--message", hostile)

    assert enqueued.returncode == 0, enqueued.stderr
    assert inspect(store.engine).has_table("Messages")
    [message] = store.claim(
        owner="w", token="t", limit=5, now=T0, lease_until=T0 + timedelta(seconds=30)
    )
    assert message.body == hostile
    store.close()


@pytest.mark.covered_on_mssql
def test_migrate_on_a_table_that_is_not_the_seeds_stops_with_one_line(sql_url: str) -> None:
    engine = make_engine(sql_url)
    with engine.begin() as conn:
        conn.execute(
            text('CREATE TABLE "Messages" ("ID" INTEGER PRIMARY KEY, "UserID" INT NOT NULL)')
        )
    engine.dispose()

    refused = outbox(sql_url, "migrate")

    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1, refused.stderr
    assert "Messages" in lines[0] and "Status" in lines[0]


def test_the_cli_end_to_end_migrates_twice_enqueues_drains_and_retries(
    sql_url: str, tmp_path: Path
) -> None:
    app = build_app(secret=SECRET)
    with serving(app) as base_url:
        env = {
            "OUTBOX_TARGET_URL": f"{base_url}/hooks",
            "OUTBOX_SIGNING_SECRET": SECRET,
            "OUTBOX_ALLOW_PRIVATE_TARGETS": "true",
        }
        migrated = [outbox(sql_url, "migrate") for _ in range(2)]
        outbox(sql_url, "enqueue", "--user-id", "7", "--message", "hi", "--count", "2000")
        outbox(sql_url, "enqueue", "--user-id", "8", "--message", "[reject]", "--count", "2")
        drained = outbox(sql_url, "drain", "--no-progress", **env)
        status = outbox(sql_url, "status")
        retried = outbox(sql_url, "retry", "--all-dead")

    state = app[STATE]
    assert [m.returncode for m in migrated] == [0, 0], migrated[1].stderr
    assert drained.returncode == 0, drained.stderr[-2000:]
    assert state.received == 2000 and state.bad_signatures == 0 and state.duplicates == 0
    assert re.search(r"^ToSend 0 sent\s+2000$", status.stdout, re.MULTILINE), status.stdout
    assert retried.returncode == 0 and "re-queued 2 dead row(s)" in retried.stdout
