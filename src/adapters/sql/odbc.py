"""pyodbc and its ODBC driver, checked only where a SQL Server URL needs them.

Nothing else imports pyodbc, so a machine without unixODBC runs SQLite and PostgreSQL as
usual; a SQL Server URL there fails in one line that names the package to install.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from types import ModuleType

from sqlalchemy import URL


class OdbcMissing(Exception):
    """pyodbc, unixODBC or the URL's ODBC driver is not installed; says which package to get."""


def require_odbc(url: URL, load: Callable[[], ModuleType] | None = None) -> None:
    """For `mssql+pyodbc` URLs: pyodbc loads, and the driver the URL names is registered."""
    if url.get_backend_name() != "mssql" or url.get_driver_name() != "pyodbc":
        return
    pyodbc = (load or load_pyodbc)()
    driver = str(url.query.get("driver", "")).strip("{}")
    if not driver or "/" in driver:  # a DSN, or a driver given by its library's path
        return
    installed = [str(name) for name in pyodbc.drivers()]
    if driver.lower() not in (name.lower() for name in installed):
        raise OdbcMissing(
            f"the ODBC driver {driver!r} of OUTBOX_DATABASE_URL is not installed"
            f" (installed: {', '.join(installed) or 'none'}): install {driver_package(driver)}"
        )


def load_pyodbc(importer: Callable[[str], ModuleType] = importlib.import_module) -> ModuleType:
    try:
        return importer("pyodbc")
    except ImportError as error:
        cause = (str(error).strip().splitlines() or [type(error).__name__])[0]
        if "libodbc" in cause:
            raise OdbcMissing(
                f"pyodbc cannot load unixODBC ({cause}): install the unixodbc package"
                " (Debian/Ubuntu: apt-get install unixodbc)"
            ) from None
        raise OdbcMissing(f"pyodbc cannot be imported ({cause}): pip install pyodbc") from None


def driver_package(driver: str) -> str:
    """Where the named ODBC driver comes from."""
    if "freetds" in driver.lower():
        return "the tdsodbc package (Debian/Ubuntu: apt-get install tdsodbc)"
    microsoft = re.fullmatch(r"ODBC Driver (\d+) for SQL Server", driver, re.IGNORECASE)
    if microsoft:
        return f"Microsoft's msodbcsql{microsoft.group(1)} package (Microsoft's Linux repository)"
    return f"the ODBC driver named {driver!r} and register it in odbcinst.ini"
