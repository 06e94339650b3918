"""Fixtures of the fault scenarios: a migrated table on SQLite or PostgreSQL, and its name."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import event

from adapters.sql.store import SqlOutboxStore
from tests.integration.sql_stores import migrated_store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def database(database_url: str) -> str:
    """`sqlite` or `postgresql`, for the figures line."""
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture
def store(database_url: str) -> Iterator[SqlOutboxStore]:
    store = migrated_store(database_url)
    lenient_text(store)
    yield store
    store.close()


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[SqlOutboxStore]:
    """For scenarios where the database does not matter: SQLite only."""
    store = migrated_store(sqlite_url)
    yield store
    store.close()


def lenient_text(store: SqlOutboxStore) -> None:
    """Let the test itself read rows whose text is not UTF-8 (the bad-input scenario's)."""
    if store.engine.dialect.name == "sqlite":
        store.engine.dispose()
        event.listen(store.engine, "connect", _surrogate_escaped_text)


def _surrogate_escaped_text(dbapi_connection: object, record: object) -> None:
    dbapi_connection.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")  # type: ignore[attr-defined]
