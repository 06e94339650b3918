"""Engines tuned per database: WAL and a busy timeout on SQLite; elsewhere timeouts, and a
ping before a connection that sat idle in the pool is used."""

from __future__ import annotations

import os
import time
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from adapters.sql.odbc import require_odbc

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Everything a perpetual worker caches has a limit (issue 16, RELIABILITY.md "Memory").
COMPILED_CACHE_SIZE = 100  # SQLAlchemy's compiled statements per engine (it uses about 10)
SQLITE_CACHE_KIB = 2048  # page cache per connection: PRAGMA cache_size = -2048 (2 MiB)
# Prepared statements kept per sqlite3 connection (the module's default is 128). Before the
# set-based ack, its `ID IN (?, …)` was a new statement for every batch size, up to 64 KiB
# each at 500 rows: 128 of them per connection was the largest growth of a SQLite worker.
# Any statement whose text varies with a batch's size would grow it again; the bound stays.
SQLITE_CACHED_STATEMENTS = 16
MAX_OVERFLOW = 10  # short-lived extra connections, closed on return: they keep no caches
# A pooled connection idle longer than this is pinged before use (a restarted server or a
# dropped session shows there, not mid-claim). Not every checkout: a busy worker checks one
# out per claim and per ack, and the ping's round trip was a third of that cycle's.
PING_WHEN_IDLE_SECONDS = 1.0


def make_engine(url: str | URL, *, connect_timeout: float = 5.0, pool_size: int = 5) -> Engine:
    parsed = fix_freetds_url(make_url(url))
    backend = parsed.get_backend_name()
    require_odbc(parsed)  # SQL Server only: a missing ODBC piece is one line naming its package
    if backend == "sqlite":
        return _sqlite_engine(parsed, pool_size)
    options: dict[str, Any] = {
        "pool_size": pool_size,
        "max_overflow": MAX_OVERFLOW,
        "query_cache_size": COMPILED_CACHE_SIZE,
    }
    if backend == "postgresql":
        options["connect_args"] = {
            "connect_timeout": max(1, round(connect_timeout)),
            "application_name": application_name(),
        }
    elif backend == "mssql":
        # No fast_executemany: with FreeTDS it crashes the process (pyodbc issues #459, #381);
        # the store's writes are one set-based statement per batch instead.
        options["connect_args"] = {"timeout": max(1, round(connect_timeout))}
        options["isolation_level"] = "READ COMMITTED"
        engine = create_engine(parsed, **options)
        _tolerate_rollback_after_server_abort(engine)
        _ping_when_idle(engine)
        return engine
    engine = create_engine(parsed, **options)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Like `pool_pre_ping`, but only for a connection idle PING_WHEN_IDLE_SECONDS or more:
    a dead one is replaced before use (the pool reconnects on DisconnectionError)."""
    dialect = engine.dialect

    def checked_in(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
        record.info["idle_since"] = time.monotonic()

    def checked_out(
        dbapi_connection: DBAPIConnection,
        record: ConnectionPoolEntry,
        proxy: PoolProxiedConnection,
    ) -> None:
        since = record.info.get("idle_since")  # none yet: a fresh connection
        if since is None or time.monotonic() - since < PING_WHEN_IDLE_SECONDS:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            raise DisconnectionError(f"ping before use failed: {error}") from error

    event.listen(engine, "checkin", checked_in)
    event.listen(engine, "checkout", checked_out)


def application_name() -> str:
    """How the worker's sessions show in pg_stat_activity: operators can find (or end) them."""
    return f"outbox-dispatcher/{os.getpid()}"


def fix_freetds_url(url: URL) -> URL:
    """FreeTDS cannot parse `Server=host,port`: pass the port as its own `port=` keyword.

    Also pin TDS 7.4 unless the URL names a version: under Debian's `tds version = auto`,
    a server that accepts but never answers the login makes FreeTDS 1.3 fall back to TDS 5.0
    and then hang for good, ignoring the login timeout.
    """
    driver = url.query.get("driver", "")
    if url.get_backend_name() != "mssql" or "freetds" not in str(driver).lower():
        return url
    if not any(key.lower() == "tds_version" for key in url.query):
        url = url.update_query_dict({"TDS_Version": "7.4"})
    if url.port is None:
        return url
    # `URL.set(port=None)` means "leave the port"; `_replace` really drops it.
    return url._replace(port=None).update_query_dict({"port": str(url.port)})


def _tolerate_rollback_after_server_abort(engine: Engine) -> None:
    """Some errors end the transaction on the server (always, on Babelfish): the driver's own
    rollback then fails with 3903, which would hide the error that caused it. Ignore that one."""
    plain_rollback = engine.dialect.do_rollback

    def do_rollback(dbapi_connection: PoolProxiedConnection) -> None:
        try:
            plain_rollback(dbapi_connection)
        except Exception as error:
            if "(3903)" not in str(error):
                raise

    setattr(engine.dialect, "do_rollback", do_rollback)  # noqa: B010 - this engine's only


def _sqlite_engine(url: URL, pool_size: int) -> Engine:
    connect_args = {
        "check_same_thread": False,
        "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
        "cached_statements": SQLITE_CACHED_STATEMENTS,
    }
    pool: dict[str, Any] = {}
    if url.database not in (None, "", ":memory:") and "mode=memory" not in str(url):
        pool = {"pool_size": pool_size, "max_overflow": MAX_OVERFLOW}
    engine = create_engine(
        url, connect_args=connect_args, query_cache_size=COMPILED_CACHE_SIZE, **pool
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_begin_immediate)
    return engine


def _sqlite_on_connect(dbapi_connection: DBAPIConnection, record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when a transaction begins.
    dbapi_connection.isolation_level = None
    # Text another process wrote that is not UTF-8 must reach the message type (which marks it
    # invalid), not fail every claim that reads the row and so stop the whole queue.
    dbapi_connection.text_factory = _lenient_text
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def _lenient_text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _sqlite_begin_immediate(connection: Any) -> None:
    # Take the write lock up front: a deferred transaction that reads, then writes, can fail
    # with SQLITE_BUSY without waiting when another process committed in between.
    connection.exec_driver_sql("BEGIN IMMEDIATE")
