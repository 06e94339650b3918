"""Which exceptions are start-up errors, and their one-line description."""

from __future__ import annotations

from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from adapters.sql.migrate import SchemaError
from adapters.sql.odbc import OdbcMissing
from adapters.ssrf_guard import TargetError
from application.message_type_registry import MessageTypeError
from domain.errors import DuplicateMessageType, one_line
from entrypoints.config import ConfigError

_ONE_LINE = (
    ConfigError,
    SchemaError,
    TargetError,
    MessageTypeError,
    DuplicateMessageType,
    OdbcMissing,
)


def describe_startup_error(error: Exception) -> str | None:
    if isinstance(error, _ONE_LINE):
        return str(error)
    if isinstance(error, (ArgumentError, NoSuchModuleError)):
        return f"OUTBOX_DATABASE_URL is not a usable SQLAlchemy URL: {error}"
    if isinstance(error, DBAPIError):
        first = one_line(error.orig or error, limit=400)
        return f"database error: {first}{_odbc_hint(first)}"
    return None


def _odbc_hint(message: str) -> str:
    """unixODBC's "Can't open lib 'X'" means the ODBC driver named in the URL is not installed."""
    if "Can't open lib" not in message and "Data source name not found" not in message:
        return ""
    return (
        " (the ODBC driver named in the URL is not installed: for FreeTDS install Debian's "
        "tdsodbc and unixodbc; or Microsoft's ODBC Driver 18 for SQL Server)"
    )
