"""SQLite: the claim, the ack and the history insert as they run.

`{table}` is the validated outbox table name and `{first_of_user}` the optional per-user
clause below (or nothing); nothing else is substituted.
"""

# SQLite has one writer at a time, so the subquery cannot race another claim; the due
# condition is still repeated on the update, as in the other dialects. INDEXED BY keeps the
# planner off a full scan in rowid order once ANALYZE sees mostly-pending rows. Literal state
# numbers (not parameters) let the planner match the partial indexes. A row (re)queued by
# upstream, not by a scheduled retry, is a new request: attempt 1 with a new key.
CLAIM = """
UPDATE "{table}" SET "ToSend" = 2, "LeaseOwner" = :owner, "LeaseToken" = :token,
    "LeaseUntil" = :lease_until,
    "Attempts" = CASE WHEN "ToSend" = 1 AND ("NextAttemptAt" IS NULL OR "IdempotencyKey" IS NULL)
        THEN 1 ELSE "Attempts" + 1 END,
    "IdempotencyKey" = CASE
        WHEN "ToSend" = 1 AND ("NextAttemptAt" IS NULL OR "IdempotencyKey" IS NULL)
        THEN :key_prefix || CAST("ID" AS VARCHAR(20)) ELSE "IdempotencyKey" END
WHERE "ID" IN (
    SELECT t."ID" FROM "{table}" t INDEXED BY "IX_{table}_Due"
    WHERE t."ToSend" IN (1, 2) AND ((t."ToSend" = 1 AND (t."NextAttemptAt" IS NULL
        OR t."NextAttemptAt" <= :now)) OR (t."ToSend" = 2 AND t."LeaseUntil" <= :now))
    {first_of_user}
    ORDER BY t."ID" LIMIT :limit
) AND "ToSend" IN (1, 2) AND (("ToSend" = 1 AND ("NextAttemptAt" IS NULL
    OR "NextAttemptAt" <= :now)) OR ("ToSend" = 2 AND "LeaseUntil" <= :now))
RETURNING "ID", "UserID", "Message", "MessageType", "ToSend", "Status", "Attempts",
    "NextAttemptAt", "LeaseOwner", "LeaseUntil", "LeaseToken", "IdempotencyKey", "SentAt"
"""

# Only the earliest unfinished row of a user may go: one in flight per user, in ID order.
FIRST_OF_USER = """AND NOT EXISTS (SELECT 1 FROM "{table}" e WHERE e."UserID" = t."UserID"
        AND e."ToSend" IN (1, 2) AND e."ID" < t."ID")"""

# The batch is one JSON array opened with json_each and joined on ID and lease token; the
# token fences the write. The unary + keeps the planner off the lease index, which it would
# otherwise scan first and then read the whole document for each row; by ID, each row is one
# lookup. SQLite resolves RETURNING against the target table only, unqualified.
ACK = """
UPDATE "{table}" SET "ToSend" = s."ToSend", "Status" = s."Status", "Attempts" = s."Attempts",
    "NextAttemptAt" = s."NextAttemptAt", "LeaseOwner" = s."LeaseOwner",
    "LeaseUntil" = s."LeaseUntil", "LeaseToken" = s."LeaseToken",
    "IdempotencyKey" = s."IdempotencyKey", "SentAt" = s."SentAt"
FROM (
    SELECT json_extract(value, '$.ID') AS "ID", json_extract(value, '$.ToSend') AS "ToSend",
        json_extract(value, '$.Status') AS "Status",
        json_extract(value, '$.Attempts') AS "Attempts",
        json_extract(value, '$.NextAttemptAt') AS "NextAttemptAt",
        json_extract(value, '$.LeaseOwner') AS "LeaseOwner",
        json_extract(value, '$.LeaseUntil') AS "LeaseUntil",
        json_extract(value, '$.LeaseToken') AS "LeaseToken",
        json_extract(value, '$.IdempotencyKey') AS "IdempotencyKey",
        json_extract(value, '$.SentAt') AS "SentAt"
    FROM json_each(:batch)
) AS s
WHERE "{table}"."ID" = s."ID" AND +"{table}"."LeaseToken" = :token AND "{table}"."ToSend" = 2
RETURNING "ID"
"""

HISTORY = """
INSERT INTO "{table}Attempts" ("MessageID", "Attempt", "IdempotencyKey", "StartedAt",
    "DurationMs", "HttpStatus", "Error", "Excerpt")
SELECT s."MessageID", s."Attempt", s."IdempotencyKey", s."StartedAt", s."DurationMs",
    s."HttpStatus", s."Error", s."Excerpt"
FROM (
    SELECT json_extract(value, '$.MessageID') AS "MessageID",
        json_extract(value, '$.Attempt') AS "Attempt",
        json_extract(value, '$.IdempotencyKey') AS "IdempotencyKey",
        json_extract(value, '$.StartedAt') AS "StartedAt",
        json_extract(value, '$.DurationMs') AS "DurationMs",
        json_extract(value, '$.HttpStatus') AS "HttpStatus",
        json_extract(value, '$.Error') AS "Error", json_extract(value, '$.Excerpt') AS "Excerpt"
    FROM json_each(:batch)
) AS s
"""
