"""POST throughput of the HTTP engines under httpx, against a local nginx that answers 204.

    .venv/bin/python -m bench.http_engines [--count 20000] [--concurrency 64] [--runs 3]

Besides wall-clock rates it prints this process's CPU time per message (median of the runs;
process time counts every thread, so the Rust clients' tokio threads are included), which
other load on the machine disturbs far less than the rate; both as ratios to raw aiohttp,
the first engine. The Rust clients and aiosonic come with `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeAlias, TypeVar

import aiohttp
import httpx

from adapters.httpx_sender import HttpxMessageSender, make_http_client
from application.ports import MessageSender
from bench.nginx_receiver import nginx_receiver
from domain.delivery import DeliveryRequest

Post: TypeAlias = Callable[[int], Awaitable[int]]
Engine: TypeAlias = Callable[[str, int], "EngineRun"]
T = TypeVar("T")
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


def sending(sender: MessageSender, url: str) -> EngineRun:
    """An engine run that posts through one of the dispatcher's own senders."""

    async def post(index: int) -> int:
        request = DeliveryRequest(
            message_id=index, url=url, body=body(index), idempotency_key=f"k{index}", attempt=1
        )
        result = await sender.send(request)
        return result.status_code or 0

    return EngineRun(post, sender.aclose)


def sender(engine: str) -> Engine:
    def build(url: str, concurrency: int) -> EngineRun:
        client = make_http_client(
            timeout=10, connect_timeout=5, concurrency=concurrency, engine=engine
        )
        sender = HttpxMessageSender(client, secrets=(SECRET,), user_agent="outbox-bench")
        return sending(sender, url)

    return build


def pyreqwest_client(url: str, concurrency: int) -> EngineRun:
    """Rust reqwest (hyper + rustls) on its own tokio runtime; no redirects, no proxies."""
    from datetime import timedelta

    from pyreqwest.client import ClientBuilder

    client = (
        ClientBuilder()
        .max_connections(concurrency)
        .follow_redirects(False)
        .no_proxy()
        .timeout(timedelta(seconds=10))
        .connect_timeout(timedelta(seconds=5))
        .build()
    )

    async def post(index: int) -> int:
        request = client.post(url).headers(HEADERS).body_bytes(body(index)).build()
        response = await request.send()
        await response.bytes()
        return response.status

    return EngineRun(post, client.close)


def rnet_client(url: str, concurrency: int) -> EngineRun:
    """Rust wreq (hyper + BoringSSL) on its own tokio runtime; no redirects, no proxies."""
    import rnet

    client = rnet.Client(
        allow_redirects=False,
        no_proxy=True,
        timeout=10,
        connect_timeout=5,
        pool_max_size=concurrency,
        pool_max_idle_per_host=concurrency,
    )

    async def post(index: int) -> int:
        response = await client.post(url, body=body(index), headers=HEADERS)
        await response.bytes()
        status = response.status
        await response.close()
        return int(status)

    async def close() -> None:
        return None

    return EngineRun(post, close)


def aiosonic_client(url: str, concurrency: int) -> EngineRun:
    """Pure-Python asyncio client with its own HTTP/1.1 parser and connection pool."""
    import aiosonic
    from aiosonic.pools import PoolConfig

    connector = aiosonic.TCPConnector(pool_configs={":default": PoolConfig(size=concurrency)})
    client = aiosonic.HTTPClient(connector=connector, handle_cookies=False)

    async def post(index: int) -> int:
        response = await client.post(url, data=body(index), headers=HEADERS, follow=False)
        await response.content()
        return int(response.status_code)

    async def close() -> None:
        await connector.cleanup()

    return EngineRun(post, close)


def our_sender(engine: str) -> Engine:
    """One of the dispatcher's own senders: signing, the SSRF guard, bounded read, deadline."""

    def build(url: str, concurrency: int) -> EngineRun:
        from adapters.aiohttp_sender import AiohttpMessageSender
        from adapters.http_common import HttpOptions
        from adapters.reqwest_sender import ReqwestMessageSender

        options = HttpOptions(
            timeout=10, connect_timeout=5, concurrency=concurrency, allow_private=True
        )
        kind = ReqwestMessageSender if engine == "reqwest" else AiohttpMessageSender
        sender = kind(options, secrets=(SECRET,), user_agent="outbox-bench")
        return sending(sender, url)

    return build


ENGINES: dict[str, Engine] = {
    "raw aiohttp": raw_aiohttp,
    "pyreqwest": pyreqwest_client,
    "rnet": rnet_client,
    "aiosonic": aiosonic_client,
    "AiohttpMessageSender (ours)": our_sender("aiohttp"),
    "ReqwestMessageSender (ours)": our_sender("reqwest"),
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


def measure(name: str, url: str, args: argparse.Namespace) -> tuple[float, float]:
    """Median msgs/s and CPU µs/msg of `args.runs` runs, each on a fresh event loop."""
    runs = [
        _run_loop(one_run(ENGINES[name], url, args.count, args.concurrency), args.loop)
        for _ in range(args.runs)
    ]
    rate = statistics.median(rate for rate, _ in runs)
    cpu = statistics.median(cpu for _, cpu in runs)
    return rate, cpu


def _run_loop(main: Coroutine[Any, Any, T], loop: str) -> T:
    if loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--engine", action="append", choices=sorted(ENGINES))
    args = parser.parse_args()
    names = args.engine or list(ENGINES)
    with nginx_receiver() as url:
        print(
            f"{args.count:,} POSTs x {args.runs} runs at concurrency {args.concurrency}, "
            f"{args.loop} -> {url}"
        )
        print(f"{'engine':32} {'msgs/s':>9} {'÷ aiohttp':>9} {'CPU µs/msg':>10} {'÷ aiohttp':>9}")
        base: tuple[float, float] | None = None
        for name in names:
            try:
                rate, cpu = measure(name, url, args)
            except Exception as error:  # an engine that fails here is reported, not fatal
                print(f"{name:32} failed: {type(error).__name__}: {error}", flush=True)
                continue
            base = base or (rate, cpu)
            print(
                f"{name:32} {rate:9,.0f} {rate / base[0]:9.2f} {cpu:10,.0f} {cpu / base[1]:9.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
