"""SQL Server without a server: every statement the store issues, compiled for mssql.

Creating an mssql engine does not connect, so the claim statements are built by a real
`SqlOutboxStore` on an mssql engine. The dialect-neutral statements (ack, held rows, renew,
requeue, admin reads) are recorded while a store runs a full lifecycle on SQLite, then
compiled for mssql, so the list is what the store really issues, not what we remember.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import Dialect
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.sql.selectable import TextualSelect

from adapters.sql.engine import fix_freetds_url
from adapters.sql.producer import insert_statement
from adapters.sql.schema import dispatcher_columns, history_table, indexes, outbox_table
from adapters.sql.store import SqlOutboxStore
from application.ports import Attempt, NewMessage
from domain.delivery import DeliveryResult
from tests.integration.sql_stores import migrated_store

MSSQL_URL = "mssql+pyodbc://u:p@h/db?driver=FreeTDS"
OWNER = "owner-q7zx"
TOKEN = "tok-3zq9k"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LOCK_HINTS = "WITH (ROWLOCK, UPDLOCK, READPAST)"


def mssql_dialect() -> Dialect:
    # As the dialect sets itself up on connecting to SQL Server 2012 or later.
    return create_engine(MSSQL_URL, deprecate_large_types=True).dialect


@pytest.fixture
def mssql_store() -> SqlOutboxStore:
    return SqlOutboxStore(create_engine(MSSQL_URL))


def claim_sql(store: SqlOutboxStore, per_user: bool) -> str:
    """The claim as compiled for mssql, whitespace folded so layout changes do not matter."""
    return " ".join(str(store._claims[per_user].compile(dialect=store.engine.dialect)).split())


def picking_subquery(sql: str) -> str:
    """The derived table that picks the ids: `FROM ( SELECT TOP … ) c WHERE`."""
    found = re.search(r"FROM \( (SELECT TOP .*?) \) c WHERE", sql)
    assert found is not None, sql
    return found.group(1)


def outer_where(sql: str) -> str:
    return sql.split(") c WHERE", 1)[1].split(";", 1)[0]


def hints(sql: str) -> set[str]:
    found = re.search(r"WITH \(([A-Z, ]+)\)", sql)
    return {h.strip() for h in found.group(1).split(",")} if found else set()


# --- recording what the store issues ---------------------------------------


def record(engine: Engine) -> list[tuple[ClauseElement, list[dict[str, Any]]]]:
    issued: list[tuple[ClauseElement, list[dict[str, Any]]]] = []

    def before_execute(conn: Any, clause: Any, multiparams: Any, params: Any, options: Any) -> None:
        if isinstance(clause, ClauseElement):
            issued.append((clause, list(multiparams) or [params]))

    event.listen(engine, "before_execute", before_execute)
    return issued


def run_lifecycle(store: SqlOutboxStore) -> None:
    ids = store.enqueue([NewMessage(user_id=1, body="a"), NewMessage(user_id=2, body="b")])
    lease = T0 + timedelta(seconds=30)
    claimed = store.claim(owner=OWNER, token=TOKEN, limit=10, now=T0, lease_until=lease)
    store.renew(TOKEN, lease + timedelta(seconds=30))
    ok = DeliveryResult(status_code=200, latency_ms=4)
    key = claimed[0].idempotency_key or ""
    attempt = Attempt(message_id=ids[0], attempt=1, idempotency_key=key, started_at=T0, result=ok)
    store.ack(TOKEN, [claimed[0].mark_sent(ok, T0), claimed[1].reject("bad")], [attempt])
    store.requeue_dead([ids[1]])
    store.requeue_dead(None)
    store.prune_history(T0)
    store.overview(T0)
    store.due(T0)
    store.unfinished()
    store.get(ids[0])
    store.history_of(ids[0])


def compile_for_mssql(clause: ClauseElement, params: list[dict[str, Any]]) -> str:
    options: dict[str, Any] = {"dialect": mssql_dialect()}
    if isinstance(clause, Insert | Update) and params and params[0]:
        options.update(column_keys=list(params[0]), for_executemany=len(params) > 1)
    return str(clause.compile(**options, compile_kwargs={"render_postcompile": True}))


@pytest.fixture
def issued(tmp_path: Path) -> Iterator[list[str]]:
    store = migrated_store(f"sqlite:///{tmp_path / 'record.db'}")
    recorded = record(store.engine)

    run_lifecycle(store)

    core = [(c, p) for c, p in recorded if not isinstance(c, TextualSelect)]  # claim: below
    yield [compile_for_mssql(clause, params) for clause, params in core]
    store.close()


# --- the claim ---------------------------------------------------------------


@pytest.mark.parametrize("per_user", [False, True])
def test_the_claim_picks_ids_with_top_and_lock_hints_that_skip_locked_rows(
    mssql_store: SqlOutboxStore, per_user: bool
) -> None:
    sql = claim_sql(mssql_store, per_user)

    picking = picking_subquery(sql)
    assert picking.startswith("SELECT TOP (?) t.[ID] FROM [Messages] t WITH (")
    assert hints(picking) == {"ROWLOCK", "UPDLOCK", "READPAST"}
    assert picking.endswith("ORDER BY t.[ID]")


@pytest.mark.parametrize("per_user", [False, True])
def test_the_claim_updates_the_named_table_joined_to_a_derived_table_not_a_cte_nor_merge(
    mssql_store: SqlOutboxStore, per_user: bool
) -> None:
    sql = claim_sql(mssql_store, per_user)

    assert sql.count("UPDATE [Messages] SET") == 1 and "FROM ( SELECT TOP" in sql
    assert outer_where(sql).startswith(" [Messages].[ID] = c.[ID] AND ")
    assert not re.search(r"\bWITH \w+ AS \(", sql)  # a CTE overflows Babelfish's stack
    assert "UPDATE c" not in sql and "UPDATE m" not in sql and "MERGE" not in sql.upper()


@pytest.mark.parametrize("per_user", [False, True])
def test_the_claim_repeats_the_due_condition_on_the_outer_update(
    mssql_store: SqlOutboxStore, per_user: bool
) -> None:
    sql = claim_sql(mssql_store, per_user)

    where = outer_where(sql)
    assert "AND [Messages].[ToSend] IN (1, 2)" in where
    assert "[Messages].[NextAttemptAt] IS NULL OR [Messages].[NextAttemptAt] <= ?" in where
    assert "[Messages].[ToSend] = 2 AND [Messages].[LeaseUntil] <= ?" in where


@pytest.mark.parametrize("per_user", [False, True])
def test_the_claim_outputs_into_a_table_variable_through_a_matching_column_list(
    mssql_store: SqlOutboxStore, per_user: bool
) -> None:
    sql = claim_sql(mssql_store, per_user)

    output = re.search(r"OUTPUT (.*?) INTO @claimed \((.*?)\)", sql)
    assert output is not None, "OUTPUT … INTO @claimed needs a column list"
    inserted = [c.strip() for c in output.group(1).split(",")]
    listed = [c.strip() for c in output.group(2).split(",")]
    assert inserted == [f"inserted.{c}" for c in listed]
    assert {"[ID]", "[IdempotencyKey]", "[LeaseToken]"} <= set(listed)
    declared = re.search(r"DECLARE @claimed TABLE \((.*?)\);", sql)
    assert declared is not None
    assert {d.split()[0] for d in declared.group(1).split(", ")} == set(listed)
    assert "RETURNING" not in sql


@pytest.mark.parametrize("per_user", [False, True])
def test_the_claim_turns_nocount_on_for_its_result_and_back_off_for_the_session(
    mssql_store: SqlOutboxStore, per_user: bool
) -> None:
    sql = claim_sql(mssql_store, per_user)

    assert sql.startswith("SET NOCOUNT ON;")
    assert sql.endswith("FROM @claimed; SET NOCOUNT OFF;")


def test_the_per_user_claim_only_takes_each_users_earliest_unfinished_row(
    mssql_store: SqlOutboxStore,
) -> None:
    sql = claim_sql(mssql_store, per_user=True)

    assert "NOT EXISTS (SELECT 1 FROM [Messages] e WHERE e.[UserID] = t.[UserID]" in sql
    assert "e.[ID] < t.[ID]" in sql


@pytest.mark.parametrize("per_user", [False, True])
def test_the_claim_binds_every_value_as_a_parameter(
    mssql_store: SqlOutboxStore, per_user: bool
) -> None:
    values = {
        "owner": OWNER,
        "token": TOKEN,
        "limit": 50,
        "now": T0,
        "lease_until": T0 + timedelta(seconds=30),
        "key_prefix": f"msg_{TOKEN}_",
    }

    compiled = mssql_store._claims[per_user].compile(dialect=mssql_store.engine.dialect)

    sql = str(compiled)
    assert OWNER not in sql and TOKEN not in sql and "50" not in sql
    assert set(compiled.positiontup or ()) == set(values)
    assert sql.count("?") == len(compiled.positiontup or ())
    assert compiled.construct_params(values)["token"] == TOKEN


@pytest.mark.parametrize("per_user", [False, True])
def test_the_claim_builds_idempotency_keys_with_plus_not_double_pipe(
    mssql_store: SqlOutboxStore, per_user: bool
) -> None:
    sql = claim_sql(mssql_store, per_user)

    assert "? + CAST([Messages].[ID] AS VARCHAR(20))" in sql
    assert "||" not in sql


@pytest.mark.parametrize("per_user", [False, True])
def test_the_claim_asks_for_no_for_update_clause(
    mssql_store: SqlOutboxStore, per_user: bool
) -> None:
    sql = claim_sql(mssql_store, per_user)

    assert "FOR UPDATE" not in sql.upper()
    assert "SKIP LOCKED" not in sql.upper()


# --- the other statements the store issues ---------------------------------


def ack_sql(store: SqlOutboxStore) -> str:
    return " ".join(str(store._ack.compile(dialect=store.engine.dialect)).split())


def test_the_ack_is_one_update_joined_to_the_batch_opened_with_openjson(
    mssql_store: SqlOutboxStore,
) -> None:
    sql = ack_sql(mssql_store)

    assert sql.count("UPDATE ") == 1 and sql.count("?") == 2  # the batch and the token
    assert re.search(r"FROM OPENJSON\(\?\) WITH \(\[ID\] BIGINT '\$\.ID', .*\) AS s", sql)
    assert "[Status] = s.[Status]" in sql and "[LeaseUntil] = s.[LeaseUntil]" in sql


def test_the_ack_writes_only_where_the_row_is_still_held_by_the_same_token(
    mssql_store: SqlOutboxStore,
) -> None:
    sql = ack_sql(mssql_store)

    where = sql.split(" WHERE ", 1)[1]
    assert "[Messages].[ID] = s.[ID]" in where
    assert "[Messages].[LeaseToken] = ?" in where and "[Messages].[ToSend] = 2" in where


def test_the_ack_reports_the_written_ids_through_a_table_variable(
    mssql_store: SqlOutboxStore,
) -> None:
    sql = ack_sql(mssql_store)

    assert "OUTPUT inserted.[ID] INTO @written ([ID])" in sql
    assert sql.startswith("SET NOCOUNT ON;") and sql.endswith("SET NOCOUNT OFF;")


def test_the_attempt_history_is_one_insert_from_the_batch_document(
    mssql_store: SqlOutboxStore,
) -> None:
    sql = " ".join(str(mssql_store._history.compile(dialect=mssql_store.engine.dialect)).split())

    assert sql.startswith("INSERT INTO [MessagesAttempts] ([MessageID], [Attempt],")
    assert " SELECT s.[MessageID], s.[Attempt]," in sql and "FROM OPENJSON(?) WITH (" in sql
    assert sql.count("?") == 1


def test_renew_and_requeue_are_plain_parameterised_updates(issued: list[str]) -> None:
    updates = [sql for sql in issued if sql.startswith("UPDATE [Messages] SET")]

    renew = [sql for sql in updates if sql.startswith("UPDATE [Messages] SET [LeaseUntil]=?")]
    requeue = [sql for sql in updates if "[IdempotencyKey]=?" in sql and "[Status]=?" in sql]
    assert len(renew) == 1 and "[Messages].[LeaseToken] = ?" in renew[0]
    assert len(requeue) >= 2  # the requeue of one id and of all dead rows
    assert any("[Messages].[ID] IN (?)" in sql for sql in requeue)


def test_the_enqueue_insert_has_no_output_clause_so_tables_with_triggers_work() -> None:
    sql = str(insert_statement("Messages", "mssql").compile(dialect=mssql_dialect()))

    assert sql.startswith("INSERT INTO [Messages] ")
    assert "OUTPUT" not in sql


def test_no_issued_statement_carries_a_literal_owner_or_token(issued: list[str]) -> None:
    with_literals = [sql for sql in issued if OWNER in sql or TOKEN in sql or "'bad'" in sql]

    assert len(issued) >= 12
    assert with_literals == []


def test_no_issued_statement_uses_for_update_or_double_pipe(issued: list[str]) -> None:
    unsupported = [sql for sql in issued if "FOR UPDATE" in sql.upper() or "||" in sql]

    assert unsupported == []


# --- DDL ----------------------------------------------------------------------


def test_the_claim_indexes_are_filtered_to_unfinished_rows() -> None:
    table = outbox_table("Messages")

    ddl = [str(CreateIndex(i).compile(dialect=mssql_dialect())) for i in indexes(table, "mssql")]

    assert ddl == [
        'CREATE INDEX [IX_Messages_Due] ON [Messages] ([ID]) WHERE "ToSend" IN (1, 2)',
        "CREATE INDEX [IX_Messages_UserDue] ON [Messages] ([UserID], [ID])"
        ' WHERE "ToSend" IN (1, 2)',
        'CREATE INDEX [IX_Messages_Lease] ON [Messages] ([LeaseToken]) WHERE "ToSend" = 2',
    ]


def test_the_created_table_keeps_the_seeds_types_and_uses_datetime2() -> None:
    table = outbox_table("Messages")

    ddl = str(CreateTable(table).compile(dialect=mssql_dialect()))

    assert "[ID] BIGINT NOT NULL IDENTITY" in ddl
    assert "[UserID] INTEGER NOT NULL" in ddl
    assert "[Message] NVARCHAR(max) NULL" in ddl
    assert "[ToSend] SMALLINT NOT NULL DEFAULT 0" in ddl
    assert "[Status] NVARCHAR(400) NULL" in ddl
    assert "[NextAttemptAt] DATETIME2 NULL" in ddl and "[LeaseUntil] DATETIME2 NULL" in ddl
    assert not re.search(r"DATETIME\b(?!2)", ddl)


def test_the_attempt_history_table_uses_datetime2() -> None:
    table = history_table("Messages")

    ddl = str(CreateTable(table).compile(dialect=mssql_dialect()))

    assert "[StartedAt] DATETIME2 NOT NULL" in ddl
    assert "[MessageID] BIGINT NOT NULL" in ddl


def test_adopting_a_table_only_adds_nullable_or_defaulted_columns() -> None:
    out = io.StringIO()
    context = MigrationContext.configure(
        dialect=mssql_dialect(), opts={"as_sql": True, "output_buffer": out}
    )

    for column in dispatcher_columns():
        Operations(context).add_column("Messages", column)

    statements = [s.strip() for s in out.getvalue().split("GO") if s.strip()]
    assert len(statements) == len(dispatcher_columns())
    assert all(s.startswith("ALTER TABLE [Messages] ADD [") for s in statements)
    assert all(s.endswith(" NULL;") or " DEFAULT " in s for s in statements)


# --- connection URLs ---------------------------------------------------------


def test_a_freetds_url_passes_the_port_as_its_own_keyword() -> None:
    url = make_url("mssql+pyodbc://sa:pw@db.example:1433/outbox?driver=FreeTDS")

    fixed = fix_freetds_url(url)

    assert fixed.port is None and fixed.host == "db.example"
    assert fixed.query["port"] == "1433" and fixed.query["driver"] == "FreeTDS"
    assert fixed.password == "pw" and fixed.database == "outbox"


def test_a_freetds_url_gets_a_pinned_tds_version_unless_it_names_one() -> None:
    plain = make_url("mssql+pyodbc://sa:pw@db.example/outbox?driver=FreeTDS")
    named = make_url("mssql+pyodbc://sa:pw@db.example/outbox?driver=FreeTDS&tds_version=7.3")

    assert fix_freetds_url(plain).query["TDS_Version"] == "7.4"
    assert fix_freetds_url(plain).port is None and "port" not in fix_freetds_url(plain).query
    assert fix_freetds_url(named) == named


def test_an_odbc_driver_18_url_is_left_alone() -> None:
    url = make_url(
        "mssql+pyodbc://sa:pw@db.example:1433/outbox"
        "?driver=ODBC+Driver+18+for+SQL+Server&Encrypt=yes&TrustServerCertificate=no"
    )

    assert fix_freetds_url(url) == url


def test_the_odbc_connect_string_of_a_freetds_url_names_the_port_apart() -> None:
    engine = create_engine(fix_freetds_url(make_url(MSSQL_URL.replace("@h/", "@h:14330/"))))

    args, _ = engine.dialect.create_connect_args(engine.url)

    assert "Server=h;" in args[0] and "port=14330" in args[0]
    assert "h,14330" not in args[0] and "TDS_Version=7.4" in args[0]
