"""Several OS processes claim from one table at once: every row goes to exactly one of them."""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections import Counter
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue

import pytest
from sqlalchemy import select

from adapters.sql.store import SqlOutboxStore
from application.ports import NewMessage
from tests.integration.claim_worker import claim_until_empty
from tests.integration.sql_stores import migrated_store

ROWS = 3000
PROCESSES = 4
DEADLINE_SECONDS = 60  # a hung worker fails the test instead of hanging it


def collect(out: Queue[tuple[str, list[int]]], workers: list[BaseProcess]) -> dict[str, list[int]]:
    results: dict[str, list[int]] = {}
    deadline = time.monotonic() + DEADLINE_SECONDS
    while len(results) < len(workers) and time.monotonic() < deadline:
        try:
            token, ids = out.get(timeout=0.2)
            results[token] = ids
        except queue.Empty:
            crashed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if crashed:
                pytest.fail(f"a claiming process crashed with exit code {crashed[0]}")
    return results


def run_claimers(url: str) -> dict[str, list[int]]:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    out: Queue[tuple[str, list[int]]] = context.Queue()
    workers: list[BaseProcess] = [
        context.Process(target=claim_until_empty, args=(url, f"t{i}", start, out))
        for i in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    try:
        return collect(out, workers)
    finally:
        for worker in workers:
            worker.join(timeout=5)
            if worker.is_alive():
                worker.kill()


def lease_holders(store: SqlOutboxStore) -> dict[int, str | None]:
    t = store.table.c
    with store.engine.connect() as conn:
        return {row.ID: row.LeaseToken for row in conn.execute(select(t.ID, t.LeaseToken))}


def test_concurrent_processes_claim_every_row_exactly_once(sql_url: str) -> None:
    store = migrated_store(sql_url)
    ids = store.enqueue([NewMessage(user_id=i % 97, body=f"m{i}") for i in range(ROWS)])

    claimed = run_claimers(sql_url)

    assert len(claimed) == PROCESSES
    everything = [message_id for batch in claimed.values() for message_id in batch]
    assert [i for i, n in Counter(everything).items() if n > 1] == []
    assert sorted(everything) == sorted(ids)
    holders = lease_holders(store)
    assert all(holders[i] == token for token, batch in claimed.items() for i in batch)
    assert sum(1 for batch in claimed.values() if batch) >= 2  # they really did compete
    store.close()
