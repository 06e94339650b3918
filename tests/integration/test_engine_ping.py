"""A pooled connection is pinged before use only after sitting idle: a session the server
dropped meanwhile is replaced, and a busy worker pays no ping round trip per checkout."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine.interfaces import DBAPIConnection

from adapters.sql import engine as engine_module
from adapters.sql.engine import make_engine

pytestmark = pytest.mark.postgres


@pytest.fixture
def engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url, pool_size=1)
    yield engine
    engine.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def terminate(pg_url: str, pid: int) -> None:
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            gone = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
            deadline = time.monotonic() + 10
            while conn.execute(gone, {"pid": pid}).scalar_one() and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        admin.dispose()


def count_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    plain = engine.dialect.do_ping

    def counted(dbapi_connection: DBAPIConnection) -> bool:
        pings.append(1)
        return plain(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pings


def test_an_idle_connection_whose_session_ended_is_replaced_before_use(
    engine: Engine, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_WHEN_IDLE_SECONDS", 0.0)
    first = backend_pid(engine)
    terminate(pg_url, first)

    second = backend_pid(engine)  # would raise without the ping: the pool's one session is gone

    assert second != first


def test_a_connection_back_in_the_pool_only_briefly_is_not_pinged(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_WHEN_IDLE_SECONDS", 3600.0)
    pings = count_pings(engine, monkeypatch)

    pids = {backend_pid(engine) for _ in range(5)}

    assert len(pids) == 1 and pings == []


def test_a_connection_idle_past_the_threshold_is_pinged_once_per_checkout(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "PING_WHEN_IDLE_SECONDS", 0.0)
    pings = count_pings(engine, monkeypatch)

    for _ in range(5):
        backend_pid(engine)

    assert len(pings) == 4  # the first checkout got a fresh connection: nothing to ping
