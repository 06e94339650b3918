"""PostgreSQL LISTEN: wake the pipeline the moment a row becomes due (see migration 0002)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from sqlalchemy import make_url

from adapters.sql.engine import application_name

log = logging.getLogger(__name__)


def channel(table: str) -> str:
    return f"outbox_{table.lower()}"


def supports_notify(database_url: str) -> bool:
    return make_url(database_url).get_backend_name() == "postgresql"


def libpq_url(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def listen(database_url: str, table: str, on_due: Callable[[], None]) -> None:
    """Call `on_due` on every notification, reconnecting with backoff; runs until cancelled."""
    delay = 0.5
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                libpq_url(database_url), autocommit=True, application_name=application_name()
            ) as conn:
                await conn.execute(f'LISTEN "{channel(table)}"')
                delay = 0.5
                on_due()  # anything that became due while we were not listening
                async for _ in conn.notifies():
                    on_due()
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning(
                "LISTEN connection lost (%s); polling until it is back", type(error).__name__
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)
