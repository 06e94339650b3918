"""The ack, one statement per flushed batch on every database, plus one for the history.

The batch travels as one JSON document that the database opens as a table (SQLite
`json_each`, PostgreSQL `jsonb_to_recordset`, SQL Server `OPENJSON`) and joins on ID and
lease token: one parameter whatever the batch size, so no chunking under SQL Server's
2,100-parameter limit and no `executemany` (whose fast path crashes with FreeTDS). The
update returns the ids it wrote; the rest of the batch is refused (its lease was lost).
Chosen by measurement against row-by-row and VALUES lists (BENCHMARKS.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Table, text
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.sql.selectable import TextualSelect

from adapters.sql.mapping import LIFECYCLE_COLUMNS

# Each column's type as the database reads it out of the JSON document.
_INT, _SMALL, _TEXT, _MOMENT = "int", "small", "text", "moment"
_TYPES = {
    "postgresql": {_INT: "bigint", _SMALL: "smallint", _TEXT: "text", _MOMENT: "timestamp"},
    "mssql": {_INT: "BIGINT", _SMALL: "SMALLINT", _TEXT: "NVARCHAR(MAX)", _MOMENT: "DATETIME2"},
}
_ACK_COLUMNS = {
    "ID": _INT, "ToSend": _SMALL, "Status": _TEXT, "Attempts": _INT, "NextAttemptAt": _MOMENT,
    "LeaseOwner": _TEXT, "LeaseUntil": _MOMENT, "LeaseToken": _TEXT, "IdempotencyKey": _TEXT,
    "SentAt": _MOMENT,
}  # fmt: skip
_HISTORY_COLUMNS = {
    "MessageID": _INT, "Attempt": _INT, "IdempotencyKey": _TEXT, "StartedAt": _MOMENT,
    "DurationMs": _INT, "HttpStatus": _SMALL, "Error": _TEXT, "Excerpt": _TEXT,
}  # fmt: skip

# The lease token fences the write: a row another claim took over is left alone. The target
# table is named, not aliased and joined in FROM: Babelfish loses the source's alias in that
# form once there is an OUTPUT clause. SQL Server returns the written ids through a table
# variable (a bare OUTPUT fails on tables with triggers) and turns NOCOUNT back OFF, which
# Babelfish would otherwise keep for the session.
_UPDATE = {
    "postgresql": "UPDATE {table} SET {set} FROM {source} WHERE {fence} RETURNING {table}.{id}",
    # SQLite resolves RETURNING against the target table only, unqualified.
    "sqlite": "UPDATE {table} SET {set} FROM {source} WHERE {fence} RETURNING {id}",
    "mssql": (
        "SET NOCOUNT ON; DECLARE @written TABLE ({id} BIGINT); "
        "UPDATE {table} SET {set} OUTPUT inserted.{id} INTO @written ({id}) "
        "FROM {source} WHERE {fence}; "
        "SELECT {id} FROM @written; SET NOCOUNT OFF;"
    ),
}


def ack_statement(table: Table, dialect: Dialect) -> TextualSelect:
    """Write each row's lifecycle columns where the row is still leased under :token."""
    q = dialect.identifier_preparer.quote
    t = q(table.name)
    # SQLite: the unary + keeps the planner off the lease index, which it would otherwise scan
    # first and then read the whole document for each row; by ID, each row is one lookup.
    plus = "+" if dialect.name == "sqlite" else ""
    fence = (
        f"{t}.{q('ID')} = s.{q('ID')} AND {plus}{t}.{q('LeaseToken')} = :token "
        f"AND {t}.{q('ToSend')} = 2"
    )
    sql = _UPDATE[dialect.name].format(
        table=t,
        set=", ".join(f"{q(c)} = s.{q(c)}" for c in LIFECYCLE_COLUMNS),
        source=_json_source(dialect, _ACK_COLUMNS),
        fence=fence,
        id=q("ID"),
    )
    return text(sql).columns(table.c.ID)


def history_statement(history: Table, dialect: Dialect) -> TextClause:
    """One multi-row INSERT of the attempt history, read out of the same kind of document."""
    q = dialect.identifier_preparer.quote
    names = ", ".join(q(c) for c in _HISTORY_COLUMNS)
    source = _json_source(dialect, _HISTORY_COLUMNS)
    picked = ", ".join(f"s.{q(c)}" for c in _HISTORY_COLUMNS)
    return text(f"INSERT INTO {q(history.name)} ({names}) SELECT {picked} FROM {source}")


def batch_document(rows: Iterable[Mapping[str, Any]]) -> str:
    """The rows as the JSON array the statements open; datetimes in the stored text form."""
    return json.dumps([{k: _plain(v) for k, v in row.items()} for row in rows])


def _plain(value: object) -> object:
    # SQLAlchemy's SQLite DateTime stores this exact text; the others parse it as well.
    return f"{value:%Y-%m-%d %H:%M:%S.%f}" if isinstance(value, datetime) else value


def _json_source(dialect: Dialect, columns: Mapping[str, str]) -> str:
    q = dialect.identifier_preparer.quote
    if dialect.name == "sqlite":
        picked = ", ".join(f"json_extract(value, '$.{c}') AS {q(c)}" for c in columns)
        return f"(SELECT {picked} FROM json_each(:batch)) AS s"
    types = _TYPES[dialect.name]
    declared = ", ".join(f"{q(c)} {types[kind]}" for c, kind in columns.items())
    if dialect.name == "postgresql":
        return f"jsonb_to_recordset(CAST(:batch AS jsonb)) AS s({declared})"
    # Explicit paths: Babelfish looks the implicit ones up in lower case.
    declared = ", ".join(f"{q(c)} {types[kind]} '$.{c}'" for c, kind in columns.items())
    return f"OPENJSON(:batch) WITH ({declared}) AS s"
