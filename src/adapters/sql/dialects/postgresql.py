"""PostgreSQL: the claim, the ack and the history insert as they run.

`{table}` is the validated outbox table name and `{first_of_user}` the optional per-user
clause below (or nothing); nothing else is substituted. Column names are quoted: PostgreSQL
folds unquoted names to lower case.
"""

# FOR UPDATE SKIP LOCKED passes over rows another claim holds; the update repeats the due
# condition, so a row taken meanwhile is never claimed twice. Literal state numbers (not
# parameters) let the planner match the partial indexes. The update finds the locked ids by
# primary key (`= ANY(ARRAY(…))`): joined to the CTE instead, the planner hash-joined a scan
# of the whole table while it held under ~50,000 rows (6 µs of server CPU per row at 20,000).
# A row (re)queued by upstream, not by a scheduled retry, is a new request: attempt 1 with
# a new key.
CLAIM = """
WITH due AS (
    SELECT "ID" FROM "{table}" t
    WHERE t."ToSend" IN (1, 2) AND ((t."ToSend" = 1 AND (t."NextAttemptAt" IS NULL
        OR t."NextAttemptAt" <= :now)) OR (t."ToSend" = 2 AND t."LeaseUntil" <= :now))
    {first_of_user}
    ORDER BY "ID" LIMIT :limit FOR UPDATE SKIP LOCKED
)
UPDATE "{table}" m SET "ToSend" = 2, "LeaseOwner" = :owner, "LeaseToken" = :token,
    "LeaseUntil" = :lease_until,
    "Attempts" = CASE
        WHEN m."ToSend" = 1 AND (m."NextAttemptAt" IS NULL OR m."IdempotencyKey" IS NULL)
        THEN 1 ELSE m."Attempts" + 1 END,
    "IdempotencyKey" = CASE
        WHEN m."ToSend" = 1 AND (m."NextAttemptAt" IS NULL OR m."IdempotencyKey" IS NULL)
        THEN :key_prefix || CAST(m."ID" AS VARCHAR(20)) ELSE m."IdempotencyKey" END
WHERE m."ID" = ANY(ARRAY(SELECT "ID" FROM due)) AND m."ToSend" IN (1, 2)
    AND ((m."ToSend" = 1 AND (m."NextAttemptAt" IS NULL OR m."NextAttemptAt" <= :now))
        OR (m."ToSend" = 2 AND m."LeaseUntil" <= :now))
RETURNING m."ID", m."UserID", m."Message", m."MessageType", m."ToSend", m."Status",
    m."Attempts", m."NextAttemptAt", m."LeaseOwner", m."LeaseUntil", m."LeaseToken",
    m."IdempotencyKey", m."SentAt"
"""

# Only the earliest unfinished row of a user may go: one in flight per user, in ID order.
FIRST_OF_USER = """AND NOT EXISTS (SELECT 1 FROM "{table}" e WHERE e."UserID" = t."UserID"
        AND e."ToSend" IN (1, 2) AND e."ID" < t."ID")"""

# The batch is one JSON array opened with jsonb_to_recordset and joined on ID and lease
# token; the token fences the write. RETURNING gives the ids written; the rest lost the lease.
ACK = """
UPDATE "{table}" SET "ToSend" = s."ToSend", "Status" = s."Status", "Attempts" = s."Attempts",
    "NextAttemptAt" = s."NextAttemptAt", "LeaseOwner" = s."LeaseOwner",
    "LeaseUntil" = s."LeaseUntil", "LeaseToken" = s."LeaseToken",
    "IdempotencyKey" = s."IdempotencyKey", "SentAt" = s."SentAt"
FROM jsonb_to_recordset(CAST(:batch AS jsonb)) AS s("ID" bigint, "ToSend" smallint,
    "Status" text, "Attempts" bigint, "NextAttemptAt" timestamp, "LeaseOwner" text,
    "LeaseUntil" timestamp, "LeaseToken" text, "IdempotencyKey" text, "SentAt" timestamp)
WHERE "{table}"."ID" = s."ID" AND "{table}"."LeaseToken" = :token AND "{table}"."ToSend" = 2
RETURNING "{table}"."ID"
"""

HISTORY = """
INSERT INTO "{table}Attempts" ("MessageID", "Attempt", "IdempotencyKey", "StartedAt",
    "DurationMs", "HttpStatus", "Error", "Excerpt")
SELECT s."MessageID", s."Attempt", s."IdempotencyKey", s."StartedAt", s."DurationMs",
    s."HttpStatus", s."Error", s."Excerpt"
FROM jsonb_to_recordset(CAST(:batch AS jsonb)) AS s("MessageID" bigint, "Attempt" bigint,
    "IdempotencyKey" text, "StartedAt" timestamp, "DurationMs" bigint, "HttpStatus" smallint,
    "Error" text, "Excerpt" text)
"""

# The ack and the history in one statement, so one round trip; what the store runs. The
# history keeps only the attempts of rows the ack wrote: a data-modifying CTE sees
# `written`'s RETURNING rows. Its document is `:history`, the ack's stays `:batch`.
ACK_WITH_HISTORY = (
    f"WITH written AS ({ACK.strip()}),\nhistory AS ("
    + HISTORY.strip().replace(":batch", ":history")
    + '\nWHERE s."MessageID" IN (SELECT "ID" FROM written))\nSELECT "ID" FROM written\n'
)
