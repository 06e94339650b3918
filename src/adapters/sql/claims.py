"""The claim statement, one per dialect: one round trip leases up to :limit due rows.

Every variant repeats the due condition where the rows are updated, so a row is never
claimed twice even where a lock hint is ignored; the caller sorts the rows it gets back,
because RETURNING/OUTPUT order is undefined.
"""

from __future__ import annotations

import re

from sqlalchemy import DateTime, Table, bindparam, text
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.elements import TextClause

from adapters.sql.mapping import MESSAGE_COLUMNS
from adapters.sql.schema import index_names

_COLUMNS = MESSAGE_COLUMNS  # in this order: the claim maps its rows by position

# Literal state numbers (not parameters) so the planner can match the partial indexes.
_DUE = (
    "{a}ToSend IN (1, 2) AND (({a}ToSend = 1 AND ({a}NextAttemptAt IS NULL "
    "OR {a}NextAttemptAt <= :now)) OR ({a}ToSend = 2 AND {a}LeaseUntil <= :now))"
)
# Only the earliest unfinished row of a user may go: one in flight per user, in ID order.
_FIRST_OF_USER = (
    " AND NOT EXISTS (SELECT 1 FROM {table} e WHERE e.UserID = {a}UserID"
    " AND e.ToSend IN (1, 2) AND e.ID < {a}ID)"
)
# A row (re)queued by upstream, not by a scheduled retry, is a new request with a new key.
_NEW_REQUEST = "{a}ToSend = 1 AND ({a}NextAttemptAt IS NULL OR {a}IdempotencyKey IS NULL)"
_SET = (
    "ToSend = 2, LeaseOwner = :owner, LeaseToken = :token, LeaseUntil = :lease_until, "
    "Attempts = CASE WHEN {new} THEN 1 ELSE {a}Attempts + 1 END, "
    "IdempotencyKey = CASE WHEN {new} THEN {key} ELSE {a}IdempotencyKey END"
)

_POSTGRESQL = """
WITH due AS (
    SELECT ID FROM {table} t WHERE {due_t}{per_user}
    ORDER BY ID LIMIT :limit FOR UPDATE SKIP LOCKED
)
UPDATE {table} m SET {set_m}
FROM due WHERE m.ID = due.ID AND {due_m}
RETURNING {returning_m}
"""

# SQLite has one writer at a time, so the subquery cannot race another claim. INDEXED BY
# keeps the planner off a full scan in rowid order once ANALYZE sees mostly-pending rows.
_SQLITE = """
UPDATE {table} SET {set_bare}
WHERE ID IN (
    SELECT t.ID FROM {table} t INDEXED BY {due_index} WHERE {due_t}{per_user}
    ORDER BY t.ID LIMIT :limit
) AND {due_bare}
RETURNING {returning_bare}
"""

# READPAST skips rows other claimers hold, UPDLOCK keeps ours until commit, ROWLOCK avoids
# page locks. The ids come from a derived table joined to the target, which is named rather
# than aliased: Babelfish turns `UPDATE m … FROM t m JOIN (…) c` into a plan that reruns the
# derived table for every row of the table (and a CTE with OUTPUT INTO overflows its stack;
# UPDATE through a CTE and MERGE are unsupported there); this form is plain T-SQL as well.
# OUTPUT goes INTO a table variable, with a column list: a bare OUTPUT clause fails (error 334)
# on a table with enabled triggers, which adopted legacy tables often have. Wide types: the
# table may be adopted with wider columns than ours. NOCOUNT goes back OFF at the end because
# Babelfish keeps it for the session, and later updates would report 0 rows.
_MSSQL = """
SET NOCOUNT ON;
DECLARE @claimed TABLE ({declare_columns});
UPDATE {table} SET {set_target}
OUTPUT {returning_inserted} INTO @claimed ({returning_bare})
FROM (
    SELECT TOP (:limit) t.ID FROM {table} t WITH (ROWLOCK, UPDLOCK, READPAST)
    WHERE {due_t}{per_user} ORDER BY t.ID
) c
WHERE {table}.ID = c.ID AND {due_target};
SELECT {returning_bare} FROM @claimed;
SET NOCOUNT OFF;
"""
_MSSQL_TYPES = {
    "ID": "BIGINT", "UserID": "BIGINT", "Message": "NVARCHAR(MAX)",
    "MessageType": "NVARCHAR(400)", "ToSend": "SMALLINT", "Attempts": "INT",
    "NextAttemptAt": "DATETIME2", "LeaseOwner": "NVARCHAR(400)", "LeaseUntil": "DATETIME2",
    "LeaseToken": "VARCHAR(80)", "IdempotencyKey": "VARCHAR(200)", "Status": "NVARCHAR(MAX)",
    "SentAt": "DATETIME2",
}  # fmt: skip


def claim_statement(table: Table, dialect: Dialect, per_user: bool) -> TextClause:
    """The claim for this dialect, typed with the table's columns for result processing."""
    template = {"postgresql": _POSTGRESQL, "sqlite": _SQLITE, "mssql": _MSSQL}.get(dialect.name)
    if template is None:
        raise ValueError(f"no claim statement for dialect {dialect.name!r}")
    sql = _render(template, table, dialect, per_user)
    # Typed parameters: SQLite compares datetimes as text, so they must be formatted as stored.
    typed = text(sql).bindparams(
        bindparam("now", type_=DateTime()), bindparam("lease_until", type_=DateTime())
    )
    return typed.columns(*(table.c[name] for name in _COLUMNS))  # type: ignore[return-value]


def _render(template: str, table: Table, dialect: Dialect, per_user: bool) -> str:
    q = dialect.identifier_preparer.quote
    quoted_table = q(table.name)
    key = ":key_prefix || CAST({a}ID AS VARCHAR(20))"
    if dialect.name == "mssql":
        key = ":key_prefix + CAST({a}ID AS VARCHAR(20))"
    pieces = {
        "table": quoted_table,
        "due_index": q(index_names(table.name)["due"]),
        "per_user": _FIRST_OF_USER.format(table=quoted_table, a="t.") if per_user else "",
    }
    aliases = (("t", "t."), ("m", "m."), ("bare", ""), ("target", f"{quoted_table}."))
    for suffix, alias in aliases:
        new = _NEW_REQUEST.format(a=alias)
        pieces[f"due_{suffix}"] = _DUE.format(a=alias)
        pieces[f"set_{suffix}"] = _SET.format(a=alias, new=new, key=key.format(a=alias))
        pieces[f"returning_{suffix}"] = ", ".join(f"{alias}{c}" for c in _COLUMNS)
    pieces["returning_inserted"] = ", ".join(f"inserted.{c}" for c in _COLUMNS)
    pieces["declare_columns"] = ", ".join(f"{c} {_MSSQL_TYPES[c]}" for c in _COLUMNS)
    return _quote_columns(template.format(**pieces), q)


def _quote_columns(sql: str, quote: object) -> str:
    """Quote the mixed-case column names (PostgreSQL folds unquoted names to lower case)."""
    assert callable(quote)
    names = sorted({*_COLUMNS, "CreatedAt"}, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w\"\[:])(" + "|".join(names) + r")(?![\w\"\]])")
    return pattern.sub(lambda m: str(quote(m.group(1))), sql)
