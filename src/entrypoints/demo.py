"""`outbox demo`: the embedded default end to end, in one process.

A fresh SQLite file is migrated and given sample rows; the local receiver verifies signatures;
the dispatcher drains and settles; then every row's final ToSend and Status is printed.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from pathlib import Path

import aiohttp
from aiohttp import web
from rich.console import Console
from rich.table import Table

from adapters.sql.migrate import migrate
from application.dispatcher import Summary
from application.ports import Attempt, NewMessage
from entrypoints import logs
from entrypoints.container import Container, build, release
from entrypoints.receiver import build_app
from entrypoints.worker import run

SAMPLES = (
    NewMessage(user_id=1, body="Welcome aboard!"),
    NewMessage(user_id=2, body="Your order #1001 has shipped."),
    NewMessage(user_id=3, body='{"event": "invoice.paid", "amount": 4200}', message_type="json"),
    NewMessage(user_id=1, body="The receiver fails this once [fail-once]; the retry succeeds."),
    NewMessage(user_id=4, body="   "),
    NewMessage(user_id=5, body="The receiver rejects this one [reject]"),
    NewMessage(user_id=6, body="nobody knows this type", message_type="carrier-pigeon"),
    NewMessage(user_id=2, body="Your order #1001 was delivered."),
)


def run_demo(database: str) -> None:
    console = Console()
    path = Path(database).resolve()
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    asyncio.run(_demo(console, path, secret))


async def _demo(console: Console, path: Path, secret: str) -> None:
    app = build_app(secret=secret)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = int(runner.addresses[0][1])
    try:
        container = _container(path, port, secret)
        logs.configure("text", [secret])
        await _prepare(console, container)
        summary = await run(container, "settle")
        _print_rows(console, container)
        await release(container)
        stats = await _receiver_stats(port)
        console.print(f"[bold]dispatcher[/]: {_summary_words(summary)}")
        console.print(f"[bold]receiver[/]: {_tally(stats)}")
    finally:
        await runner.cleanup()


def _container(path: Path, port: int, secret: str) -> Container:
    env = {
        "OUTBOX_DATABASE_URL": f"sqlite:///{path}",
        "OUTBOX_TARGET_URL": f"http://127.0.0.1:{port}/webhooks",
        "OUTBOX_SIGNING_SECRET": secret,
        "OUTBOX_ALLOW_PRIVATE_TARGETS": "true",
        "OUTBOX_RETRY_BASE_SECONDS": "0.5",
        "OUTBOX_RETRY_MAX_SECONDS": "2",
        "OUTBOX_POLL_INTERVAL": "0.2",
        "OUTBOX_BATCH_SIZE": "50",
    }
    return build(env)


async def _prepare(console: Console, container: Container) -> None:
    settings = container.settings()
    await asyncio.to_thread(migrate, container.engine(), settings.table)
    ids = await asyncio.to_thread(container.store().enqueue, list(SAMPLES))
    console.print(f"migrated {settings.database_url}; enqueued rows {ids[0]}..{ids[-1]}")
    console.print(f"dispatching to {settings.target_url} (signed, Standard Webhooks)\n")


def _print_rows(console: Console, container: Container) -> None:
    table = Table(title="rows after the dispatcher settled")
    for heading in ("ID", "UserID", "Type", "ToSend", "HTTP attempts", "Status"):
        table.add_column(heading)
    store = container.store()
    for message_id in range(1, len(SAMPLES) + 1):
        row = store.get(message_id)
        if row is not None:
            attempts = " → ".join(_attempt_word(a) for a in store.history_of(message_id))
            cells = (row.message_type, str(int(row.state)), attempts or "none", row.status or "")
            table.add_row(str(row.id), str(row.user_id), *cells)
    console.print(table)


def _attempt_word(attempt: Attempt) -> str:
    result = attempt.result
    return str(result.status_code) if result.status_code is not None else str(result.error)


async def _receiver_stats(port: int) -> dict[str, object]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/stats") as response,
    ):
        return dict(await response.json())


def _tally(stats: dict[str, object]) -> str:
    keys = ("received", "duplicates", "rejected", "bad_signatures")
    return ", ".join(f"{k}={stats.get(k)}" for k in keys if k in stats)


def _summary_words(summary: Summary) -> str:
    fields = ("claimed", "sent", "retried", "dead", "invalid")
    return ", ".join(f"{name}={getattr(summary, name)}" for name in fields)
