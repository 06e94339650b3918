"""The dispatch service: claim a batch under a lease, build and validate, send, ack."""

from __future__ import annotations

import base64
import enum
import random
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from application.ports import Attempt, Clock, MessageSender, OutboxStore
from domain.breaker import TargetHealth
from domain.delivery import DeliveryRequest, DeliveryResult, Verdict, classify
from domain.errors import InvalidMessage, one_line
from domain.message_type import MessageTypes
from domain.model import Message, State
from domain.retry import Backoff


class Outcome(enum.Enum):
    """How one dispatch step settled a message; `Summary` counts each outcome."""

    SENT = "sent"
    RETRIED = "retried"
    DEAD = "dead"
    INVALID = "invalid"
    RELEASED = "released"
    DEFERRED = "deferred"


@attrs.frozen(kw_only=True)
class DispatchSettings:
    owner: str
    batch_size: int = 100
    lease_seconds: float = 30.0
    concurrency: int = 64
    per_user: bool = False


@attrs.frozen(kw_only=True)
class TargetUrls:
    """Where each message type is POSTed: its own URL if configured, else the default."""

    default: str
    by_type: Mapping[str, str] = attrs.field(factory=dict)

    def url_for(self, message_type: str) -> str:
        return self.by_type.get(message_type, self.default)


@attrs.frozen(kw_only=True)
class Claim:
    token: str
    messages: tuple[Message, ...]


@attrs.frozen(kw_only=True)
class Settled:
    message: Message
    outcome: Outcome
    attempt: Attempt | None = None


@attrs.define
class Summary:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    invalid: int = 0
    released: int = 0
    deferred: int = 0
    refused: int = 0

    def count(self, settled: Iterable[Settled]) -> None:
        for item in settled:
            name = item.outcome.value
            setattr(self, name, getattr(self, name) + 1)


class Dispatcher:
    """Applies claim → send → ack; every decision about a message is the domain's."""

    def __init__(
        self,
        *,
        store: OutboxStore,
        sender: MessageSender,
        clock: Clock,
        types: MessageTypes,
        targets: TargetUrls,
        policy: Backoff,
        rng: random.Random,
        settings: DispatchSettings,
    ) -> None:
        self.store = store
        self.sender = sender
        self.clock = clock
        self.types = types
        self.targets = targets
        self.policy = policy
        self.settings = settings
        self._rng = rng

    def new_token(self) -> str:
        raw = self._rng.getrandbits(130).to_bytes(17, "big")
        return base64.b32encode(raw).decode("ascii")[:26].lower()

    def lease_until(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.settings.lease_seconds)

    def claim(self, limit: int) -> Claim:
        token = self.new_token()
        now = self.clock.now()
        messages = self.store.claim(
            owner=self.settings.owner,
            token=token,
            limit=limit,
            now=now,
            lease_until=self.lease_until(now),
            per_user=self.settings.per_user,
        )
        return Claim(token=token, messages=tuple(messages))  # the port returns them in ID order

    def prepare(self, message: Message) -> DeliveryRequest | Settled:
        """The request to send, or the message already settled (invalid, or given up)."""
        if message.attempts > self.policy.max_attempts:
            reason = f"gave up after {message.attempts - 1} attempts whose leases expired"
            return Settled(message=message.give_up(reason), outcome=Outcome.DEAD)
        try:
            body = self.types.payload(message)
        except InvalidMessage as error:
            return Settled(message=message.reject(error.reason), outcome=Outcome.INVALID)
        except Exception as error:  # a bug in a message type marks its row, not the batch
            reason = f"message type {message.message_type!r} failed: {one_line(error)}"
            return Settled(message=message.reject(reason), outcome=Outcome.INVALID)
        assert message.idempotency_key is not None
        return DeliveryRequest(
            message_id=message.id,
            url=self.targets.url_for(message.message_type),
            body=body,
            idempotency_key=message.idempotency_key,
            attempt=message.attempts,
        )

    def settle(self, message: Message, result: DeliveryResult, started_at: datetime) -> Settled:
        now = self.clock.now()
        assert message.idempotency_key is not None
        attempt = Attempt(
            message_id=message.id,
            attempt=message.attempts,
            idempotency_key=message.idempotency_key,
            started_at=started_at,
            result=result,
        )
        if classify(result) is Verdict.SENT:
            return Settled(
                message=message.mark_sent(result, now), outcome=Outcome.SENT, attempt=attempt
            )
        failed = message.mark_failed(result, self.policy, now, self._rng.random())
        outcome = Outcome.RETRIED if failed.state is State.PENDING else Outcome.DEAD
        return Settled(message=failed, outcome=outcome, attempt=attempt)

    async def transmit(self, message: Message, prepared: DeliveryRequest) -> Settled:
        """Send a prepared request and settle the message on its result."""
        started_at = self.clock.now()
        try:
            result = await self.sender.send(prepared)
        except Exception as error:  # a sender bug is a failed attempt, retried like any other
            result = DeliveryResult(error=one_line(error))
        return self.settle(message, result, started_at)

    def release(self, message: Message) -> Settled:
        return Settled(message=message.release(self.clock.now()), outcome=Outcome.RELEASED)

    def ack(self, token: str, settled: Sequence[Settled]) -> list[Settled]:
        """Write outcomes; returns those refused because the lease was lost."""
        attempts = [item.attempt for item in settled if item.attempt is not None]
        result = self.store.ack(token, [item.message for item in settled], attempts)
        refused = set(result.refused_ids)
        return [item for item in settled if item.message.id in refused]

    def defer(self, token: str, settled: Sequence[Settled]) -> list[Settled]:
        """Write rows held back (`Outcome.DEFERRED`); returns those refused for a lost lease.
        One statement per (time, line): rows held back together share both."""
        groups: dict[tuple[datetime | None, str | None], list[Settled]] = {}
        for item in settled:
            groups.setdefault((item.message.next_attempt_at, item.message.status), []).append(item)
        refused: list[Settled] = []
        for (until, line), group in groups.items():
            assert until is not None
            result = self.store.defer(token, [i.message.id for i in group], until, line)
            lost = set(result.refused_ids)
            refused += [item for item in group if item.message.id in lost]
        return refused

    def renew(self, tokens: Iterable[str]) -> tuple[datetime, list[str]]:
        """Extend the lease of each claim; returns the new end and the tokens still holding
        rows (a claim whose rows were all taken over or settled renews nothing)."""
        until = self.lease_until(self.clock.now())
        return until, [token for token in tokens if self.store.renew(token, until)]

    def resume(
        self,
        now: datetime,
        *,
        types: Sequence[str] | None,
        excluding: Sequence[str] = (),
        held_back_only: bool = False,
    ) -> int:
        """Make a recovered target's waiting rows due now; returns how many (see the port)."""
        return self.store.resume(
            now, types=types, excluding=excluding, held_back_only=held_back_only
        )

    def report_target(self, health: TargetHealth) -> None:
        """Record a target's breaker state as this worker saw it, for every process to see."""
        self.store.report_target(attrs.evolve(health, reported_by=self.settings.owner))
