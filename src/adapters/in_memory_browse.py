"""`InMemoryOutboxBrowser`: the dashboard's read side over `InMemoryOutboxStore`."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from adapters.in_memory import InMemoryOutboxStore
from application import figures
from application.ports import (
    Attempt,
    MessageFilter,
    MessagePage,
    QueueFigures,
    TypeHealth,
)
from domain.delivery import Verdict, classify
from domain.model import Message, State


def matches(message: Message, where: MessageFilter) -> bool:
    checks = (
        where.state is None or message.state is where.state,
        where.message_type is None or message.message_type == where.message_type,
        where.user_id is None or message.user_id == where.user_id,
        where.min_id is None or message.id >= where.min_id,
        where.max_id is None or message.id <= where.max_id,
        not where.status_text or where.status_text.lower() in (message.status or "").lower(),
    )
    return all(checks)


def outcome(attempt: Attempt, message: Message | None) -> str:
    if classify(attempt.result) is Verdict.SENT:
        return "sent"
    last = message is not None and message.attempts == attempt.attempt
    return "dead" if last and message is not None and message.state is State.DEAD else "retried"


class InMemoryOutboxBrowser:
    def __init__(self, store: InMemoryOutboxStore) -> None:
        self.store = store

    def figures(self, now: datetime) -> QueueFigures:
        rows = self.store.all()
        start = figures.window_start(now)
        recent = self._recent(start)
        outcomes = Counter(
            (
                a.started_at.replace(second=0, microsecond=0),
                outcome(a, self.store.get(a.message_id)),
            )
            for a in recent
        )
        return QueueFigures(
            counts={s.value: sum(m.state is s for m in rows) for s in State},
            oldest_due_age_seconds=self.store.oldest_due_age(now),
            activity=figures.activity(start, ((m, o, n) for (m, o), n in outcomes.items())),
            latency=figures.latency(Counter(round(a.result.latency_ms) for a in recent)),
        )

    def type_health(self, now: datetime) -> list[TypeHealth]:
        by_type: dict[str, list[Attempt]] = {}
        for attempt in self._recent(figures.window_start(now)):
            if classify(attempt.result) is Verdict.SENT:
                continue
            message = self.store.get(attempt.message_id)
            kind = message.message_type if message is not None else "?"
            by_type.setdefault(kind, []).append(attempt)
        return [_health(kind, attempts) for kind, attempts in sorted(by_type.items())]

    def messages(
        self,
        where: MessageFilter,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> MessagePage:
        rows = [m for m in self.store.all() if matches(m, where)]
        if after is not None:
            chosen = [m for m in rows if m.id > after][:limit][::-1]
        else:
            chosen = [m for m in rows if before is None or m.id < before][::-1][:limit]
        return page(chosen, rows)

    def count_dead(self, where: MessageFilter) -> int:
        return len(self._dead_ids(where))

    def requeue_dead(self, where: MessageFilter) -> int:
        return self.store.requeue_dead(self._dead_ids(where))

    def _dead_ids(self, where: MessageFilter) -> list[int]:
        return [m.id for m in self.store.all() if m.state is State.DEAD and matches(m, where)]

    def _recent(self, start: datetime) -> list[Attempt]:
        return [a for a in self.store.history() if a.started_at >= start]


def page(chosen: list[Message], rows: list[Message]) -> MessagePage:
    if not chosen:
        return MessagePage(messages=(), newer_than=None, older_than=None)
    top, bottom = chosen[0].id, chosen[-1].id
    return MessagePage(
        messages=tuple(chosen),
        newer_than=top if any(m.id > top for m in rows) else None,
        older_than=bottom if any(m.id < bottom for m in rows) else None,
    )


def _health(kind: str, failed: list[Attempt]) -> TypeHealth:
    last = max(failed, key=lambda a: a.started_at) if failed else None
    return TypeHealth(
        message_type=kind,
        failed_last_hour=len(failed),
        last_failure_at=last.started_at if last else None,
        last_error=_error(last) if last else None,
    )


def _error(attempt: Attempt) -> str:
    code = attempt.result.status_code
    return f"HTTP {code}" if code is not None else str(attempt.result.error)
