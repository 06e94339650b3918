"""The dispatcher's own ceiling: the real pipeline and SQL store, a sender that answers at once.

    .venv/bin/python -m bench.pipeline_ceiling [--count 50000] [--rounds 3]
                                               [--database postgresql|sqlite]

Seeds `count` pending rows and drains them in this process with the production container
(claim, prepare, sign, settle, ack with history; batch 500, concurrency 64), its sender
replaced by one that builds the signed headers and answers 200 without a network, on the
event loop the worker uses (uvloop where installed). So the figures are what the worker adds
to an HTTP exchange: CPU µs per message of the whole process (every thread; no start-up: the
container is built before the clock starts) and the rate with no receiver at all. `outbox
drain` cannot go faster than this rate, and its CPU per message is about this plus the bare
client's (bench/cpu_ab.py). To compare a tree, put its `src` first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from adapters.webhooks import WebhookHeaders
from bench.databases import BenchDatabase, postgres_database, sqlite_url
from bench.processes import SECRET, Settings, outbox_env
from domain.delivery import DeliveryRequest, DeliveryResult
from entrypoints.container import build, release
from entrypoints.worker import run_loop


class InstantSender:
    """Signs each request like the real sender, then answers 200 on the next loop turn."""

    def __init__(self) -> None:
        self._headers = WebhookHeaders((SECRET,), "outbox-bench", time.time)

    async def send(self, request: DeliveryRequest) -> DeliveryResult:
        self._headers.for_request(request)
        await asyncio.sleep(0)
        return DeliveryResult(status_code=200, latency_ms=1.0, excerpt="")

    async def aclose(self) -> None:
        """Nothing to close."""


def one_round(db: BenchDatabase, count: int) -> tuple[float, float]:
    """(CPU µs per message, messages per second) of one drain of `count` rows."""
    db.reset()
    db.seed_pending(count)
    env = outbox_env(db.url, "http://127.0.0.1:9/none", Settings(batch_size=500, concurrency=64))
    container = build(env)
    container.sender.override(InstantSender())
    pipeline = container.pipeline()

    async def drain() -> None:
        await pipeline.run(asyncio.Event(), until_idle=True)
        await release(container)

    cpu, wall = time.process_time(), time.perf_counter()
    run_loop(drain())  # uvloop where installed, as the worker runs
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    if pipeline.summary.sent != count or db.unfinished():
        raise RuntimeError(f"drained {pipeline.summary}, {db.unfinished()} rows left")
    return cpu / count * 1e6, count / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="outbox-pipe-") as tmp:
        if args.database == "sqlite":
            report(BenchDatabase("pipe", sqlite_url(Path(tmp))), args)
            return
        with postgres_database(f"outbox_pipe_{os.getpid()}") as url:
            db = BenchDatabase("pipe", url)
            report(db, args)
            db.close()


def report(db: BenchDatabase, args: argparse.Namespace) -> None:
    rounds = [one_round(db, args.count) for _ in range(args.rounds)]
    cpu = statistics.median(r[0] for r in rounds)
    rate = statistics.median(r[1] for r in rounds)
    each = ", ".join(f"{c:.1f} µs {r:,.0f}/s" for c, r in rounds)
    print(f"pipeline with an instant sender, {args.count:,} rows, {args.database}: {each}")
    print(f"  median {cpu:.1f} µs of CPU per message, {rate:,.0f} msgs/s")


if __name__ == "__main__":
    main()
