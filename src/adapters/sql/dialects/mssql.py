"""SQL Server (and Babelfish): the claim, the ack and the history insert as they run.

`{table}` is the validated outbox table name and `{first_of_user}` the optional per-user
clause below (or nothing); nothing else is substituted. Column names are case-insensitive
here; they are bracketed like the rest of what SQLAlchemy issues.
"""

# READPAST skips rows other claimers hold, UPDLOCK keeps ours until commit, ROWLOCK avoids
# page locks; the update repeats the due condition, so a row is never claimed twice even where
# a hint is ignored. The ids come from a derived table joined to the target, which is named
# rather than aliased: Babelfish turns `UPDATE m … FROM t m JOIN (…) c` into a plan that
# reruns the derived table for every row of the table (and a CTE with OUTPUT INTO overflows
# its stack; UPDATE through a CTE and MERGE are unsupported there); this form is plain T-SQL
# as well. OUTPUT goes INTO a table variable, with a column list: a bare OUTPUT clause fails
# (error 334) on a table with enabled triggers, which adopted legacy tables often have. Wide
# types: the table may be adopted with wider columns than ours. NOCOUNT goes back OFF at the
# end because Babelfish keeps it for the session, and later updates would report 0 rows.
# Literal state numbers (not parameters) let the planner match the filtered indexes. A row
# (re)queued by upstream, not by a scheduled retry, is a new request: attempt 1, a new key.
CLAIM = """
SET NOCOUNT ON;
DECLARE @claimed TABLE ([ID] BIGINT, [UserID] BIGINT, [Message] NVARCHAR(MAX),
    [MessageType] NVARCHAR(400), [ToSend] SMALLINT, [Status] NVARCHAR(MAX), [Attempts] INT,
    [NextAttemptAt] DATETIME2, [LeaseOwner] NVARCHAR(400), [LeaseUntil] DATETIME2,
    [LeaseToken] VARCHAR(80), [IdempotencyKey] VARCHAR(200), [SentAt] DATETIME2);
UPDATE [{table}] SET [ToSend] = 2, [LeaseOwner] = :owner, [LeaseToken] = :token,
    [LeaseUntil] = :lease_until,
    [Attempts] = CASE WHEN [{table}].[ToSend] = 1 AND ([{table}].[NextAttemptAt] IS NULL
        OR [{table}].[IdempotencyKey] IS NULL) THEN 1 ELSE [{table}].[Attempts] + 1 END,
    [IdempotencyKey] = CASE WHEN [{table}].[ToSend] = 1 AND ([{table}].[NextAttemptAt] IS NULL
        OR [{table}].[IdempotencyKey] IS NULL)
        THEN :key_prefix + CAST([{table}].[ID] AS VARCHAR(20))
        ELSE [{table}].[IdempotencyKey] END
OUTPUT inserted.[ID], inserted.[UserID], inserted.[Message], inserted.[MessageType],
    inserted.[ToSend], inserted.[Status], inserted.[Attempts], inserted.[NextAttemptAt],
    inserted.[LeaseOwner], inserted.[LeaseUntil], inserted.[LeaseToken],
    inserted.[IdempotencyKey], inserted.[SentAt]
INTO @claimed ([ID], [UserID], [Message], [MessageType], [ToSend], [Status], [Attempts],
    [NextAttemptAt], [LeaseOwner], [LeaseUntil], [LeaseToken], [IdempotencyKey], [SentAt])
FROM (
    SELECT TOP (:limit) t.[ID] FROM [{table}] t WITH (ROWLOCK, UPDLOCK, READPAST)
    WHERE t.[ToSend] IN (1, 2) AND ((t.[ToSend] = 1 AND (t.[NextAttemptAt] IS NULL
        OR t.[NextAttemptAt] <= :now)) OR (t.[ToSend] = 2 AND t.[LeaseUntil] <= :now))
    {first_of_user}
    ORDER BY t.[ID]
) c
WHERE [{table}].[ID] = c.[ID] AND [{table}].[ToSend] IN (1, 2)
    AND (([{table}].[ToSend] = 1 AND ([{table}].[NextAttemptAt] IS NULL
        OR [{table}].[NextAttemptAt] <= :now))
    OR ([{table}].[ToSend] = 2 AND [{table}].[LeaseUntil] <= :now));
SELECT [ID], [UserID], [Message], [MessageType], [ToSend], [Status], [Attempts],
    [NextAttemptAt], [LeaseOwner], [LeaseUntil], [LeaseToken], [IdempotencyKey], [SentAt]
FROM @claimed;
SET NOCOUNT OFF;
"""

# Only the earliest unfinished row of a user may go: one in flight per user, in ID order.
FIRST_OF_USER = """AND NOT EXISTS (SELECT 1 FROM [{table}] e WHERE e.[UserID] = t.[UserID]
        AND e.[ToSend] IN (1, 2) AND e.[ID] < t.[ID])"""

# The batch is one JSON array opened with OPENJSON and joined on ID and lease token; the
# token fences the write. The target is named, not aliased and joined in FROM: Babelfish
# loses the source's alias in that form once there is an OUTPUT clause. Explicit JSON paths:
# Babelfish looks the implicit ones up in lower case. The written ids come back through a
# table variable (a bare OUTPUT fails on tables with triggers); NOCOUNT back OFF as above.
ACK = """
SET NOCOUNT ON;
DECLARE @written TABLE ([ID] BIGINT);
UPDATE [{table}] SET [ToSend] = s.[ToSend], [Status] = s.[Status], [Attempts] = s.[Attempts],
    [NextAttemptAt] = s.[NextAttemptAt], [LeaseOwner] = s.[LeaseOwner],
    [LeaseUntil] = s.[LeaseUntil], [LeaseToken] = s.[LeaseToken],
    [IdempotencyKey] = s.[IdempotencyKey], [SentAt] = s.[SentAt]
OUTPUT inserted.[ID] INTO @written ([ID])
FROM OPENJSON(:batch) WITH ([ID] BIGINT '$.ID', [ToSend] SMALLINT '$.ToSend',
    [Status] NVARCHAR(MAX) '$.Status', [Attempts] BIGINT '$.Attempts',
    [NextAttemptAt] DATETIME2 '$.NextAttemptAt', [LeaseOwner] NVARCHAR(MAX) '$.LeaseOwner',
    [LeaseUntil] DATETIME2 '$.LeaseUntil', [LeaseToken] NVARCHAR(MAX) '$.LeaseToken',
    [IdempotencyKey] NVARCHAR(MAX) '$.IdempotencyKey', [SentAt] DATETIME2 '$.SentAt') AS s
WHERE [{table}].[ID] = s.[ID] AND [{table}].[LeaseToken] = :token AND [{table}].[ToSend] = 2;
SELECT [ID] FROM @written;
SET NOCOUNT OFF;
"""

HISTORY = """
INSERT INTO [{table}Attempts] ([MessageID], [Attempt], [IdempotencyKey], [StartedAt],
    [DurationMs], [HttpStatus], [Error], [Excerpt])
SELECT s.[MessageID], s.[Attempt], s.[IdempotencyKey], s.[StartedAt], s.[DurationMs],
    s.[HttpStatus], s.[Error], s.[Excerpt]
FROM OPENJSON(:batch) WITH ([MessageID] BIGINT '$.MessageID', [Attempt] BIGINT '$.Attempt',
    [IdempotencyKey] NVARCHAR(MAX) '$.IdempotencyKey', [StartedAt] DATETIME2 '$.StartedAt',
    [DurationMs] BIGINT '$.DurationMs', [HttpStatus] SMALLINT '$.HttpStatus',
    [Error] NVARCHAR(MAX) '$.Error', [Excerpt] NVARCHAR(MAX) '$.Excerpt') AS s
"""
