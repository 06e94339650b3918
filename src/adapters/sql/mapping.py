"""Row ↔ entity mapping; the database holds naive UTC datetimes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from domain.model import Message, State


def to_db(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC).replace(tzinfo=None)


def from_db(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.replace(tzinfo=UTC)


def to_message(row: Mapping[str, Any]) -> Message:
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


def lifecycle_values(message: Message) -> dict[str, Any]:
    """The dispatcher's columns as an ack writes them."""
    return {
        "ToSend": int(message.state),
        "Status": message.status,
        "Attempts": message.attempts,
        "NextAttemptAt": to_db(message.next_attempt_at),
        "LeaseOwner": message.lease_owner,
        "LeaseUntil": to_db(message.lease_until),
        "LeaseToken": message.lease_token,
        "IdempotencyKey": message.idempotency_key,
        "SentAt": to_db(message.sent_at),
    }
