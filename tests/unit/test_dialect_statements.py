"""Only a plain identifier is put into the dialects' SQL, and only where the SQL says."""

from __future__ import annotations

import re
import string
from types import ModuleType

import pytest

from adapters.sql.dialects import mssql, postgresql, sqlite
from adapters.sql.statements import sql_of

BLOCKS = ("CLAIM", "ACK", "HISTORY")


@pytest.mark.parametrize("table", ['x"; DROP TABLE y; --', "a]b", "9lives", "", "a b", "x" * 121])
def test_a_table_name_that_is_not_a_plain_identifier_is_refused(table: str) -> None:
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        sql_of("postgresql", table, "CLAIM")


def test_an_unknown_dialect_is_refused() -> None:
    with pytest.raises(ValueError, match="no SQL for dialect 'oracle'"):
        sql_of("oracle", "Messages", "CLAIM")


@pytest.mark.parametrize("module", [sqlite, postgresql, mssql], ids=lambda m: m.__name__)
def test_the_table_name_and_the_per_user_clause_are_the_only_substitutions(
    module: ModuleType,
) -> None:
    for block in (*BLOCKS, "FIRST_OF_USER"):
        fields = {f for _, f, _, _ in string.Formatter().parse(getattr(module, block)) if f}
        allowed = {"table", "first_of_user"} if block == "CLAIM" else {"table"}
        assert fields == allowed, block


@pytest.mark.parametrize("module", [sqlite, postgresql, mssql], ids=lambda m: m.__name__)
def test_the_per_user_claim_adds_the_first_of_user_clause_and_nothing_else(
    module: ModuleType,
) -> None:
    dialect = module.__name__.rsplit(".", 1)[1]
    plain = sql_of(dialect, "Messages", "CLAIM")
    per_user = sql_of(dialect, "Messages", "CLAIM", per_user=True)

    clause = module.FIRST_OF_USER.format(table="Messages")
    assert "NOT EXISTS" not in plain and clause in per_user
    assert per_user.replace(clause, "") == plain


def due_conditions(sql: str) -> list[str]:
    """Each due condition in `sql`, whitespace folded and table aliases taken out."""
    folded = " ".join(sql.split())
    found = re.findall(r"\S*ToSend\S* IN \(1, 2\) AND \(\(.*?LeaseUntil\S* <= :now\)\)", folded)
    return [re.sub(r'(\bt\.|\bm\.|"\{table\}"\.|\[\{table\}\]\.)', "", due) for due in found]


@pytest.mark.parametrize("module", [sqlite, postgresql, mssql], ids=lambda m: m.__name__)
def test_the_claim_picks_and_fences_with_one_and_the_same_due_condition(
    module: ModuleType,
) -> None:
    picked, fenced = due_conditions(module.CLAIM)

    assert picked == fenced
    assert 'NextAttemptAt" IS NULL OR' in picked or "[NextAttemptAt] IS NULL OR" in picked
