from __future__ import annotations

from types import ModuleType, SimpleNamespace
from typing import Any, cast

import pytest
from sqlalchemy import make_url

from adapters.sql.odbc import OdbcMissing, load_pyodbc, require_odbc
from entrypoints.errors import describe_startup_error

FREETDS = make_url("mssql+pyodbc://sa:pw@db/app?driver=FreeTDS&port=1433")
MICROSOFT = make_url("mssql+pyodbc://sa:pw@db/app?driver=ODBC+Driver+18+for+SQL+Server")


def pyodbc_with(*drivers: str) -> ModuleType:
    return cast(ModuleType, SimpleNamespace(drivers=lambda: list(drivers)))


def failing_import(message: str) -> Any:
    def importer(name: str) -> ModuleType:
        raise ImportError(message)

    return importer


def test_a_missing_libodbc_names_the_unixodbc_package_in_one_line() -> None:
    with pytest.raises(OdbcMissing) as raised:
        load_pyodbc(failing_import("libodbc.so.2: cannot open shared object file: No such file"))

    line = describe_startup_error(raised.value)
    assert line is not None and "\n" not in line
    assert "install the unixodbc package" in line and "libodbc.so.2" in line


def test_a_missing_pyodbc_module_says_to_pip_install_it() -> None:
    with pytest.raises(OdbcMissing, match="pip install pyodbc"):
        load_pyodbc(failing_import("No module named 'pyodbc'"))


def test_a_missing_freetds_driver_names_the_tdsodbc_package() -> None:
    with pytest.raises(OdbcMissing) as raised:
        require_odbc(FREETDS, load=lambda: pyodbc_with("PostgreSQL Unicode"))

    assert "'FreeTDS'" in str(raised.value) and "tdsodbc" in str(raised.value)
    assert "installed: PostgreSQL Unicode" in str(raised.value)


def test_a_missing_microsoft_driver_names_its_msodbcsql_package() -> None:
    with pytest.raises(OdbcMissing, match="msodbcsql18"):
        require_odbc(MICROSOFT, load=lambda: pyodbc_with("FreeTDS"))


def test_an_installed_driver_passes_whatever_its_case() -> None:
    require_odbc(FREETDS, load=lambda: pyodbc_with("freetds"))


def test_only_a_sql_server_url_loads_pyodbc() -> None:
    def must_not_load() -> ModuleType:
        raise AssertionError("pyodbc loaded for a URL that does not need it")

    for url in ("sqlite:///x.db", "postgresql+psycopg://u@h/db", "mssql+pymssql://u@h/db"):
        require_odbc(make_url(url), load=must_not_load)


def test_a_dsn_or_a_driver_library_path_is_left_to_the_driver_manager() -> None:
    for url in (
        "mssql+pyodbc://u:p@my_dsn",
        "mssql+pyodbc://u:p@h/db?driver=/opt/lib/libtdsodbc.so",
    ):
        require_odbc(make_url(url), load=lambda: pyodbc_with())
