"""The claim reads its partial index, not the table, also after ANALYZE.

What each planner was seen to do is noted where it matters: SQLite, after ANALYZE on a
table where every row is pending, scans the table in rowid order unless told `INDEXED BY`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import DateTime, bindparam, insert, text

from adapters.sql.mapping import to_db
from adapters.sql.store import SqlOutboxStore
from tests.integration.sql_stores import migrated_store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PARAMS = {
    "owner": "w",
    "token": "t",
    "limit": 50,  # explain() takes another
    "now": to_db(T0),
    "lease_until": to_db(T0 + timedelta(seconds=30)),
    "key_prefix": "msg_t_",
}
MOSTLY_SENT, ALL_PENDING = 20, 1  # one row in N is pending


def fill(store: SqlOutboxStore, rows: int, pending_every: int) -> None:
    values = [
        {"UserID": i % 500, "Message": f"m{i}", "ToSend": 1 if i % pending_every == 0 else 0}
        for i in range(rows)
    ]
    with store.engine.begin() as conn:
        conn.execute(insert(store.table), values)
        conn.execute(text("ANALYZE"))


def explain(store: SqlOutboxStore, prefix: str, per_user: bool, limit: int = 50) -> list[str]:
    """The plan of the claim exactly as the store runs it, with the same bound parameters."""
    claim = store._claims[per_user].element.text  # type: ignore[attr-defined]
    statement = text(prefix + claim).bindparams(
        bindparam("now", type_=DateTime()), bindparam("lease_until", type_=DateTime())
    )
    with store.engine.connect() as conn:
        return [str(row[-1]) for row in conn.execute(statement, {**PARAMS, "limit": limit})]


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[SqlOutboxStore]:
    store = migrated_store(sqlite_url)
    yield store
    store.close()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[SqlOutboxStore]:
    store = migrated_store(pg_url)
    yield store
    store.close()


# --- SQLite --------------------------------------------------------------------


def unindexed_scans(plan: list[str]) -> list[str]:
    return [line for line in plan if line.startswith("SCAN") and " USING " not in line]


@pytest.mark.parametrize(
    "pending_every", [MOSTLY_SENT, ALL_PENDING], ids=["mostly-sent", "all-pending"]
)
def test_on_sqlite_the_claim_reads_the_due_index_after_analyze(
    sqlite_store: SqlOutboxStore, pending_every: int
) -> None:
    fill(sqlite_store, 5000, pending_every)

    plan = explain(sqlite_store, "EXPLAIN QUERY PLAN ", per_user=False)

    assert "SCAN t USING INDEX IX_Messages_Due" in plan, plan
    assert unindexed_scans(plan) == [], plan


@pytest.mark.parametrize(
    "pending_every", [MOSTLY_SENT, ALL_PENDING], ids=["mostly-sent", "all-pending"]
)
def test_on_sqlite_the_per_user_claim_reads_the_due_and_per_user_indexes_after_analyze(
    sqlite_store: SqlOutboxStore, pending_every: int
) -> None:
    fill(sqlite_store, 5000, pending_every)

    plan = explain(sqlite_store, "EXPLAIN QUERY PLAN ", per_user=True)

    assert "SCAN t USING INDEX IX_Messages_Due" in plan, plan
    assert any("SEARCH e USING INDEX IX_Messages_UserDue" in line for line in plan), plan
    assert unindexed_scans(plan) == [], plan


# --- PostgreSQL ------------------------------------------------------------------


def seq_scans(plan: list[str]) -> list[str]:
    return [line.strip() for line in plan if 'Seq Scan on "Messages"' in line]


@pytest.mark.postgres
@pytest.mark.parametrize("per_user", [False, True], ids=["claim", "per-user-claim"])
def test_on_postgresql_the_claim_reads_the_due_index_on_a_mostly_sent_table(
    pg_store: SqlOutboxStore, per_user: bool
) -> None:
    fill(pg_store, 20_000, 50)

    plan = explain(pg_store, "EXPLAIN ", per_user)

    assert any('Index Scan using "IX_Messages_Due" on "Messages" t' in line for line in plan), plan
    assert seq_scans(plan) == [], plan


@pytest.mark.postgres
@pytest.mark.parametrize("per_user", [False, True], ids=["claim", "per-user-claim"])
def test_on_postgresql_the_claim_reads_the_due_index_when_every_row_is_pending(
    pg_store: SqlOutboxStore, per_user: bool
) -> None:
    fill(pg_store, 20_000, ALL_PENDING)

    plan = explain(pg_store, "EXPLAIN ", per_user)

    assert any('Index Scan using "IX_Messages_Due" on "Messages" t' in line for line in plan), plan
    assert seq_scans(plan) == [], plan


@pytest.mark.postgres
@pytest.mark.parametrize("per_user", [False, True], ids=["claim", "per-user-claim"])
def test_on_postgresql_a_batch_of_500_from_a_small_table_updates_by_primary_key(
    pg_store: SqlOutboxStore, per_user: bool
) -> None:
    """Joined to the CTE, the update hash-joined a scan of the whole table here (500 of
    5,000 rows): a cost per claim that grows with the table."""
    fill(pg_store, 5_000, ALL_PENDING)

    plan = explain(pg_store, "EXPLAIN ", per_user, limit=500)

    assert seq_scans(plan) == [], plan
