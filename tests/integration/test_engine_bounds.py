"""Every cache an engine keeps for a perpetual worker has a limit (issue 16)."""

from __future__ import annotations

import ctypes
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from adapters.sql.engine import COMPILED_CACHE_SIZE, SQLITE_CACHE_KIB, make_engine


def test_each_sqlite_connection_caches_at_most_its_page_budget(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)

    with engine.connect() as conn:
        cache_size = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    engine.dispose()

    assert cache_size == -SQLITE_CACHE_KIB


@pytest.mark.parametrize(
    "url_fixture", ["sqlite_url", pytest.param("pg_url", marks=pytest.mark.postgres)]
)
def test_the_pool_and_the_compiled_cache_have_the_sizes_asked_for(
    url_fixture: str, request: pytest.FixtureRequest
) -> None:
    engine = make_engine(request.getfixturevalue(url_fixture), pool_size=3)

    pool_size = engine.pool.size()  # type: ignore[attr-defined]
    capacity = engine._compiled_cache.capacity  # type: ignore[union-attr]
    engine.dispose()

    assert pool_size == 3
    assert capacity == COMPILED_CACHE_SIZE


def test_a_sqlite_connection_keeps_few_of_the_statements_it_prepared(tmp_path: Path) -> None:
    memory_used = _sqlite_memory_used()
    engine = make_engine(f"sqlite:///{tmp_path / 'bounded.db'}")
    default = sqlite3.connect(tmp_path / "default.db")  # the sqlite3 module's 128 statements

    bounded_bytes = _statement_growth(memory_used, lambda sql: _through(engine, sql))
    default_bytes = _statement_growth(memory_used, lambda sql: default.execute(sql).fetchall())
    engine.dispose()
    default.close()

    assert bounded_bytes * 4 < default_bytes


def _through(engine: Engine, sql: str) -> None:
    with engine.begin() as conn:
        result = conn.execute(text(sql))
        if result.returns_rows:
            result.all()


def _statement_growth(memory_used: Callable[[], int], run: Callable[[str], object]) -> int:
    """SQLite's memory growth over 300 `IN (…)` lists of different lengths (one per ack size)."""
    run("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY)")
    before = memory_used()
    for size in range(200, 500):
        run(f"SELECT id FROM t WHERE id IN ({', '.join(str(i) for i in range(size))})")
    return memory_used() - before


def _sqlite_memory_used() -> Callable[[], int]:
    """`sqlite3_memory_used()` of the SQLite library this process loaded (page caches included)."""
    sqlite3.connect(":memory:").close()
    path = next(
        line.split()[-1]
        for line in Path("/proc/self/maps").read_text().splitlines()
        if "libsqlite3" in line
    )
    function = ctypes.CDLL(path).sqlite3_memory_used
    function.restype = ctypes.c_int64
    return lambda: int(function())
