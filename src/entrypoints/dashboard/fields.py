"""Values in and out of the pages: the templates' formatting filters, and the list filter
parsed from a query string or a form."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from application.ports import MessageFilter
from domain.model import State as RowState

STATE_NAMES = {0: "sent", 1: "pending", 2: "in flight", 3: "dead"}
FILTER_FIELDS = ("state", "type", "user_id", "min_id", "max_id", "status")


class BadFilter(ValueError):
    pass


def when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"


def age(seconds: float | None) -> str:
    if seconds is None:
        return "nothing due"
    whole = int(seconds)
    if whole < 120:
        return f"{whole} s"
    if whole < 7200:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} ms"


FILTERS: dict[str, Any] = {"when": when, "age": age, "ms": ms, "state_name": STATE_NAMES.get}


def parse_filter(query: Mapping[str, Any]) -> tuple[MessageFilter, dict[str, str]]:
    """The list filter from query or form fields; one clear error for a bad value."""
    raw = {k: str(query[k]).strip() for k in FILTER_FIELDS if str(query.get(k, "")).strip()}
    where = MessageFilter(
        state=_state(raw.get("state")),
        message_type=raw.get("type"),
        user_id=_number(raw, "user_id", "UserID"),
        min_id=_number(raw, "min_id", "ID from"),
        max_id=_number(raw, "max_id", "ID to"),
        status_text=raw.get("status", "")[:200] or None,
    )
    return where, raw


def _state(value: str | None) -> RowState | None:
    if value is None:
        return None
    names = {name.replace(" ", "_"): number for number, name in STATE_NAMES.items()}
    number = names.get(value, int(value) if value in ("0", "1", "2", "3") else None)
    if number is None:
        raise BadFilter(f"state must be one of {', '.join(names)}, got {value[:40]!r}")
    return RowState(number)


def _number(raw: Mapping[str, str], field: str, label: str) -> int | None:
    value = raw.get(field)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 18:
        raise BadFilter(f"{label} must be a whole number, got {value[:40]!r}")
    return int(value)


def cursor(query: Mapping[str, str], name: str) -> int | None:
    return _number({name: query[name]} if query.get(name) else {}, name, name)


def count_of(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() and len(value) < 10 else None
