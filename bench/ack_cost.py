"""Wall time of one ack of 500 sent rows with their history, claimed just before.

    .venv/bin/python -m bench.ack_cost sqlite:////tmp/ack.db     # or a PostgreSQL / SQL Server URL

Run it against an empty database; it migrates `Messages` there and adds rows.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from adapters.sql.engine import make_engine
from adapters.sql.migrate import migrate
from adapters.sql.store import SqlOutboxStore
from application.ports import NewMessage
from bench.loops import as_sent

BATCH = 500
ROUNDS = 8


def one_ack(store: SqlOutboxStore) -> float:
    store.enqueue([NewMessage(user_id=i % 100, body="x" * 60) for i in range(BATCH)])
    now, token = datetime.now(UTC), uuid.uuid4().hex[:20]
    claimed = store.claim(
        owner="bench", token=token, limit=BATCH, now=now, lease_until=now + timedelta(seconds=30)
    )
    sent, attempts = as_sent(claimed, now)
    started = time.perf_counter()
    result = store.ack(token, sent, attempts)
    elapsed = time.perf_counter() - started
    if result.written != BATCH:
        raise RuntimeError(f"acked {result.written} of {BATCH}")
    return elapsed


def main(url: str) -> None:
    engine = make_engine(url)
    migrate(engine)
    store = SqlOutboxStore(engine)
    times = [one_ack(store) for _ in range(ROUNDS)]
    print(
        f"{engine.dialect.name}: ack of {BATCH} rows, median {1000 * statistics.median(times):.1f}"
        f" ms, min {1000 * min(times):.1f} ms ({ROUNDS} rounds)"
    )
    store.close()


if __name__ == "__main__":
    main(sys.argv[1])
