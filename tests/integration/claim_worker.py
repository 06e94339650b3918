"""A claiming worker process for the concurrency tests: claims until nothing is left."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from adapters.sql.engine import make_engine
from adapters.sql.store import SqlOutboxStore

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LEASE_UNTIL = NOW + timedelta(hours=1)  # never expires during the test


def claim_until_empty(
    url: str, token: str, start: Barrier, out: Queue[tuple[str, list[int]]]
) -> None:
    store = SqlOutboxStore(make_engine(url))
    store.unfinished()  # connect before the start line, so no process gets a head start
    claimed: list[int] = []
    start.wait()
    while True:
        batch = store.claim(
            owner=f"proc-{token}", token=token, limit=50, now=NOW, lease_until=LEASE_UNTIL
        )
        # Where READPAST is ignored (Babelfish), a claim that waited for another's lock finds
        # those rows leased and may come back empty while others are still due.
        if not batch and store.due(NOW) == 0:
            break
        claimed += [message.id for message in batch]
        time.sleep(0.002)  # a real worker sends between claims; let the others in
    store.close()
    out.put((token, claimed))
