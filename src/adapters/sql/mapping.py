"""Row ↔ entity mapping; the database holds naive UTC datetimes."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from application.ports import Attempt
from domain.delivery import DeliveryResult
from domain.model import Message, State


def to_db(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def from_db(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def to_message(row: Mapping[Any, Any]) -> Message:
    return Message(
        id=int(row["ID"]),
        user_id=row["UserID"],
        body=row["Message"],
        message_type=row["MessageType"] or "default",
        state=State(row["ToSend"]),
        attempts=row["Attempts"] or 0,
        next_attempt_at=from_db(row["NextAttemptAt"]),
        lease_owner=row["LeaseOwner"],
        lease_until=from_db(row["LeaseUntil"]),
        lease_token=row["LeaseToken"],
        idempotency_key=row["IdempotencyKey"],
        status=row["Status"],
        sent_at=from_db(row["SentAt"]),
    )


LIFECYCLE_COLUMNS = (
    "ToSend", "Status", "Attempts", "NextAttemptAt", "LeaseOwner",
    "LeaseUntil", "LeaseToken", "IdempotencyKey", "SentAt",
)  # fmt: skip
MESSAGE_COLUMNS = ("ID", "UserID", "Message", "MessageType", *LIFECYCLE_COLUMNS)


def columns_to_message(row: Sequence[Any]) -> Message:
    """`to_message` for a plain row of MESSAGE_COLUMNS in that order (the claim's hot path):
    unpacked by position, with no mapping view built per row."""
    (
        message_id, user_id, body, message_type, to_send, status, attempts,
        next_attempt_at, lease_owner, lease_until, lease_token, idempotency_key, sent_at,
    ) = row  # fmt: skip
    return Message(
        id=int(message_id),
        user_id=user_id,
        body=body,
        message_type=message_type or "default",
        state=to_send,  # the converter makes it a State
        attempts=attempts or 0,
        next_attempt_at=None if next_attempt_at is None else next_attempt_at.replace(tzinfo=UTC),
        lease_owner=lease_owner,
        lease_until=None if lease_until is None else lease_until.replace(tzinfo=UTC),
        lease_token=lease_token,
        idempotency_key=idempotency_key,
        status=status,
        sent_at=None if sent_at is None else sent_at.replace(tzinfo=UTC),
    )


def ack_document(messages: Iterable[Message]) -> str:
    """The ack's batch document: each message's ID and LIFECYCLE_COLUMNS, as the ack writes
    them. Built straight from the messages (building it through a mapping per row was half
    the store's own CPU per acked row)."""
    stamp = stored_text
    return json.dumps(
        [
            {
                "ID": m.id,
                "ToSend": int(m.state),
                "Status": m.status,
                "Attempts": m.attempts,
                "NextAttemptAt": stamp(m.next_attempt_at),
                "LeaseOwner": m.lease_owner,
                "LeaseUntil": stamp(m.lease_until),
                "LeaseToken": m.lease_token,
                "IdempotencyKey": m.idempotency_key,
                "SentAt": stamp(m.sent_at),
            }
            for m in messages
        ]
    )


def history_document(attempts: Iterable[Attempt]) -> str:
    """The attempt history's batch document, one row per attempt."""
    return json.dumps([_history_row(a) for a in attempts])


def _history_row(attempt: Attempt) -> dict[str, Any]:
    result = attempt.result
    return {
        "MessageID": attempt.message_id,
        "Attempt": attempt.attempt,
        "IdempotencyKey": attempt.idempotency_key,
        "StartedAt": stored_text(attempt.started_at),
        "DurationMs": round(result.latency_ms),
        "HttpStatus": result.status_code,
        "Error": result.error[:200] if result.error else None,
        "Excerpt": result.excerpt[:400] or None,
    }


def stored_text(moment: datetime | None) -> str | None:
    """The stored UTC text of an aware moment (SQLAlchemy's SQLite form, which the others
    parse): `2026-03-01 12:00:00.000000`. One C call for the clock's own UTC datetimes; this
    is per row of the ack and history documents, where a memo keyed by datetime cost more
    than it saved (nearly every moment is distinct)."""
    if moment is None:
        return None
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(" ", "microseconds")[:26]


def batch_document(rows: Iterable[dict[str, Any]]) -> str:
    """The rows as the JSON array the ack and history statements open; datetimes in the
    stored text form."""
    # `default` is called only for what JSON has no form for (datetimes), so the C encoder
    # does the rest: a Python call per value was a fifth of the ack's client time.
    return json.dumps(list(rows), default=_moment)


def _moment(value: object) -> str:
    # SQLAlchemy's SQLite DateTime stores this exact text; the others parse it as well.
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S.%f}"
    raise TypeError(f"{type(value).__name__} has no JSON form in a batch document")


def to_attempt(row: Mapping[Any, Any]) -> Attempt:
    status_code = row["HttpStatus"]
    result = DeliveryResult(
        status_code=status_code,
        error=row["Error"] or "unknown" if status_code is None else None,
        latency_ms=float(row["DurationMs"]),
        excerpt=row["Excerpt"] or "",
    )
    return Attempt(
        message_id=int(row["MessageID"]),
        attempt=int(row["Attempt"]),
        idempotency_key=row["IdempotencyKey"],
        started_at=row["StartedAt"].replace(tzinfo=UTC),
        result=result,
    )
