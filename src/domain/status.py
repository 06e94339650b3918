"""The one-line Status written on each row: state word first, at most 400 characters."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from domain.delivery import DeliveryResult

MAX_LENGTH = 400
WAITING = "waiting: "
ASKED_TO_WAIT = "(Retry-After "
KEPT_TO_PROBE = ", kept to probe the target"
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def flatten(text: str, limit: int) -> str:
    """`text` as one printable line of at most `limit` characters; "…" marks a cut."""
    flat = _UNPRINTABLE.sub(" ", text).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def bounded(line: str) -> str:
    return flatten(line, MAX_LENGTH)


def sent(result: DeliveryResult, attempt: int, key: str) -> str:
    return bounded(f"sent: {result.describe()}, attempt {attempt}, key {key}")


def retrying(result: DeliveryResult, attempt: int, max_attempts: int, when: datetime) -> str:
    asked = (
        ""
        if result.retry_after_seconds is None
        else f" {ASKED_TO_WAIT}{result.retry_after_seconds:g} s)"
    )
    return bounded(
        f"retrying: {result.describe()}{asked}, attempt {attempt} of {max_attempts}, "
        f"next at {_stamp(when)}" + _excerpt(result)
    )


def dead(result: DeliveryResult, attempt: int, max_attempts: int) -> str:
    gone = ", the receiver asked to stop sending (410 Gone)" if result.status_code == 410 else ""
    return bounded(
        f"dead: {result.describe()}{gone}, attempt {attempt} of {max_attempts}" + _excerpt(result)
    )


def waiting(target: str, reason: str, when: datetime) -> str:
    """A row held back, without spending an attempt, while its target is unavailable."""
    return bounded(f"{WAITING}{target} {reason}, next at {_stamp(when)}")


def kept_to_probe(line: str | None) -> bool:
    """Was this row held back to probe its target (so its success says the target is back)?"""
    return line is not None and line.startswith(WAITING) and KEPT_TO_PROBE in line


def gave_up(reason: str) -> str:
    return bounded(f"dead: {reason}")


def invalid(reason: str) -> str:
    return bounded(f"invalid: {reason}")


def requeued() -> str:
    return "requeued: by outbox retry"


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _excerpt(result: DeliveryResult) -> str:
    return f", response: {result.excerpt}" if result.excerpt else ""
