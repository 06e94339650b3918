"""The ports the dispatch service depends on. Adapters implement them; contract tests prove it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import attrs

from domain.breaker import TargetHealth
from domain.delivery import DeliveryRequest, DeliveryResult
from domain.model import Message, State


@attrs.frozen(kw_only=True)
class Attempt:
    """One HTTP attempt, kept in the attempt history for operators."""

    message_id: int
    attempt: int
    idempotency_key: str
    started_at: datetime
    result: DeliveryResult


@attrs.frozen(kw_only=True)
class AckResult:
    written: int
    refused_ids: tuple[int, ...] = ()


@attrs.frozen(kw_only=True)
class NewMessage:
    user_id: int
    body: str
    message_type: str = "default"


@attrs.frozen(kw_only=True)
class Overview:
    """What `outbox status` shows. `counts` has every `ToSend` state, 0 where no row is."""

    counts: dict[int, int]
    oldest_pending_age_seconds: float | None
    leases: dict[str, int]
    recent_dead: tuple[Message, ...]


class OutboxStore(Protocol):
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
        """Lease up to `limit` due rows to `token`, in `ID` order, in one round trip.

        Due: pending with no or a past next-attempt time, or in flight with an expired lease.
        No two callers get the same row while its lease holds. With `per_user`, a row is due
        only when no earlier row of its user is pending or in flight, so each user has at
        most one message out and they go in `ID` order.
        """
        ...

    def ack(
        self, token: str, messages: Sequence[Message], attempts: Sequence[Attempt]
    ) -> AckResult:
        """Write the new state of messages claimed under `token`, and their attempts, atomically.

        Fenced: a row no longer held by `token` (its lease expired and another claim took it,
        or it was re-queued) is left untouched and reported in `refused_ids`.
        """
        ...

    def defer(
        self, token: str, ids: Sequence[int], until: datetime, line: str | None = None
    ) -> AckResult:
        """Hand rows claimed under `token` back as pending, due at `until`, without spending an
        attempt: `Attempts` returns to its value before the claim and the idempotency key stays
        (the same request goes out later). `line`, when given, replaces `Status`. One round
        trip; fenced like `ack` (rows no longer held by `token` are refused, untouched).
        """
        ...

    def resume(
        self,
        now: datetime,
        *,
        types: Sequence[str] | None,
        excluding: Sequence[str] = (),
        held_back_only: bool = False,
    ) -> int:
        """Make pending rows whose next attempt is after `now` due at `now`: rows of `types`, or
        with `types` None of every type not in `excluding`; with `held_back_only`, only rows
        held back by `defer` (Status `waiting: …`). Used when a target recovers, so its
        waiting rows go without waiting out their backoff. Returns how many rows."""
        ...

    def report_target(self, health: TargetHealth) -> None:
        """Record a target's breaker state (one row per target; the latest report wins), so
        every process sees it. Load figures (in flight, limit) are per worker: not kept."""
        ...

    def renew(self, token: str, lease_until: datetime) -> int:
        """Extend the lease of every row still held by `token`; returns how many."""
        ...

    def prune_history(self, older_than: datetime) -> int:
        """Delete attempt history older than `older_than`; returns how many rows went."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class OutboxAdmin(Protocol):
    def enqueue(self, messages: Sequence[NewMessage]) -> list[int]:
        """Insert rows with `ToSend = 1`; returns their ids."""
        ...

    def overview(self, now: datetime, dead_limit: int = 10) -> Overview:
        """Counts per state, oldest due age, leases per owner, the latest dead rows."""
        ...

    def oldest_due_age(self, now: datetime) -> float | None:
        """Seconds the longest-waiting due row has waited (since its retry time, else since it
        was enqueued); None when nothing is due. Cheap: reads only unfinished rows."""
        ...

    def unfinished(self) -> int:
        """How many rows are pending or in flight, due or not."""
        ...

    def due(self, now: datetime) -> int:
        """How many rows a claim at `now` could take."""
        ...

    def requeue_dead(self, ids: Sequence[int] | None) -> int:
        """Re-queue dead rows (all when `ids` is None) as new requests; returns how many."""
        ...

    def get(self, message_id: int) -> Message | None:
        """One row, as the dispatcher sees it."""
        ...

    def history_of(self, message_id: int) -> list[Attempt]:
        """The recorded HTTP attempts of one row, oldest first."""
        ...

    def target_health(self) -> list[TargetHealth]:
        """Each target's breaker as last reported by any worker, ordered by target."""
        ...


@attrs.frozen(kw_only=True)
class MessageFilter:
    """What the dashboard's message list narrows to; every field optional."""

    state: State | None = None
    message_type: str | None = None
    user_id: int | None = None
    min_id: int | None = None
    max_id: int | None = None
    status_text: str | None = None


@attrs.frozen(kw_only=True)
class MessagePage:
    """One page of the message list, newest first, with keyset cursors to its neighbours."""

    messages: tuple[Message, ...]
    newer_than: int | None  # pass as `after` for the newer page; None on the first page
    older_than: int | None  # pass as `before` for the older page; None on the last page


@attrs.frozen(kw_only=True)
class MinuteActivity:
    """Attempts that started in one minute: sent (2xx), retried, dead (the last attempt of a
    row that is dead now)."""

    start: datetime
    sent: int = 0
    retried: int = 0
    dead: int = 0


@attrs.frozen(kw_only=True)
class Latency:
    """Attempt durations over a window, in milliseconds; None when there were none."""

    count: int
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None


@attrs.frozen(kw_only=True)
class QueueFigures:
    """The dashboard overview: counts per `ToSend` state, oldest due age, the last hour."""

    counts: dict[int, int]
    oldest_due_age_seconds: float | None
    activity: tuple[MinuteActivity, ...]
    sent_is_estimate: bool = False  # a very big table's sent count comes from the planner
    latency: Latency


@attrs.frozen(kw_only=True)
class TypeHealth:
    """How one message type's deliveries did in the last hour, from the attempt history.
    (The breakers' own state per target is `OutboxAdmin.target_health`.)"""

    message_type: str
    failed_last_hour: int = 0
    last_failure_at: datetime | None = None
    last_error: str | None = None


class OutboxBrowser(Protocol):
    """The read side of the operator dashboard. Every query reads through an index; lists
    page by keyset (`ID`), never by OFFSET."""

    def figures(self, now: datetime) -> QueueFigures:
        """Counts per state, oldest due age, per-minute activity and latency of the last hour."""
        ...

    def type_health(self, now: datetime) -> list[TypeHealth]:
        """One record per message type that failed in the last hour, with its last error."""
        ...

    def messages(
        self,
        where: MessageFilter,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> MessagePage:
        """Rows matching `where`, newest first: the `limit` rows below `before` (or the first
        page), or with `after` the `limit` rows just above it."""
        ...

    def count_dead(self, where: MessageFilter) -> int:
        """How many dead rows match `where` (what a bulk retry would touch)."""
        ...

    def requeue_dead(self, where: MessageFilter) -> int:
        """Re-queue every dead row matching `where`, as `outbox retry` does; returns how many."""
        ...


class MessageSender(Protocol):
    async def send(self, request: DeliveryRequest) -> DeliveryResult:
        """POST one request; never raises for an HTTP or network failure, returns it instead."""
        ...

    async def aclose(self) -> None:
        """Close pooled connections."""
        ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...
