"""The real FreeTDS ODBC driver, loaded by pyodbc, against loopback ports with no SQL Server.

A connection must fail quickly and cleanly, whether nothing listens on the port or
something accepts and never answers the login.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from adapters.sql.engine import make_engine
from adapters.sql.odbc import OdbcMissing
from entrypoints.errors import describe_startup_error

ROOT = Path(__file__).resolve().parents[2]
BOUND_SECONDS = 15  # generous: the connect timeout is 2 s; this is a behaviour check


def freetds_url(port: int) -> str:
    return f"mssql+pyodbc://sa:x@127.0.0.1:{port}/db?driver=FreeTDS"


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections, reads the login, never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield int(listener.getsockname()[1])
    listener.close()
    for connection in held:
        connection.close()


def test_pyodbc_finds_the_freetds_odbc_driver() -> None:
    import pyodbc  # here, not at collection: a machine without unixODBC still runs the rest

    drivers = pyodbc.drivers()

    assert "FreeTDS" in drivers, (
        f"pyodbc.drivers() is {drivers}: install Debian's unixodbc and tdsodbc "
        "(scripts/bootstrap does) so FreeTDS is registered in /etc/odbcinst.ini"
    )


def test_connecting_to_a_closed_port_fails_quickly_with_a_database_error(closed_port: int) -> None:
    engine = make_engine(freetds_url(closed_port), connect_timeout=2)
    started = time.monotonic()

    with pytest.raises(DBAPIError) as raised:
        engine.connect()

    import pyodbc

    assert time.monotonic() - started < BOUND_SECONDS
    assert isinstance(raised.value.orig, pyodbc.Error)


def test_a_failed_connection_is_described_in_one_clean_line(closed_port: int) -> None:
    engine = make_engine(freetds_url(closed_port), connect_timeout=2)
    with pytest.raises(DBAPIError) as raised:
        engine.connect()

    line = describe_startup_error(raised.value)

    assert line is not None and line.startswith("database error:")
    assert "\n" not in line
    assert "[FreeTDS]" in line  # the message comes from the loaded driver library


def test_a_server_that_never_answers_the_login_fails_within_the_timeout(silent_server: int) -> None:
    started = time.monotonic()

    try:
        probe = subprocess.run(
            [sys.executable, "-m", "tests.integration.mssql_probe", freetds_url(silent_server)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=BOUND_SECONDS,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"connecting to a silent server still hung after {BOUND_SECONDS} s")

    assert time.monotonic() - started < BOUND_SECONDS
    assert probe.returncode == 1, probe.stderr
    assert probe.stdout.startswith("database error:") and "Timeout expired" in probe.stdout


def test_a_missing_odbc_driver_is_one_line_naming_what_to_install(closed_port: int) -> None:
    url = f"mssql+pyodbc://sa:x@127.0.0.1:{closed_port}/db?driver=No+Such+ODBC+Driver"
    with pytest.raises(OdbcMissing) as raised:
        make_engine(url, connect_timeout=2).connect()

    line = describe_startup_error(raised.value)

    assert line is not None and "\n" not in line
    assert "'No Such ODBC Driver'" in line and "install" in line
