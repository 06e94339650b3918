"""Which exceptions are start-up errors, and their one-line description."""

from __future__ import annotations

from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from adapters.sql.migrate import SchemaError
from adapters.targets import TargetError
from application.message_types import MessageTypeError
from domain.errors import DuplicateMessageType, one_line
from entrypoints.config import ConfigError

_ONE_LINE = (ConfigError, SchemaError, TargetError, MessageTypeError, DuplicateMessageType)


def describe_startup_error(error: Exception) -> str | None:
    if isinstance(error, _ONE_LINE):
        return str(error)
    if isinstance(error, (ArgumentError, NoSuchModuleError)):
        return f"OUTBOX_DATABASE_URL is not a usable SQLAlchemy URL: {error}"
    if isinstance(error, DBAPIError):
        return f"database error: {one_line(error.orig or error, limit=400)}"
    return None
