"""The HTTP ceiling: raw aiohttp POSTing the dispatcher's bodies and headers, no database.

    python -m bench.http_ceiling URL --count N --concurrency C   # prints {"start", "end", ...}

Run as its own process so that several can run side by side (the 2-process ceiling).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

MESSAGE = "order {i} confirmed: your parcel ships today, thanks"


def body(index: int) -> bytes:
    """The default message type's body for row `index`, as the dispatcher would build it."""
    document = {
        "id": index,
        "type": "default",
        "user_id": index % 1000 + 1,
        "message": MESSAGE.format(i=index),
    }
    return json.dumps(document, separators=(",", ":")).encode()


def headers(index: int, prefix: str) -> dict[str, str]:
    key = f"msg_{prefix}_{index}"
    return {
        "Content-Type": "application/json",
        "Accept-Encoding": "identity",
        "User-Agent": "outbox-bench/http-ceiling",
        "Idempotency-Key": key,
        "webhook-id": key,
        "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
    }


async def post_all(url: str, first: int, count: int, concurrency: int) -> dict[str, float]:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        indexes = iter(range(first, first + count))
        failures = 0

        async def worker() -> None:
            nonlocal failures
            for index in indexes:  # the shared iterator hands each index to exactly one worker
                async with session.post(url, data=body(index), headers=headers(index, "c")) as r:
                    await r.read()
                    failures += r.status != 204

        async with session.post(url + "-warmup", data=body(0)) as warmup:
            await warmup.read()
        start = time.time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        end = time.time()
    if failures:
        raise RuntimeError(f"{failures} of {count} POSTs did not get 204")
    return {"start": start, "end": end, "count": count, "rate": count / (end - start)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(post_all(args.url, args.first, args.count, args.concurrency))))


if __name__ == "__main__":
    main()
