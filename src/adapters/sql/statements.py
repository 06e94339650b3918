"""The claim, the ack and the history insert of the store's dialect, ready to execute.

The SQL itself is written out in `adapters/sql/dialects/<dialect>.py`; here only the table
name (checked to be a plain identifier first) and the optional per-user clause go in. The
ack travels as one JSON document per batch: one parameter whatever the batch size, so no
chunking under SQL Server's 2,100-parameter limit and no `executemany` (whose fast path
crashes with FreeTDS). Chosen by measurement against row-by-row and VALUES lists
(BENCHMARKS.md).
"""

from __future__ import annotations

import re
from types import ModuleType

from sqlalchemy import DateTime, Table, bindparam, text
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import TextualSelect

from adapters.sql.dialects import mssql, postgresql, sqlite
from adapters.sql.mapping import MESSAGE_COLUMNS

_DIALECTS: dict[str, ModuleType] = {"sqlite": sqlite, "postgresql": postgresql, "mssql": mssql}
# Substituted into quotes or brackets, so it must not be able to close them.
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,119}$")


def sql_of(dialect: str, table: str, block: str, per_user: bool = False) -> str:
    """`CLAIM`, `ACK` or `HISTORY` of `dialect` for `table`, as the store executes it."""
    module = _DIALECTS.get(dialect)
    if module is None:
        raise ValueError(f"no SQL for dialect {dialect!r}")
    if not _IDENTIFIER.match(table):
        raise ValueError(f"table name {table!r} is not a plain SQL identifier")
    first_of_user = module.FIRST_OF_USER.format(table=table) if per_user else ""
    return str(getattr(module, block)).format(table=table, first_of_user=first_of_user)


def claim_statement(table: Table, dialect: str, per_user: bool) -> TextualSelect:
    """The claim, typed with the table's columns (in MESSAGE_COLUMNS order) for its rows."""
    sql = sql_of(dialect, table.name, "CLAIM", per_user)
    # Typed parameters: SQLite compares datetimes as text, so they must be formatted as stored.
    typed = text(sql).bindparams(
        bindparam("now", type_=DateTime()), bindparam("lease_until", type_=DateTime())
    )
    return typed.columns(*(table.c[name] for name in MESSAGE_COLUMNS))


def ack_statement(table: Table, dialect: str) -> TextualSelect:
    """Write each row's lifecycle columns where the row is still leased under :token;
    returns the ids written (the rest of the batch lost its lease)."""
    return text(sql_of(dialect, table.name, "ACK")).columns(table.c.ID)


def ack_with_history_statement(table: Table, dialect: str) -> TextualSelect | None:
    """The ack and the history insert as one statement (:batch, :token, :history), returning
    the ids written; None where the dialect has none (then the two above, in one transaction)."""
    if not hasattr(_DIALECTS.get(dialect), "ACK_WITH_HISTORY"):
        return None
    return text(sql_of(dialect, table.name, "ACK_WITH_HISTORY")).columns(table.c.ID)


def history_statement(table: Table, dialect: str) -> TextClause:
    """One multi-row INSERT of the attempt history, read out of the same kind of document."""
    return text(sql_of(dialect, table.name, "HISTORY"))
