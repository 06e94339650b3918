"""The benchmark's databases: a fresh PostgreSQL database, a SQLite file and, where one is
configured, a fresh database on a SQL Server (or the Babelfish stand-in); fast bulk seeding."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, create_engine, make_url, text

from adapters.sql.engine import fix_freetds_url, make_engine
from adapters.sql.migrate import migrate

TABLE = "Messages"
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
PG_DATABASE = os.environ.get("OUTBOX_BENCH_PG_DATABASE", "outbox_bench")
# a body like the seed's: a short sentence per user, ~60 characters
MESSAGE_SQL = "'order ' || {g} || ' confirmed: your parcel ships today, thanks'"


class BenchDatabase:
    """One database under test: `reset()` empties it, `seed_*` bulk-insert in one statement."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.engine: Engine = make_engine(url, pool_size=2)
        migrate(self.engine, TABLE)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @property
    def is_mssql(self) -> bool:
        return self.engine.dialect.name == "mssql"

    def reset(self) -> None:
        with self.engine.begin() as conn:
            if self.is_mssql:
                conn.execute(text(f"TRUNCATE TABLE [{TABLE}Attempts]"))
                conn.execute(text(f"TRUNCATE TABLE [{TABLE}]"))
                return
            if self.is_postgres:
                conn.execute(text(f'TRUNCATE "{TABLE}", "{TABLE}Attempts" RESTART IDENTITY'))
            else:
                conn.execute(text(f'DELETE FROM "{TABLE}Attempts"'))
                conn.execute(text(f'DELETE FROM "{TABLE}"'))
        if not self.is_postgres:  # outside SQLAlchemy: the engine wraps all in BEGIN IMMEDIATE
            raw = self.engine.raw_connection()
            try:
                raw.cursor().execute("VACUUM")
            finally:
                raw.close()

    def seed_pending(self, count: int, users: int = 1000) -> None:
        """`count` rows with ToSend = 1, as upstream would insert them."""
        self._seed(count, users, sent=False)

    def seed_sent(self, count: int, users: int = 1000) -> None:
        """`count` rows already delivered (ToSend = 0), the history a live table accumulates."""
        self._seed(count, users, sent=True)

    def insert_one(self, user_id: int = 1) -> int:
        """One pending row in its own transaction; returns its id once committed."""
        with self.engine.begin() as conn:
            row = conn.execute(
                text(
                    f'INSERT INTO "{TABLE}" ("UserID", "Message", "MessageType", "ToSend", '
                    f'"CreatedAt") VALUES (:u, :m, \'default\', 1, :now) RETURNING "ID"'
                ),
                {"u": user_id, "m": "latency probe", "now": _now_text(self.is_postgres)},
            ).scalar_one()
        return int(row)

    def count(self, to_send: int) -> int:
        with self.engine.connect() as conn:
            query = text(f'SELECT count(*) FROM "{TABLE}" WHERE "ToSend" = :s')
            return int(conn.execute(query, {"s": to_send}).scalar_one())

    def unfinished(self) -> int:
        """Rows still pending or in flight (read through the partial index over unfinished rows)."""
        with self.engine.connect() as conn:
            query = text(f'SELECT count(*) FROM "{TABLE}" WHERE "ToSend" IN (1, 2)')
            return int(conn.execute(query).scalar_one())

    def analyze(self) -> None:
        if self.is_mssql:
            return  # SQL Server updates statistics on its own
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f'ANALYZE "{TABLE}"')
            conn.commit()

    def close(self) -> None:
        self.engine.dispose()

    def _seed(self, count: int, users: int, *, sent: bool) -> None:
        if self.is_mssql:
            self._seed_mssql(count, users, sent=sent)
            return
        columns = '"UserID", "Message", "MessageType", "ToSend", "CreatedAt"'
        values = (
            f"(g % {users}) + 1, {MESSAGE_SQL.format(g='g')}, 'default', {0 if sent else 1}, :now"
        )
        if sent:
            columns += ', "Status", "Attempts", "IdempotencyKey", "SentAt"'
            values += (
                ", 'sent: HTTP 204 in 3 ms, attempt 1, key msg_seeded_' || g, 1, "
                "'msg_seeded_' || g, :now"
            )
        with self.engine.begin() as conn:
            conn.execute(
                text(_insert_series(self.is_postgres, columns, values)),
                {"n": count, "now": _now_text(self.is_postgres)},
            )
        self.analyze()

    def _seed_mssql(self, count: int, users: int, *, sent: bool) -> None:
        """One INSERT … SELECT from a JSON document: T-SQL has no generate_series everywhere."""
        now = datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ")
        rows = [
            {"g": g, "u": g % users + 1, "m": f"order {g} confirmed: your parcel ships today"}
            for g in range(1, count + 1)
        ]
        sent_columns = ", Status, Attempts, IdempotencyKey, SentAt" if sent else ""
        sent_values = (
            ", CONCAT('sent: HTTP 204 in 3 ms, attempt 1, key msg_seeded_', g), 1, "
            "CONCAT('msg_seeded_', g), :now"
            if sent
            else ""
        )
        columns = f"UserID, Message, MessageType, ToSend, CreatedAt{sent_columns}"
        sql = (
            f"INSERT INTO [{TABLE}] ({columns}) "
            f"SELECT u, m, 'default', {0 if sent else 1}, :now{sent_values} "
            "FROM OPENJSON(:rows) WITH (g INT '$.g', u INT '$.u', m NVARCHAR(200) '$.m') "
            "ORDER BY g"
        )
        with self.engine.begin() as conn:
            conn.execute(text(sql), {"rows": json.dumps(rows), "now": now})


def _insert_series(postgres: bool, columns: str, values: str) -> str:
    if postgres:
        return (
            f'INSERT INTO "{TABLE}" ({columns}) SELECT {values} FROM generate_series(1, :n) AS s(g)'
        )
    return (
        f"WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < :n) "
        f'INSERT INTO "{TABLE}" ({columns}) SELECT {values} FROM s'
    )


def _now_text(postgres: bool) -> object:
    now = datetime.now(UTC).replace(tzinfo=None)
    # SQLite stores SQLAlchemy DateTime as text in this exact shape
    return now if postgres else now.strftime("%Y-%m-%d %H:%M:%S.%f")


@contextlib.contextmanager
def postgres_database(name: str = PG_DATABASE) -> Iterator[str]:
    """A freshly created PostgreSQL database for the run; dropped afterwards."""
    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield f"{PG_SERVER}/{name}"
        finally:  # also when the run is stopped or fails
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'outbox-bench.db'}"


@contextlib.contextmanager
def mssql_database(name: str = PG_DATABASE) -> Iterator[str | None]:
    """A fresh database on the SQL Server of OUTBOX_BENCH_MSSQL_URL (else OUTBOX_TEST_MSSQL_URL),
    e.g. the Babelfish stand-in; None when neither is set. Dropped afterwards."""
    server = os.environ.get("OUTBOX_BENCH_MSSQL_URL") or os.environ.get("OUTBOX_TEST_MSSQL_URL")
    if not server:
        yield None
        return
    admin = create_engine(fix_freetds_url(make_url(server)), isolation_level="AUTOCOMMIT")
    drop = text(f"IF DB_ID('{name}') IS NOT NULL DROP DATABASE [{name}]")
    try:
        with admin.connect() as conn:
            conn.execute(drop)
            conn.execute(text(f"CREATE DATABASE [{name}]"))
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
        with admin.connect() as conn:
            sessions = text(f"SELECT spid FROM sys.sysprocesses WHERE dbid = DB_ID('{name}')")
            for spid in conn.execute(sessions).scalars().all():
                with contextlib.suppress(Exception):  # it may have ended meanwhile
                    conn.execute(text(f"KILL {int(spid)}"))
            conn.execute(drop)
    finally:
        admin.dispose()
