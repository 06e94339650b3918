"""In-process loops: the database ceiling (claim + ack, no HTTP) and the seed-style baseline."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx

from adapters.sql.store import SqlOutboxStore
from application.ports import Attempt
from bench.databases import TABLE, BenchDatabase
from domain.delivery import DeliveryResult
from domain.model import Message


def database_ceiling(db: BenchDatabase, count: int, batch: int = 500) -> float:
    """Rows/s that SqlOutboxStore claims and acks as sent (with attempt history), no HTTP."""
    store = SqlOutboxStore(db.engine, TABLE)
    done = 0
    started = time.perf_counter()
    while True:
        token = uuid.uuid4().hex[:26]
        now = datetime.now(UTC)
        claimed = store.claim(
            owner="bench",
            token=token,
            limit=batch,
            now=now,
            lease_until=now + timedelta(seconds=30),
        )
        if not claimed:
            break
        sent, attempts = as_sent(claimed, now)
        store.ack(token, sent, attempts)
        done += len(claimed)
    elapsed = time.perf_counter() - started
    if done != count:
        raise RuntimeError(f"database ceiling acked {done} rows, expected {count}")
    return done / elapsed


def as_sent(messages: list[Message], now: datetime) -> tuple[list[Message], list[Attempt]]:
    result = DeliveryResult(status_code=204, latency_ms=2.0)
    sent = [m.mark_sent(result, now) for m in messages]
    attempts = [
        Attempt(
            message_id=m.id,
            attempt=m.attempts,
            idempotency_key=m.idempotency_key or "",
            started_at=now,
            result=result,
        )
        for m in messages
    ]
    return sent, attempts


def seed_baseline(db: BenchDatabase, url: str, count: int, client: str = "http.client") -> float:
    """The original design: select one due row, build, POST synchronously, update, commit."""
    post = _http_client_post(url) if client == "http.client" else _httpx_post(url)
    raw = db.engine.raw_connection()
    marker = "%s" if db.is_postgres else "?"
    select = (
        f'SELECT "ID", "UserID", "Message" FROM "{TABLE}" WHERE "ToSend" = 1 ORDER BY "ID" LIMIT 1'
    )
    update = f'UPDATE "{TABLE}" SET "ToSend" = 0, "Status" = {marker} WHERE "ID" = {marker}'
    done = 0
    started = time.perf_counter()
    try:
        cursor = raw.cursor()
        while True:
            if not db.is_postgres:
                cursor.execute("BEGIN IMMEDIATE")  # the engine runs SQLite in autocommit mode
            cursor.execute(select)
            row = cursor.fetchone()
            if row is None:
                raw.rollback()
                break
            status = post(row)
            cursor.execute(update, (f"sent: HTTP {status}", row[0]))
            raw.commit() if db.is_postgres else cursor.execute("COMMIT")
            done += 1
    finally:
        raw.close()
    elapsed = time.perf_counter() - started
    if done != count:
        raise RuntimeError(f"seed baseline sent {done} rows, expected {count}")
    return done / elapsed


def _request(row: tuple[object, ...]) -> tuple[bytes, dict[str, str]]:
    message_id, user_id, text = row
    body = json.dumps({"id": message_id, "type": "default", "user_id": user_id, "message": text})
    key = f"msg_seed_{message_id}"
    return body.encode(), {
        "Content-Type": "application/json",
        "Idempotency-Key": key,
        "webhook-id": key,
    }


def _http_client_post(url: str) -> Callable[[tuple[object, ...]], int]:
    target = urlsplit(url)
    connection = http.client.HTTPConnection(target.hostname or "", target.port)  # keep-alive

    def post(row: tuple[object, ...]) -> int:
        body, headers = _request(row)
        connection.request("POST", target.path, body, headers)
        response = connection.getresponse()
        response.read()
        return response.status

    return post


def _httpx_post(url: str) -> Callable[[tuple[object, ...]], int]:
    client = httpx.Client(timeout=10)  # one keep-alive connection

    def post(row: tuple[object, ...]) -> int:
        body, headers = _request(row)
        return client.post(url, content=body, headers=headers).status_code

    return post
