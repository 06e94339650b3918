"""The container owns what needs closing: a finished drain leaves none of it open."""

from __future__ import annotations

import asyncio

from application.ports import NewMessage
from domain.delivery import DeliveryRequest
from entrypoints.container import build
from entrypoints.receiver import build_app
from entrypoints.worker import run
from tests.integration.http_servers import serving
from tests.integration.sql_stores import migrated_store


def test_a_finished_drain_closes_the_sender_the_store_and_the_engine(sqlite_url: str) -> None:
    store = migrated_store(sqlite_url)
    store.enqueue([NewMessage(user_id=1, body="hello")])
    store.close()
    with serving(build_app(secret=None)) as base_url:
        env = {
            "OUTBOX_DATABASE_URL": sqlite_url,
            "OUTBOX_TARGET_URL": f"{base_url}/hooks",
            "OUTBOX_ALLOW_PRIVATE_TARGETS": "true",
        }
        container = build(env)
        sender = container.sender()

        summary = asyncio.run(run(container, "drain"))
        again = DeliveryRequest(
            message_id=1, url=f"{base_url}/hooks", body=b"{}", idempotency_key="k", attempt=2
        )
        after_close = asyncio.run(sender.send(again))

    assert summary.sent == 1
    assert after_close.error is not None, "the sender still sends after the drain"
    assert not container.sender_pool.initialized
    assert not container.engine.initialized
