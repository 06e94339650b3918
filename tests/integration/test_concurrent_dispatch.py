"""Several `outbox drain` / `outbox worker` processes over the same rows: each row reaches the
receiver exactly once, counted there. On SQL Server this runs on a TDS engine (the stand-in
ignores READPAST, so a claim waits for another's lock and then finds the rows leased)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.sql.store import SqlOutboxStore
from application.ports import NewMessage
from entrypoints.receiver import STATE, ReceiverState, build_app
from tests.integration.http_servers import serving
from tests.integration.sql_stores import migrated_store
from tests.integration.worker_harness import (
    SECRET,
    WorkerProcess,
    states,
    wait_until,
    worker_env,
)

ROWS = 5_000
DEADLINE_SECONDS = 240  # a hung process fails the test instead of hanging it


@pytest.fixture(
    params=[
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mssql", marks=pytest.mark.mssql),
    ]
)
def database_url(request: pytest.FixtureRequest) -> str:
    fixture = {"postgresql": "pg_url", "mssql": "mssql_url"}[request.param]
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def store(database_url: str) -> Iterator[SqlOutboxStore]:
    store = migrated_store(database_url)
    store.enqueue([NewMessage(user_id=1 + i % 250, body=f"m{i}") for i in range(ROWS)])
    yield store
    store.close()


@pytest.fixture
def receiver() -> Iterator[tuple[str, ReceiverState]]:
    app = build_app(secret=SECRET)
    with serving(app) as base_url:
        yield base_url, app[STATE]


def run_concurrently(
    command: str, processes: int, database_url: str, target: str, tmp_path: Path
) -> list[WorkerProcess]:
    env = worker_env(
        database_url,
        target,
        OUTBOX_BATCH_SIZE="100",
        OUTBOX_LEASE_SECONDS="60",
        OUTBOX_HTTP_TIMEOUT="10",  # fewer retries when the machine is loaded
    )
    return [
        WorkerProcess(env, tmp_path / f"{command}{i}.log", command=command)
        for i in range(processes)
    ]


def finish(children: list[WorkerProcess], command: str, store: SqlOutboxStore) -> list[int]:
    try:
        if command == "worker":
            wait_until(lambda: states(store)[0] == ROWS, DEADLINE_SECONDS, "every row sent")
            return [child.stop(timeout=30) for child in children]
        return [child.wait(timeout=DEADLINE_SECONDS) for child in children]
    finally:
        for child in children:
            if child.process.poll() is None:
                child.kill()


@pytest.mark.parametrize(("command", "processes"), [("drain", 2), ("drain", 4), ("worker", 2)])
def test_concurrent_dispatchers_deliver_every_row_exactly_once(
    store: SqlOutboxStore,
    database_url: str,
    receiver: tuple[str, ReceiverState],
    tmp_path: Path,
    command: str,
    processes: int,
) -> None:
    base_url, state = receiver
    children = run_concurrently(command, processes, database_url, f"{base_url}/hooks", tmp_path)

    codes = finish(children, command, store)

    assert codes == [0] * processes, [child.output()[-2000:] for child in children]
    # One send request per row: a retry after a timeout under load repeats the same key (the
    # receiver dedupes it); a second claim of the row would have made a second key.
    keys: dict[object, set[str | None]] = defaultdict(set)
    for delivery in state.deliveries:
        keys[delivery.message_id].add(delivery.key)
    assert [i for i, k in keys.items() if len(k) > 1] == []
    assert len(keys) == ROWS and state.received == ROWS and state.bad_signatures == 0
    assert states(store) == {0: ROWS, 1: 0, 2: 0, 3: 0}
