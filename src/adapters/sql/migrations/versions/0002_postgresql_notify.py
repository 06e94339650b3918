"""PostgreSQL only: NOTIFY when rows become due, so idle workers wake within milliseconds.

Statement-level triggers with transition tables: one notification per statement, and only
when the statement left a row due now (not for the dispatcher's own acks of sent rows).
"""

from alembic import context, op
from sqlalchemy import text

revision = "0002"
down_revision = "0001"


def channel(table: str) -> str:
    return f"outbox_{table.lower()}"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    table = context.config.attributes["table"]
    quote = op.get_bind().dialect.identifier_preparer.quote
    function = quote(f"{channel(table)}_notify")
    op.execute(text(_FUNCTION.format(function=function, channel=channel(table))))
    for event in ("INSERT", "UPDATE"):
        trigger = quote(f"{channel(table)}_{event.lower()}_notify")
        op.execute(text(f"DROP TRIGGER IF EXISTS {trigger} ON {quote(table)}"))
        op.execute(
            text(
                _TRIGGER.format(trigger=trigger, event=event, table=quote(table), function=function)
            )
        )


_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM due_rows WHERE "ToSend" = 1
               AND ("NextAttemptAt" IS NULL OR "NextAttemptAt" <= timezone('utc', now()))) THEN
        PERFORM pg_notify('{channel}', '');
    END IF;
    RETURN NULL;
END $$
"""

_TRIGGER = """
CREATE TRIGGER {trigger} AFTER {event} ON {table}
REFERENCING NEW TABLE AS due_rows FOR EACH STATEMENT EXECUTE FUNCTION {function}()
"""
