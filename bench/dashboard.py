"""What the dashboard's overview costs on a big table: 1,000,000 sent rows, 100,000 pending,
an attempt history of one attempt per sent row, 60,000 of them in the last hour, the rest over
the three weeks before, on SQLite and PostgreSQL.

    .venv/bin/python -m bench.dashboard          # this scenario alone (make bench-dashboard)

Also a scenario of `make bench` (`--only dashboard`). The figure is the wall time of one
GET / (queries + template) served by the real app on 127.0.0.1, median of the runs, with
the read-side queries (`SqlOutboxBrowser.figures` + `type_health`) timed together and each on
its own, and `outbox status`'s overview query on the same table as a yardstick measured in the
same run. Every render is cold: each asks with its own `now`, so nothing is reused between
them. PostgreSQL's tables are VACUUMed after the bulk load, as autovacuum would soon do.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path

import httpx
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.engine import Connection

from adapters.clock import SystemClock
from adapters.sql import last_hour
from adapters.sql.browse import SqlOutboxBrowser
from adapters.sql.mapping import to_db
from adapters.sql.overview import oldest_due_age
from adapters.sql.store import SqlOutboxStore
from application import figures
from bench.context import Bench
from bench.databases import TABLE, BenchDatabase, postgres_database, sqlite_url
from bench.report import Report, Row, text_table
from entrypoints.dashboard.app import Dashboard, make_app

SIZES = {"full": (1_000_000, 100_000, 60_000), "quick": (100_000, 10_000, 6_000)}
RUNS = 15


def overview_cost(bench: Bench, db: BenchDatabase) -> None:
    sent, pending, attempts = SIZES.get(bench.profile.name, SIZES["quick"])
    measure(bench.report, db, sent, pending, attempts)


def measure(report: Report, db: BenchDatabase, sent: int, pending: int, attempts: int) -> None:
    db.reset()
    db.seed_sent(sent)
    db.seed_pending(pending)
    seed_history(db, attempts, older=max(sent - attempts, 0))
    store = SqlOutboxStore(db.engine, TABLE)
    browser = SqlOutboxBrowser(store)
    clock = SystemClock()
    queries = [_timed(lambda: overview_queries(browser, clock.now())) for _ in range(RUNS)]
    pages = render_times(Dashboard(
        browser=browser, admin=store, clock=clock, targets={}, database=db.name
    ))  # fmt: skip
    status = [_timed(lambda: store.overview(clock.now())) for _ in range(RUNS)]
    sizes = f"{sent:,} sent, {pending:,} pending, {attempts:,} attempts in the hour"
    page = report.add(Row("9 dashboard", db.name, "overview GET / ms", pages, sizes))
    report.add(Row("9 dashboard", db.name, "overview queries ms", queries, sizes))
    for name, times in each_query(browser, clock.now()).items():
        report.add(Row("9 dashboard", db.name, f"  {name} ms", times, "one query, own connection"))
    report.add(Row("9 dashboard", db.name, "`outbox status` query ms", status, "same table"))
    name = f"dashboard overview GET / < 200 ms, {sent:,} sent ({db.name})"
    report.target(name, f"{page.median:.0f} ms", page.median < 200)


def overview_queries(browser: SqlOutboxBrowser, now: datetime) -> None:
    """What the overview page asks, with one `now` (as the page does)."""
    browser.figures(now)
    browser.type_health(now)


def each_query(browser: SqlOutboxBrowser, now: datetime) -> dict[str, list[float]]:
    """The overview's queries one by one, each on a fresh connection from the pool."""
    start = figures.window_start(now)
    table, history, engine = browser.table, browser.history, browser.store.engine
    queries: dict[str, Callable[[Connection], object]] = {
        "counts": browser._counts,
        "oldest due": lambda c: oldest_due_age(c, table, now),
        "sent per minute": lambda c: last_hour.sent_per_minute(c, history, start),
        "failures per minute": lambda c: c.execute(
            last_hour.failed_attempts(table, history, to_db(start), engine.dialect.name)
        ).all(),
        "latency": lambda c: last_hour.durations(c, history, start),
    }

    def once(query: Callable[[Connection], object]) -> None:
        with engine.connect() as conn:
            query(conn)

    return {name: [_timed(partial(once, q)) for _ in range(RUNS)] for name, q in queries.items()}


def seed_history(db: BenchDatabase, count: int, older: int = 0) -> None:
    """`count` attempts spread over the last hour, 1 % of them 503s, for the newest sent rows
    (ids older + 1 …), and one attempt for each older row (ids 1 … older), two seconds apart
    before the hour (three weeks for a million)."""
    columns = '"MessageID", "Attempt", "IdempotencyKey", "StartedAt", "DurationMs", "HttpStatus"'
    ago = "CASE WHEN g > :older THEN g % 3540 ELSE 3660 + 2 * (:older - g) END"  # seconds
    if db.is_postgres:
        started = f"timezone('utc', now()) - make_interval(secs => {ago})"
        series = "generate_series(1, :n) AS s(g)"
        prefix = ""
    else:
        started = f"datetime('now', '-' || ({ago}) || ' seconds')"
        series = "s"
        prefix = "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n) "
    values = (
        f"g, 1, 'msg_seeded_' || g, {started}, g % 50 + 1, "
        "CASE WHEN g % 100 = 0 THEN 503 ELSE 204 END"
    )
    statement = f'{prefix}INSERT INTO "{TABLE}Attempts" ({columns}) SELECT {values} FROM {series}'
    with db.engine.begin() as conn:
        conn.execute(text(statement), {"n": count + older, "older": older})
    with db.engine.connect() as conn:
        if db.is_postgres:  # what autovacuum does soon after a bulk load: visibility map set
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql(f'VACUUM ANALYZE "{TABLE}", "{TABLE}Attempts"')
        else:
            conn.exec_driver_sql(f'ANALYZE "{TABLE}Attempts"')
            conn.commit()


def render_times(dashboard: Dashboard) -> list[float]:
    with serving(make_app(dashboard, None)) as url, httpx.Client(timeout=120) as client:
        client.get(url).raise_for_status()  # warm: templates compiled, connections open
        return [_timed(lambda: client.get(url).raise_for_status()) for _ in range(RUNS)]


@contextmanager
def serving(app: web.Application) -> Iterator[str]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(app, access_log=None)

    async def start() -> int:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return int(runner.addresses[0][1])

    port = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _timed(work: object) -> float:
    started = time.perf_counter()
    work()  # type: ignore[operator]
    return (time.perf_counter() - started) * 1000


def main() -> None:
    report = Report()
    sent, pending, attempts = SIZES["full"]
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    with (
        tempfile.TemporaryDirectory(prefix="outbox-bench-") as tmp,
        postgres_database("outbox_bench_dashboard") as pg_url,
    ):
        for db in (
            BenchDatabase("SQLite", sqlite_url(Path(tmp))),
            BenchDatabase("PostgreSQL", pg_url),
        ):
            try:
                measure(report, db, sent, pending, attempts)
            finally:
                db.close()
    print("\n" + text_table(report.rows))
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
