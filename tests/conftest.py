"""Shared fixtures: real databases for the SQL adapters (SQLite files, PostgreSQL schemas)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REPO = Path(__file__).resolve().parent.parent


def pg_base_url() -> str:
    return os.environ.get("OUTBOX_TEST_PG_URL", PG_DEFAULT)


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The PostgreSQL server; unreachable is an error, never a silent skip."""
    url = pg_base_url()
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:
        pytest.fail(
            f"PostgreSQL at {url} is unreachable ({error}); start it or set OUTBOX_TEST_PG_URL"
        )
    finally:
        engine.dispose()
    return url


@contextlib.contextmanager
def fresh_schema(server: str, prefix: str = "t", **engine_options: Any) -> Iterator[str]:
    """A URL whose connections live in a new schema of their own, dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, **engine_options)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(server).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    with fresh_schema(pg_server) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'outbox.db'}"


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mssql", marks=pytest.mark.mssql),
    ]
)
def sql_url(request: pytest.FixtureRequest) -> str:
    """Each SQL database in turn: a SQLite file, a fresh PostgreSQL schema, a fresh SQL Server
    database."""
    fixture = {"sqlite": "sqlite_url", "postgresql": "pg_url", "mssql": "mssql_url"}
    return str(request.getfixturevalue(fixture[request.param]))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `covered_on_mssql` run on SQLite and PostgreSQL only: the SQL Server stand-in
    spends seconds per new session parsing each statement, and a sibling test covers it there."""
    keep, dropped = [], []
    for item in items:
        param = getattr(getattr(item, "callspec", None), "params", {}).get("sql_url")
        skip = param == "mssql" and item.get_closest_marker("covered_on_mssql")
        (dropped if skip else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture
def mssql_url(mssql_server: str) -> Iterator[str]:
    """A URL of a new, empty database on the SQL Server, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(mssql_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE [{name}]"))
    try:
        yield make_url(mssql_server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            drop_mssql_database(conn, name)
        admin.dispose()


def drop_mssql_database(conn: Any, name: str) -> None:
    """Drop it even where a test left pooled connections to it open."""
    sessions = text("SELECT spid FROM sys.sysprocesses WHERE dbid = DB_ID(:name)")
    for spid in conn.execute(sessions, {"name": name}).scalars().all():
        with contextlib.suppress(DBAPIError):  # it may have ended meanwhile
            conn.execute(text(f"KILL {int(spid)}"))
    conn.execute(text(f"DROP DATABASE [{name}]"))


def babelfish_start_script() -> Path | None:
    """The SQL Server stand-in's start script: OUTBOX_BABELFISH_START, else ../shared/babelfish."""
    configured = os.environ.get("OUTBOX_BABELFISH_START")
    candidates = [Path(configured)] if configured else [REPO.parent / "shared/babelfish/start"]
    return next((path for path in candidates if path.is_file()), None)


@pytest.fixture(scope="session")
def mssql_server() -> str:
    """A SQL Server URL: OUTBOX_TEST_MSSQL_URL, else the Babelfish stand-in started here."""
    configured = os.environ.get("OUTBOX_TEST_MSSQL_URL")
    if configured:
        return configured
    script = babelfish_start_script()
    if script is None:
        pytest.skip("no SQL Server: OUTBOX_TEST_MSSQL_URL unset and no Babelfish stand-in found")
    started = subprocess.run([str(script)], capture_output=True, text=True, timeout=300)
    if started.returncode != 0:
        pytest.fail(f"Babelfish stand-in did not start: {started.stderr.strip()[-500:]}")
    return started.stdout.strip().splitlines()[-1]
