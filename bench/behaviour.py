"""Latency of an idle worker, memory over many messages, claim cost as the table grows."""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import time
from datetime import UTC, datetime, timedelta

from aiohttp import web
from sqlalchemy import text

from adapters.sql.store import SqlOutboxStore
from bench.context import Bench
from bench.databases import TABLE, BenchDatabase
from bench.memory import curve as rss_curve
from bench.nginx_receiver import free_port
from bench.processes import Child, outbox_env
from bench.report import Row


def latency(bench: Bench, db: BenchDatabase) -> None:
    """Single inserts into an idle worker's table: commit → arrival at a timestamping receiver."""
    p = bench.profile
    extra = {} if db.is_postgres else {"OUTBOX_POLL_INTERVAL": str(p.sqlite_poll_interval)}
    db.reset()
    samples = asyncio.run(_latency_run(bench, db, p.latency_count, extra))
    how = "LISTEN/NOTIFY" if db.is_postgres else f"polling every {p.sqlite_poll_interval:g} s"
    note = f"{len(samples):,} single inserts, idle worker, {how}"
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    bench.report.add(Row("6 latency: due → received", db.name, "p50 ms", [p50], note))
    bench.report.add(Row("6 latency: due → received", db.name, "p99 ms", [p99]))
    bench.figures[f"latency_p50_{db.name}"] = p50


async def _latency_run(
    bench: Bench, db: BenchDatabase, count: int, extra: dict[str, str]
) -> list[float]:
    arrivals: dict[int, float] = {}
    arrived = asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        at = time.time()
        await request.read()
        arrivals[int(request.headers.get("Idempotency-Key", "_0").rsplit("_", 1)[-1])] = at
        arrived.set()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{path:.*}", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    env = outbox_env(db.url, f"http://127.0.0.1:{port}/latency", bench.recommended, **extra)
    child = Child("worker", env, bench.child_log(f"latency-{db.name}"))
    gap = 0.03 if db.is_postgres else bench.profile.sqlite_poll_interval
    try:
        await _one_latency(db, arrivals, arrived, timeout=60)  # warm-up: the worker is up
        samples = []
        for _ in range(count):
            await asyncio.sleep(random.uniform(0.01, 0.01 + gap))  # no phase lock with polling
            samples.append(await _one_latency(db, arrivals, arrived, timeout=10))
        return samples
    finally:
        child.terminate()
        await asyncio.to_thread(child.wait, 60)
        await runner.cleanup()


async def _one_latency(
    db: BenchDatabase, arrivals: dict[int, float], arrived: asyncio.Event, timeout: float
) -> float:
    def insert() -> tuple[int, float]:
        message_id = db.insert_one()
        return message_id, time.time()

    message_id, committed = await asyncio.to_thread(insert)
    while message_id not in arrivals:
        arrived.clear()
        await asyncio.wait_for(arrived.wait(), timeout)
    return (arrivals.pop(message_id) - committed) * 1000


def memory(bench: Bench) -> None:
    """RSS of one worker (default settings) after each mark of messages acked, per database."""
    marks = list(bench.profile.memory_marks)
    for db in bench.databases:
        curve = rss_curve(db, bench.url + bench.path("memory"), marks, bench.child_log("memory"))
        for messages, kib in curve.points:
            bench.report.add(
                Row(
                    "7 memory: one worker",
                    db.name,
                    f"RSS MiB after {messages:,}",
                    [kib["VmRSS"] / 1024],
                    f"anonymous {kib['RssAnon'] / 1024:.1f}, file {kib['RssFile'] / 1024:.1f}, "
                    f"peak {kib['VmHWM'] / 1024:.1f} MiB",
                )
            )
            bench.figures[f"rss_{messages}_{db.name}"] = kib["VmRSS"] / 1024
        bench.curves.append(curve.series())


def claim_cost(bench: Bench, db: BenchDatabase) -> None:
    p, batch = bench.profile, bench.recommended.batch_size
    medians = []
    for sent in p.claim_sent_rows:
        db.reset()
        db.seed_sent(sent)
        db.seed_pending(p.claim_repeats * batch)
        store = SqlOutboxStore(db.engine, TABLE)
        times = [_timed_claim(store, batch) for _ in range(p.claim_repeats)]
        bench.report.add(
            Row(
                "8 claim cost",
                db.name,
                f"claim ms, {sent:,} sent rows",
                times,
                f"batch {batch}; plan: {_plan(db, store, batch)}",
            )
        )
        medians.append(statistics.median(times))
    bench.figures[f"claim_ratio_{db.name}"] = medians[-1] / medians[0]


def _timed_claim(store: SqlOutboxStore, batch: int) -> float:
    now = datetime.now(UTC)
    token = f"{random.getrandbits(100):026x}"[:26]
    started = time.perf_counter()
    claimed = store.claim(
        owner="bench", token=token, limit=batch, now=now, lease_until=now + timedelta(seconds=30)
    )
    elapsed = (time.perf_counter() - started) * 1000
    if len(claimed) != batch:
        raise RuntimeError(f"claimed {len(claimed)} rows, expected {batch}")
    return elapsed


def _plan(db: BenchDatabase, store: SqlOutboxStore, batch: int) -> str:
    """The scans the claim's plan uses (index or table), for the note."""
    statement = getattr(store._claims[False], "element", None)  # the TextClause inside
    assert statement is not None
    now = datetime.now(UTC).replace(tzinfo=None)
    params = {
        "owner": "x",
        "token": "x",
        "limit": batch,
        "key_prefix": "x",
        "now": now if db.is_postgres else str(now),
        "lease_until": now if db.is_postgres else str(now),
    }
    explain = "EXPLAIN " if db.is_postgres else "EXPLAIN QUERY PLAN "
    with db.engine.connect() as conn:
        rows = conn.execute(text(explain + statement.text), params).all()
        conn.rollback()
    lines = [str(row[-1]) for row in rows]
    scans = [
        re.sub(r"\s+", " ", line.strip(" ->"))
        for line in lines
        if re.search(r"Scan|SCAN|SEARCH", line)
    ]
    return "; ".join(re.sub(r"\s*\(cost=.*", "", s) for s in scans)
