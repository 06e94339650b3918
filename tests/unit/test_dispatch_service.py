import asyncio
import random
from collections.abc import Mapping
from datetime import timedelta

import attrs
import pytest

from adapters.clock import ManualClock
from adapters.in_memory import InMemoryOutboxStore, RecordingMessageSender, Responder
from application.dispatcher import (
    Dispatcher,
    DispatchSettings,
    Outcome,
    Settled,
    Summary,
    TargetUrls,
)
from application.ports import NewMessage
from domain.breaker import BreakerState, TargetHealth
from domain.delivery import DeliveryRequest, DeliveryResult
from domain.message_type import MessageTypes
from domain.message_types.default import DefaultMessageType
from domain.model import Message, State
from domain.retry import RetryPolicy

LEASE_SECONDS = 30.0
TARGET = "https://hooks.example.com/in"


@attrs.frozen
class ExplodingType:
    name: str = "exploding"

    def validate(self, message: Message) -> None:
        pass

    def build(self, message: Message) -> Mapping[str, object]:
        raise ZeroDivisionError("division by zero")


def answer(code: int) -> Responder:
    return lambda request: DeliveryResult(status_code=code)


def answers(by_id: dict[int, int]) -> Responder:
    return lambda request: DeliveryResult(status_code=by_id.get(request.message_id, 200))


@attrs.define
class World:
    store: InMemoryOutboxStore = attrs.field(factory=InMemoryOutboxStore)
    clock: ManualClock = attrs.field(factory=ManualClock)
    sender: RecordingMessageSender = attrs.field(factory=RecordingMessageSender)
    batch_size: int = 10
    per_user: bool = False
    max_attempts: int = 3

    def dispatcher(self) -> Dispatcher:
        types = MessageTypes([("default", DefaultMessageType()), ("exploding", ExplodingType())])
        return Dispatcher(
            store=self.store,
            sender=self.sender,
            clock=self.clock,
            types=types,
            targets=TargetUrls(default=TARGET),
            policy=RetryPolicy(base_seconds=1.0, max_seconds=60.0, max_attempts=self.max_attempts),
            rng=random.Random(1234),
            settings=DispatchSettings(
                owner="worker-1",
                batch_size=self.batch_size,
                lease_seconds=LEASE_SECONDS,
                per_user=self.per_user,
            ),
        )

    def enqueue(self, *bodies: str, user_id: int = 1, kind: str = "default") -> list[int]:
        return self.store.enqueue(
            [NewMessage(user_id=user_id, body=b, message_type=kind) for b in bodies]
        )

    def dispatch_once(self) -> Summary:
        return asyncio.run(one_batch(self.dispatcher()))

    def row(self, message_id: int) -> Message:
        message = self.store.get(message_id)
        assert message is not None
        return message

    def sent_ids(self) -> list[int]:
        return [r.message_id for r in self.sender.requests]


async def one_batch(dispatcher: Dispatcher) -> Summary:
    """One claim through the steps the pipeline composes: claim, prepare, transmit, ack."""
    claim = dispatcher.claim(dispatcher.settings.batch_size)
    settled = [await send(dispatcher, message) for message in claim.messages]
    refused = dispatcher.ack(claim.token, settled) if settled else []
    summary = Summary(claimed=len(claim.messages), refused=len(refused))
    summary.count(item for item in settled if item not in refused)
    return summary


async def send(dispatcher: Dispatcher, message: Message) -> Settled:
    prepared = dispatcher.prepare(message)
    if isinstance(prepared, Settled):
        return prepared
    return await dispatcher.transmit(message, prepared)


@pytest.fixture
def world() -> World:
    return World()


def test_a_due_message_is_sent_and_marked_sent(world: World) -> None:
    [message_id] = world.enqueue("hello")

    world.dispatch_once()

    assert (world.sent_ids(), world.row(message_id).state) == ([message_id], State.SENT)


def test_the_request_carries_the_target_key_and_body(world: World) -> None:
    [message_id] = world.enqueue("hello")

    world.dispatch_once()

    [request] = world.sender.requests
    key = world.row(message_id).idempotency_key
    assert key is not None
    assert request == DeliveryRequest(
        message_id=message_id,
        url=TARGET,
        body=b'{"id":1,"type":"default","user_id":1,"message":"hello"}',
        idempotency_key=key,
        attempt=1,
    )


def test_a_claim_takes_at_most_one_batch() -> None:
    world = World(batch_size=3)
    world.enqueue(*["m"] * 5)

    summary = world.dispatch_once()

    assert (summary.claimed, world.sent_ids()) == (3, [1, 2, 3])


def test_an_invalid_message_is_marked_invalid_and_never_sent(world: World) -> None:
    [message_id] = world.enqueue("   ")

    world.dispatch_once()

    assert world.sender.requests == []
    assert (world.row(message_id).state, world.row(message_id).status) == (
        State.DEAD,
        "invalid: Message is empty",
    )


def test_a_503_is_scheduled_for_a_retry(world: World) -> None:
    world.sender = RecordingMessageSender(answer(503))
    [message_id] = world.enqueue("hello")

    world.dispatch_once()

    row = world.row(message_id)
    assert (row.state, row.attempts) == (State.PENDING, 1)
    assert row.next_attempt_at is not None and row.next_attempt_at > world.clock.now()


def test_a_400_is_dead_at_once(world: World) -> None:
    world.sender = RecordingMessageSender(answer(400))
    [message_id] = world.enqueue("hello")

    world.dispatch_once()

    assert world.row(message_id).state is State.DEAD


def test_the_summary_counts_each_outcome_of_the_batch(world: World) -> None:
    world.sender = RecordingMessageSender(answers({2: 503, 3: 400}))
    world.enqueue("ok", "retry me", "bad request", "")

    summary = world.dispatch_once()

    assert summary == Summary(claimed=4, sent=1, retried=1, dead=1, invalid=1, refused=0)


def test_nothing_due_is_an_empty_summary(world: World) -> None:
    summary = world.dispatch_once()

    assert summary == Summary()


def test_each_attempt_is_recorded_in_the_history(world: World) -> None:
    world.sender = RecordingMessageSender(answers({2: 503}))
    world.enqueue("ok", "retry me", "")

    world.dispatch_once()

    history = [world.store.history_of(i) for i in (1, 2, 3)]
    assert [[a.result.status_code for a in h] for h in history] == [[200], [503], []]


def lose_the_lease_while_sending(world: World) -> Responder:
    def slow(request: DeliveryRequest) -> DeliveryResult:
        world.clock.advance(LEASE_SECONDS + 1)
        now = world.clock.now()
        world.store.claim(
            owner="worker-2", token="newer", limit=10, now=now, lease_until=now.replace(year=2027)
        )
        return DeliveryResult(status_code=200)

    return slow


def test_a_stale_ack_cannot_overwrite_the_newer_claim(world: World) -> None:
    world.sender = RecordingMessageSender(lose_the_lease_while_sending(world))
    [message_id] = world.enqueue("hello")

    world.dispatch_once()

    row = world.row(message_id)
    assert (row.state, row.lease_token, row.lease_owner) == (State.IN_FLIGHT, "newer", "worker-2")


def test_a_stale_ack_is_counted_as_refused(world: World) -> None:
    world.sender = RecordingMessageSender(lose_the_lease_while_sending(world))
    world.enqueue("hello")

    summary = world.dispatch_once()

    assert summary.refused == 1


def test_a_message_type_that_crashes_marks_its_row_invalid(world: World) -> None:
    [message_id] = world.enqueue("boom", kind="exploding")

    world.dispatch_once()

    row = world.row(message_id)
    assert row.state is State.DEAD
    assert row.status == (
        "invalid: message type 'exploding' failed: ZeroDivisionError: division by zero"
    )


def test_a_message_type_that_crashes_does_not_stop_the_batch(world: World) -> None:
    world.enqueue("before")
    world.enqueue("boom", kind="exploding")
    world.enqueue("after")

    world.dispatch_once()

    assert world.sent_ids() == [1, 3]


def test_a_sender_that_raises_counts_as_a_retryable_failure(world: World) -> None:
    def broken(request: DeliveryRequest) -> DeliveryResult:
        raise RuntimeError("socket exploded")

    world.sender = RecordingMessageSender(broken)
    [message_id] = world.enqueue("hello")

    summary = world.dispatch_once()

    row = world.row(message_id)
    assert (summary.retried, row.state) == (1, State.PENDING)
    assert row.status is not None and "RuntimeError: socket exploded" in row.status


def test_a_message_whose_leases_keep_expiring_is_given_up_as_poison() -> None:
    world = World(max_attempts=3)
    [message_id] = world.enqueue("hello")
    dispatcher = world.dispatcher()
    for _ in range(3):
        dispatcher.claim(10)
        world.clock.advance(LEASE_SECONDS)

    summary = world.dispatch_once()

    row = world.row(message_id)
    assert (summary.dead, row.state, world.sender.requests) == (1, State.DEAD, [])
    assert row.status == "dead: gave up after 3 attempts whose leases expired"


def test_a_message_whose_lease_expired_fewer_than_max_attempts_times_is_sent() -> None:
    world = World(max_attempts=3)
    [message_id] = world.enqueue("hello")
    dispatcher = world.dispatcher()
    for _ in range(2):
        dispatcher.claim(10)
        world.clock.advance(LEASE_SECONDS)

    world.dispatch_once()

    assert (world.row(message_id).state, world.sender.requests[0].attempt) == (State.SENT, 3)


def test_per_user_ordering_sends_one_message_per_user_in_id_order() -> None:
    world = World(per_user=True)
    world.enqueue("a1", "a2", user_id=1)
    world.enqueue("b1", user_id=2)
    world.enqueue("a3", user_id=1)
    rounds: list[list[int]] = []

    for _ in range(3):
        before = len(world.sender.requests)
        world.dispatch_once()
        rounds.append(sorted(world.sent_ids()[before:]))

    assert rounds == [[1, 3], [2], [4]]


def test_per_user_ordering_holds_back_a_user_behind_a_retry() -> None:
    world = World(per_user=True)
    world.sender = RecordingMessageSender(answers({1: 503}))
    world.enqueue("a1", "a2", user_id=1)
    world.dispatch_once()

    summary = world.dispatch_once()

    assert (summary.claimed, world.sent_ids()) == (0, [1])


def test_renewing_extends_the_lease_of_claims_that_still_hold_rows(world: World) -> None:
    world.enqueue("hello")
    dispatcher = world.dispatcher()
    claim = dispatcher.claim(10)
    world.clock.advance(20)

    until, renewed = dispatcher.renew([claim.token, "gone"])

    assert (until, renewed) == (world.clock.now() + timedelta(seconds=LEASE_SECONDS), [claim.token])
    assert world.row(1).lease_until == until


def test_rows_held_back_together_are_deferred_without_spending_an_attempt(world: World) -> None:
    world.enqueue("a", "b")
    dispatcher = world.dispatcher()
    claim = dispatcher.claim(10)
    later = world.clock.now() + timedelta(minutes=5)
    held = [
        Settled(message=m.defer(later, "waiting: down"), outcome=Outcome.DEFERRED)
        for m in claim.messages
    ]

    refused = dispatcher.defer(claim.token, held)

    rows = [world.row(1), world.row(2)]
    assert refused == []
    waiting = [(r.state, r.attempts, r.next_attempt_at) for r in rows]
    assert waiting == [(State.PENDING, 0, later)] * 2


def test_resuming_makes_waiting_rows_due_now(world: World) -> None:
    world.enqueue("a")
    dispatcher = world.dispatcher()
    claim = dispatcher.claim(10)
    [message] = claim.messages
    held = Settled(
        message=message.defer(world.clock.now() + timedelta(hours=1), "waiting: x"),
        outcome=Outcome.DEFERRED,
    )
    dispatcher.defer(claim.token, [held])

    count = dispatcher.resume(world.clock.now(), types=None, held_back_only=True)

    assert (count, world.row(1).next_attempt_at) == (1, world.clock.now())


def test_a_target_report_names_the_worker_that_saw_it(world: World) -> None:
    health = TargetHealth(
        target="https://a:443",
        state=BreakerState.OPEN,
        since=world.clock.now(),
        last_error="503",
        in_flight=0,
        limit=1,
        updated_at=world.clock.now(),
    )

    world.dispatcher().report_target(health)

    [seen] = world.store.target_health()
    assert (seen.target, seen.reported_by) == ("https://a:443", "worker-1")
