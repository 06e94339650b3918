"""POST throughput of the HTTP engines under httpx, against a local nginx that answers 204.

    .venv/bin/python -m bench.http_engines [--count 20000] [--concurrency 64] [--runs 3]

Besides wall-clock rates it prints this process's CPU time per message (median of the runs),
which other load on the machine disturbs far less than the rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import TypeAlias

import aiohttp
import httpx

from adapters.http import HttpxMessageSender, make_http_client
from bench.nginx_receiver import nginx_receiver
from domain.delivery import DeliveryRequest

Post: TypeAlias = Callable[[int], Awaitable[int]]
Engine: TypeAlias = Callable[[str, int], "EngineRun"]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
HEADERS = {"Content-Type": "application/json", "Idempotency-Key": "msg_bench"}


def body(index: int) -> bytes:
    return json.dumps({"id": index, "user_id": index % 97, "message": "hello"}).encode()


class EngineRun:
    """One engine's client for one run: `post(i)` returns the status code; `close()` frees it."""

    def __init__(self, post: Post, close: Callable[[], Awaitable[None]]) -> None:
        self.post = post
        self.close = close


def raw_aiohttp(url: str, concurrency: int) -> EngineRun:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

    async def post(index: int) -> int:
        async with session.post(url, data=body(index), headers=HEADERS) as response:
            await response.read()
            return response.status

    return EngineRun(post, session.close)


def httpx_aiohttp(url: str, concurrency: int) -> EngineRun:
    from httpx_aiohttp import AiohttpTransport

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    client = httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=10)
    return _httpx_run(client, url)


def httpx_client(engine: str) -> Engine:
    def build(url: str, concurrency: int) -> EngineRun:
        client = make_http_client(
            timeout=10, connect_timeout=5, concurrency=concurrency, engine=engine
        )
        return _httpx_run(client, url)

    return build


def _httpx_run(client: httpx.AsyncClient, url: str) -> EngineRun:
    async def post(index: int) -> int:
        response = await client.post(url, content=body(index), headers=HEADERS)
        return response.status_code

    return EngineRun(post, client.aclose)


def sender(engine: str) -> Engine:
    def build(url: str, concurrency: int) -> EngineRun:
        client = make_http_client(
            timeout=10, connect_timeout=5, concurrency=concurrency, engine=engine
        )
        sender = HttpxMessageSender(client, secrets=(SECRET,), user_agent="outbox-bench")

        async def post(index: int) -> int:
            request = DeliveryRequest(
                message_id=index, url=url, body=body(index), idempotency_key=f"k{index}", attempt=1
            )
            result = await sender.send(request)
            return result.status_code or 0

        return EngineRun(post, sender.aclose)

    return build


ENGINES: dict[str, Engine] = {
    "raw aiohttp": raw_aiohttp,
    "httpx + httpx-aiohttp transport": httpx_aiohttp,
    "httpx + our aiohttp transport": httpx_client("aiohttp"),
    "httpx + httpcore (default)": httpx_client("httpcore"),
    "HttpxMessageSender (aiohttp)": sender("aiohttp"),
    "HttpxMessageSender (httpcore)": sender("httpcore"),
}


async def one_run(engine: Engine, url: str, count: int, concurrency: int) -> tuple[float, float]:
    """Messages per second (wall clock) and CPU microseconds per message of this process."""
    run = engine(url + "/hook", concurrency)
    indexes = iter(range(count))
    failures = 0

    async def worker() -> None:
        nonlocal failures
        for index in indexes:  # the shared iterator hands each index to exactly one worker
            failures += await run.post(index) != 204

    try:
        await run.post(-1)  # warm-up: import paths, first connection
        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        await run.close()
    if failures:
        raise RuntimeError(f"{failures} of {count} POSTs did not get 204")
    return count / elapsed, cpu / count * 1e6


def measure(name: str, url: str, args: argparse.Namespace) -> list[float]:
    runs = [
        asyncio.run(one_run(ENGINES[name], url, args.count, args.concurrency))
        for _ in range(args.runs)
    ]
    rates = [rate for rate, _ in runs]
    cpu = statistics.median(cpu for _, cpu in runs)
    print(
        f"{name:32} {statistics.median(rates):9,.0f} {min(rates):9,.0f} {max(rates):9,.0f}"
        f" {cpu:9,.0f}",
        flush=True,
    )
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--engine", action="append", choices=sorted(ENGINES))
    args = parser.parse_args()
    with nginx_receiver() as url:
        print(f"{args.count:,} POSTs x {args.runs} runs at concurrency {args.concurrency} -> {url}")
        print(f"{'engine (msgs/s)':32} {'median':>9} {'min':>9} {'max':>9} {'cpu µs/msg':>9}")
        for name in args.engine or ENGINES:
            measure(name, url, args)


if __name__ == "__main__":
    main()
