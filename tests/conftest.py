"""Shared fixtures: real databases for the SQL adapters (SQLite files, PostgreSQL schemas)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import DBAPIError

from tests.throwaway_pg import ServerUnavailable, ThrowawayPostgres, find_bindir, stop_on_exit

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REPO = Path(__file__).resolve().parent.parent
THROWAWAY: list[ThrowawayPostgres] = []  # the session's own PostgreSQL, while it runs
SERVERS: dict[str, str] = {}  # "PostgreSQL" / "SQL Server" -> what the session used


def pg_base_url() -> str:
    return os.environ.get("OUTBOX_TEST_PG_URL", PG_DEFAULT)


def pg_problem(url: str) -> str | None:
    """Why this server cannot be used (one line), or None when it answers."""
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as error:
        cause = getattr(error, "orig", None) or error
        return (str(cause).strip().splitlines() or [type(cause).__name__])[0]
    finally:
        engine.dispose()
    return None


def unreachable(url: str, problem: str) -> str:
    return (
        f"OUTBOX_TEST_PG_URL={url}: PostgreSQL is unreachable ({problem}); start it, or unset"
        " the variable to let the tests use 127.0.0.1:5432 or a server of their own"
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """A configured server that is down stops the run at once, in one line: never a skip."""
    configured = os.environ.get("OUTBOX_TEST_PG_URL")
    if configured and any("pg_server" in getattr(i, "fixturenames", ()) for i in session.items):
        problem = pg_problem(configured)
        if problem is not None:
            pytest.exit(unreachable(configured, problem), returncode=1)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """OUTBOX_TEST_PG_URL; else the server at the default address if it answers; else a
    throwaway server of this session's own. A configured server that is down is an error."""
    configured = os.environ.get("OUTBOX_TEST_PG_URL")
    if configured:
        problem = pg_problem(configured)
        if problem is not None:
            pytest.fail(unreachable(configured, problem), pytrace=False)
        SERVERS["PostgreSQL"] = f"{configured} (OUTBOX_TEST_PG_URL)"
        yield configured
        return
    problem = pg_problem(PG_DEFAULT)
    if problem is None:
        SERVERS["PostgreSQL"] = f"{PG_DEFAULT} (the default address)"
        yield PG_DEFAULT
        return
    with throwaway_postgres(problem) as url:
        yield url


@contextlib.contextmanager
def throwaway_postgres(why: str) -> Iterator[str]:
    bindir = find_bindir()
    if bindir is None:
        pytest.fail(
            f"no PostgreSQL for the tests: OUTBOX_TEST_PG_URL is unset, {PG_DEFAULT} does not"
            f" answer ({why}), and no initdb to start one: run scripts/bootstrap"
            " (installs Debian's postgresql) or set OUTBOX_TEST_PG_URL",
            pytrace=False,
        )
    server = ThrowawayPostgres(bindir)
    restore = stop_on_exit(server)
    failure = ""
    try:
        url = server.start()
    except ServerUnavailable as error:
        failure = f"could not start a throwaway PostgreSQL from {bindir}: {error}"
    if failure:
        restore()
        pytest.fail(failure, pytrace=False)
    SERVERS["PostgreSQL"] = (
        f"a throwaway server of this session at {url} ({bindir}, started in"
        f" {server.started_in:.1f} s; nothing usable at the default address: {why})"
    )
    # Anything that reads the variable itself (subprocesses too) reaches the same server.
    os.environ["OUTBOX_TEST_PG_URL"] = url
    THROWAWAY.append(server)
    try:
        yield url
    finally:
        THROWAWAY.remove(server)
        os.environ.pop("OUTBOX_TEST_PG_URL", None)
        server.stop()
        restore()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for name, used in SERVERS.items():
        terminalreporter.write_line(f"{name}: {used}")


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
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
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
    """The SQL Server stand-in's start script: OUTBOX_BABELFISH_START, else `shared/babelfish`
    beside the clone or beside any folder above it, else this project's machines' /work/shared."""
    configured = os.environ.get("OUTBOX_BABELFISH_START")
    if configured:
        candidates = [Path(configured)]
    else:
        candidates = [d / "shared/babelfish/start" for d in REPO.parents]
        candidates.append(Path("/work/shared/babelfish/start"))
    return next((path for path in candidates if path.is_file()), None)


def no_sql_server(reason: str) -> NoReturn:
    SERVERS["SQL Server"] = f"suites NOT run: {reason}"
    pytest.skip(f"no SQL Server: {reason}")


@pytest.fixture(scope="session")
def mssql_server() -> str:
    """A SQL Server URL: OUTBOX_TEST_MSSQL_URL, else the Babelfish stand-in started here."""
    configured = os.environ.get("OUTBOX_TEST_MSSQL_URL")
    if configured:
        SERVERS["SQL Server"] = f"{configured} (OUTBOX_TEST_MSSQL_URL)"
        return configured
    script = babelfish_start_script()
    if script is None:
        no_sql_server("OUTBOX_TEST_MSSQL_URL is unset and no Babelfish stand-in was found")
    if os.geteuid() != 0:
        no_sql_server(
            f"the Babelfish stand-in ({script}) starts as root only; run it once as"
            " root, or set OUTBOX_TEST_MSSQL_URL"
        )
    started = subprocess.run([str(script)], capture_output=True, text=True, timeout=300)
    if started.returncode != 0:
        SERVERS["SQL Server"] = f"suites FAILED: the Babelfish stand-in ({script}) did not start"
        pytest.fail(f"Babelfish stand-in did not start: {started.stderr.strip()[-500:]}")
    url = started.stdout.strip().splitlines()[-1]
    SERVERS["SQL Server"] = f"{url} (the Babelfish stand-in, {script})"
    return url
