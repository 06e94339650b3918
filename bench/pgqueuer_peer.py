"""The peer: pgqueuer with one aiohttp POST per job, on the same PostgreSQL, rows and receiver.

    python -m bench.pgqueuer_peer setup DSN --count N     # fresh pgqueuer schema, N jobs
    python -m bench.pgqueuer_peer consume DSN URL --batch-size B --concurrency C

`consume` drains the queue on uvloop (pgqueuer's drain mode, on its asyncpg pool driver: on one
shared connection, asyncpg's fails and psycopg's starves under concurrent jobs) and exits; the
parent reads its CPU time from wait4 and its rate from the receiver's access log, as for
`outbox drain`. Each job's payload is the body the dispatcher would send for the same row,
POSTed with the same kind of headers (idempotency key, webhook id and timestamp); what
pgqueuer has no notion of (signing, status lines, retry schedule, attempt history) is left
out, to its advantage.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

import aiohttp
import psycopg

from bench.http_ceiling import body, headers

ENTRYPOINT = "post"


def psycopg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


async def setup(dsn: str, count: int) -> None:
    from pgqueuer import PsycopgDriver, Queries

    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("DROP SCHEMA IF EXISTS pgq_peer CASCADE")
        await conn.execute("CREATE SCHEMA pgq_peer")
        await conn.execute("SET search_path TO pgq_peer")
        queries = Queries(PsycopgDriver(conn))
        await queries.install()
        for start in range(1, count + 1, 5000):
            indexes = range(start, min(count, start + 4999) + 1)
            await queries.enqueue(
                [ENTRYPOINT] * len(indexes), [body(i) for i in indexes], [0] * len(indexes)
            )
        await conn.execute("ANALYZE")


async def consume(dsn: str, url: str, batch_size: int, concurrency: int) -> None:
    import asyncpg
    from pgqueuer import AsyncpgPoolDriver, Queries, QueueManager
    from pgqueuer.models import Job
    from pgqueuer.types import QueueExecutionMode

    connector = aiohttp.TCPConnector(limit=concurrency)
    pool = await asyncpg.create_pool(
        dsn, min_size=2, max_size=4, server_settings={"search_path": "pgq_peer"}
    )
    try:
        async with aiohttp.ClientSession(connector=connector) as session:
            manager = QueueManager(Queries(AsyncpgPoolDriver(pool)))

            @manager.entrypoint(ENTRYPOINT)
            async def post(job: Job) -> None:
                key = headers(int(job.id), "q")
                async with session.post(url, data=job.payload, headers=key) as reply:
                    await reply.read()
                    if reply.status != 204:
                        raise RuntimeError(f"receiver answered {reply.status}")

            await manager.run(
                dequeue_timeout=timedelta(seconds=1),
                batch_size=batch_size,
                mode=QueueExecutionMode.drain,
                max_concurrent_tasks=max(concurrency, 2 * batch_size),
            )
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    set_up = commands.add_parser("setup")
    set_up.add_argument("dsn")
    set_up.add_argument("--count", type=int, required=True)
    run = commands.add_parser("consume")
    run.add_argument("dsn")
    run.add_argument("url")
    run.add_argument("--batch-size", type=int, default=10)
    run.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    import uvloop

    if args.command == "setup":
        uvloop.run(setup(args.dsn, args.count))
    else:
        uvloop.run(consume(args.dsn, args.url, args.batch_size, args.concurrency))


if __name__ == "__main__":
    main()
