"""In-memory twins of the ports, held to the same contract tests as the real adapters.

Ship-quality: users can build a `Dispatcher` on these in their own tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

import attrs

from adapters.clock import SystemClock
from application.ports import AckResult, Attempt, Clock, NewMessage, Overview
from domain.breaker import TargetHealth
from domain.delivery import DeliveryRequest, DeliveryResult
from domain.model import Message, State
from domain.status import ASKED_TO_WAIT, WAITING


class InMemoryOutboxStore:
    """The outbox table as a dict, with the claim and fencing rules of the SQL stores.

    `clock` stamps when each row was enqueued, as the SQL stores' `CreatedAt` does.
    """

    def __init__(self, history_limit: int = 10_000, clock: Clock | None = None) -> None:
        self._rows: dict[int, Message] = {}
        self._enqueued_at: dict[int, datetime] = {}
        self._clock = clock or SystemClock()
        self._targets: dict[str, TargetHealth] = {}
        self._attempts: list[Attempt] = []
        self._history_limit = history_limit
        self._next_id = 1
        self._lock = threading.Lock()

    def claim(
        self,
        *,
        owner: str,
        token: str,
        limit: int,
        now: datetime,
        lease_until: datetime,
        per_user: bool = False,
    ) -> list[Message]:
        with self._lock:
            due = [m for m in self._in_id_order() if m.is_due(now)]
            if per_user:
                due = [m for m in due if self._first_unfinished_of_user(m)]
            claimed = [
                m.claim(owner=owner, token=token, now=now, lease_until=lease_until)
                for m in due[:limit]
            ]
            self._rows.update((m.id, m) for m in claimed)
            return claimed

    def ack(
        self, token: str, messages: Sequence[Message], attempts: Sequence[Attempt]
    ) -> AckResult:
        with self._lock:
            refused = tuple(m.id for m in messages if not self._held_by(m.id, token))
            written = [m for m in messages if m.id not in refused]
            self._rows.update((m.id, m) for m in written)
            self._record(a for a in attempts if a.message_id not in refused)
            return AckResult(written=len(written), refused_ids=refused)

    def defer(
        self, token: str, ids: Sequence[int], until: datetime, line: str | None = None
    ) -> AckResult:
        with self._lock:
            refused = tuple(i for i in ids if not self._held_by(i, token))
            deferred = [self._rows[i].defer(until, line) for i in ids if i not in refused]
            self._rows.update((m.id, m) for m in deferred)
            return AckResult(written=len(deferred), refused_ids=refused)

    def resume(
        self,
        now: datetime,
        *,
        types: Sequence[str] | None,
        excluding: Sequence[str] = (),
        held_back_only: bool = False,
    ) -> int:
        with self._lock:
            waiting = [
                m
                for m in self._rows.values()
                if m.state is State.PENDING
                and m.next_attempt_at is not None
                and m.next_attempt_at > now
                and (not held_back_only or (m.status or "").startswith(WAITING))
                and ASKED_TO_WAIT not in (m.status or "")
                and (
                    m.message_type in types
                    if types is not None
                    else m.message_type not in excluding
                )
            ]
            self._rows.update((m.id, attrs.evolve(m, next_attempt_at=now)) for m in waiting)
            return len(waiting)

    def report_target(self, health: TargetHealth) -> None:
        with self._lock:
            self._targets[health.target] = attrs.evolve(health, in_flight=0, limit=0)

    def target_health(self) -> list[TargetHealth]:
        return [self._targets[key] for key in sorted(self._targets)]

    def renew(self, token: str, lease_until: datetime) -> int:
        with self._lock:
            held = [m for m in self._rows.values() if m.lease_token == token]
            self._rows.update((m.id, attrs.evolve(m, lease_until=lease_until)) for m in held)
            return len(held)

    def close(self) -> None:
        pass

    def enqueue(self, messages: Sequence[NewMessage]) -> list[int]:
        with self._lock:
            return [self._insert(new) for new in messages]

    def insert(self, message: Message) -> None:
        """Put a row exactly as given, as an upstream system or a test would."""
        with self._lock:
            self._rows[message.id] = message
            self._enqueued_at.setdefault(message.id, self._clock.now())
            self._next_id = max(self._next_id, message.id + 1)

    def get(self, message_id: int) -> Message | None:
        return self._rows.get(message_id)

    def all(self) -> list[Message]:
        return list(self._in_id_order())

    def history_of(self, message_id: int) -> list[Attempt]:
        return [a for a in self._attempts if a.message_id == message_id]

    def history(self) -> list[Attempt]:
        """Every recorded attempt, oldest first."""
        return list(self._attempts)

    def prune_history(self, older_than: datetime) -> int:
        with self._lock:
            kept = [a for a in self._attempts if a.started_at >= older_than]
            pruned = len(self._attempts) - len(kept)
            self._attempts = kept
            return pruned

    def overview(self, now: datetime, dead_limit: int = 10) -> Overview:
        rows = self.all()
        counts = {state.value: sum(m.state is state for m in rows) for state in State}
        leases: dict[str, int] = {}
        for m in rows:
            if m.state is State.IN_FLIGHT and m.lease_owner is not None:
                leases[m.lease_owner] = leases.get(m.lease_owner, 0) + 1
        dead = tuple(m for m in reversed(rows) if m.state is State.DEAD)[:dead_limit]
        return Overview(
            counts=counts,
            oldest_pending_age_seconds=self.oldest_due_age(now),
            leases=leases,
            recent_dead=dead,
        )

    def oldest_due_age(self, now: datetime) -> float | None:
        due_since = [
            m.next_attempt_at or self._enqueued_at[m.id]
            for m in self._rows.values()
            if m.is_due(now)
        ]
        return (now - min(due_since)).total_seconds() if due_since else None

    def unfinished(self) -> int:
        return sum(m.state in (State.PENDING, State.IN_FLIGHT) for m in self._rows.values())

    def due(self, now: datetime) -> int:
        return sum(m.is_due(now) for m in self._rows.values())

    def requeue_dead(self, ids: Sequence[int] | None) -> int:
        with self._lock:
            chosen = (
                self._rows.values()
                if ids is None
                else [self._rows[i] for i in ids if i in self._rows]
            )
            requeued = [m.requeue() for m in chosen if m.state is State.DEAD]
            self._rows.update((m.id, m) for m in requeued)
            return len(requeued)

    def _insert(self, new: NewMessage) -> int:
        message_id = self._next_id
        self._next_id += 1
        self._enqueued_at[message_id] = self._clock.now()
        self._rows[message_id] = Message(
            id=message_id,
            user_id=new.user_id,
            body=new.body,
            message_type=new.message_type,
            state=State.PENDING,
        )
        return message_id

    def _in_id_order(self) -> list[Message]:
        return [self._rows[i] for i in sorted(self._rows)]

    def _held_by(self, message_id: int, token: str) -> bool:
        current = self._rows.get(message_id)
        return (
            current is not None
            and current.state is State.IN_FLIGHT
            and current.lease_token == token
        )

    def _first_unfinished_of_user(self, message: Message) -> bool:
        unfinished = (State.PENDING, State.IN_FLIGHT)
        return not any(
            m.user_id == message.user_id and m.state in unfinished and m.id < message.id
            for m in self._rows.values()
            if message.user_id is not None
        )

    def _record(self, attempts: Iterable[Attempt]) -> None:
        self._attempts.extend(attempts)
        overflow = len(self._attempts) - self._history_limit
        if overflow > 0:
            del self._attempts[:overflow]


Responder = Callable[[DeliveryRequest], DeliveryResult]


def always_ok(request: DeliveryRequest) -> DeliveryResult:
    return DeliveryResult(status_code=200, latency_ms=1.0)


class RecordingMessageSender:
    """A sender that records every request and answers with `responder` (200 by default)."""

    def __init__(self, responder: Responder = always_ok) -> None:
        self.requests: list[DeliveryRequest] = []
        self._responder = responder

    async def send(self, request: DeliveryRequest) -> DeliveryResult:
        self.requests.append(request)
        return self._responder(request)

    async def aclose(self) -> None:
        """Nothing to close."""
