"""The dashboard's read side: every `OutboxBrowser` subclasses this and builds `store` + `browser`.

Rows are put in place through the store's own port (enqueue, claim, ack), as a worker would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from application.ports import Attempt, MessageFilter, NewMessage
from domain.delivery import DeliveryResult
from domain.model import Message, State
from domain.retry import RetryPolicy

T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)
LEASE = timedelta(seconds=30)
POLICY = RetryPolicy(base_seconds=10, max_seconds=60, max_attempts=2)


def result(code: int, ms: float = 10) -> DeliveryResult:
    return DeliveryResult(status_code=code, latency_ms=ms, excerpt=f"answer {code}")


class OutboxBrowserContract:
    """Subclasses provide the `store` and `browser` fixtures."""

    # --- helpers -----------------------------------------------------------

    def enqueue(self, store: Any, count: int, **fields: Any) -> list[int]:
        new = NewMessage(
            user_id=fields.get("user_id", 1),
            body=fields.get("body", "hi"),
            message_type=fields.get("message_type", "default"),
        )
        return list(store.enqueue([new] * count))

    def claim(self, store: Any, token: str, at: datetime = T0, limit: int = 1000) -> list[Message]:
        return list(
            store.claim(owner="w", token=token, limit=limit, now=at, lease_until=at + LEASE)
        )

    def deliver(
        self, store: Any, token: str, code: int, at: datetime = T0, ms: float = 10
    ) -> list[Message]:
        """Claim every due row and answer each with HTTP `code`."""
        claimed = self.claim(store, token, at)
        answer = result(code, ms)
        done = [
            m.mark_sent(answer, at)
            if 200 <= code < 300
            else m.mark_failed(answer, POLICY, at, jitter=0.0)
            for m in claimed
        ]
        attempts = [
            Attempt(
                message_id=m.id,
                attempt=m.attempts,
                idempotency_key=m.idempotency_key or "",
                started_at=at,
                result=answer,
            )
            for m in claimed
        ]
        store.ack(token, done, attempts)
        return done

    def reject(self, store: Any, token: str, reason: str = "Message is empty") -> None:
        claimed = self.claim(store, token)
        store.ack(token, [m.reject(reason) for m in claimed], [])

    def ids(self, page: Any) -> list[int]:
        return [m.id for m in page.messages]

    # --- figures -------------------------------------------------------------

    def test_figures_count_every_state(self, store: Any, browser: Any) -> None:
        self.enqueue(store, 3)
        self.deliver(store, "a", 200)
        self.enqueue(store, 2)
        self.reject(store, "b")
        self.enqueue(store, 4)
        self.claim(store, "c", limit=1)

        counts = browser.figures(NOW).counts

        assert counts == {0: 3, 1: 3, 2: 1, 3: 2}

    def test_figures_give_the_oldest_due_age(self, store: Any, browser: Any) -> None:
        self.enqueue(store, 1)
        [retrying] = self.deliver(store, "a", 503)
        assert retrying.next_attempt_at is not None

        figures = browser.figures(retrying.next_attempt_at + timedelta(seconds=60))

        assert figures.oldest_due_age_seconds == 60

    def test_activity_counts_sent_retried_and_dead_attempts_per_minute(
        self, store: Any, browser: Any
    ) -> None:
        self.enqueue(store, 2)
        self.deliver(store, "a", 200)
        self.enqueue(store, 1)
        self.deliver(store, "b", 503)
        self.deliver(store, "c", 503, at=T0 + timedelta(minutes=2))  # second and last: dead

        activity = browser.figures(NOW).activity

        assert len(activity) == 60
        assert activity[-1].start == NOW.replace(second=0)
        by_minute = {
            a.start: (a.sent, a.retried, a.dead) for a in activity if a.start >= T0 - LEASE
        }
        assert by_minute[T0.replace(second=0)] == (2, 1, 0)
        assert by_minute[T0.replace(second=0) + timedelta(minutes=2)] == (0, 0, 1)

    def test_activity_leaves_out_attempts_older_than_an_hour(
        self, store: Any, browser: Any
    ) -> None:
        self.enqueue(store, 1)
        self.deliver(store, "a", 200)

        figures = browser.figures(T0 + timedelta(hours=1, minutes=1))

        assert sum(a.sent + a.retried + a.dead for a in figures.activity) == 0
        assert figures.latency.count == 0

    def test_latency_percentiles_come_from_the_last_hour_of_attempts(
        self, store: Any, browser: Any
    ) -> None:
        for ms in range(1, 101):
            self.enqueue(store, 1)
            self.deliver(store, f"t{ms}", 200, ms=ms)

        latency = browser.figures(NOW).latency

        assert (latency.count, latency.p50, latency.p90, latency.p99, latency.max) == (
            100, 50, 90, 99, 100,
        )  # fmt: skip

    def test_type_health_gives_each_failing_message_type_its_last_hour(
        self, store: Any, browser: Any
    ) -> None:
        self.enqueue(store, 2, message_type="orders")
        self.deliver(store, "a", 200)
        self.enqueue(store, 1, message_type="json")
        self.deliver(store, "b", 503, at=T0 + timedelta(minutes=1))
        self.enqueue(store, 1, message_type="json")
        self.deliver(store, "c", 200, at=T0 + timedelta(minutes=1))  # same moment, later

        health = {h.message_type: h for h in browser.type_health(NOW)}

        assert set(health) == {"json"}
        assert health["json"].failed_last_hour == 1
        assert health["json"].last_failure_at == T0 + timedelta(minutes=1)
        assert health["json"].last_error == "HTTP 503"

    # --- message list --------------------------------------------------------

    def test_messages_come_newest_first_and_pages_reach_every_row_once(
        self, store: Any, browser: Any
    ) -> None:
        ids = self.enqueue(store, 23)
        seen: list[int] = []

        page = browser.messages(MessageFilter(), limit=5)
        seen += self.ids(page)
        while page.older_than is not None:
            page = browser.messages(MessageFilter(), before=page.older_than, limit=5)
            seen += self.ids(page)

        assert seen == sorted(ids, reverse=True)

    def test_paging_back_with_after_returns_the_newer_page(self, store: Any, browser: Any) -> None:
        ids = self.enqueue(store, 12)
        first = browser.messages(MessageFilter(), limit=5)
        second = browser.messages(MessageFilter(), before=first.older_than, limit=5)

        back = browser.messages(MessageFilter(), after=second.newer_than, limit=5)

        assert self.ids(back) == self.ids(first) == ids[:-6:-1]
        assert first.newer_than is None and back.newer_than is None
        assert second.newer_than == ids[-6]

    def test_the_last_page_has_no_older_cursor(self, store: Any, browser: Any) -> None:
        self.enqueue(store, 5)

        page = browser.messages(MessageFilter(), limit=5)

        assert page.older_than is None and page.newer_than is None

    def test_filters_narrow_by_state_type_user_id_range_and_status_text(
        self, store: Any, browser: Any
    ) -> None:
        sent = self.enqueue(store, 2, user_id=7)
        self.deliver(store, "a", 200)
        dead = self.enqueue(store, 2, message_type="orders")
        self.reject(store, "b", reason="Message is 100% EMPTY_x")
        pending = self.enqueue(store, 3, user_id=7)

        def only(**fields: Any) -> list[int]:
            return sorted(self.ids(browser.messages(MessageFilter(**fields))))

        assert only(state=State.SENT) == sent
        assert only(state=State.DEAD) == dead
        assert only(state=State.PENDING) == pending
        assert only(message_type="orders") == dead
        assert only(user_id=7) == sorted(sent + pending)
        assert only(min_id=dead[1], max_id=pending[0]) == [dead[1], pending[0]]
        assert only(status_text="100% empty") == dead
        assert only(status_text="y%x") == []  # LIKE wildcards are plain characters
        assert only(status_text="empty_x", user_id=7) == []

    # --- bulk retry ------------------------------------------------------------

    def test_count_dead_counts_only_dead_rows_matching_the_filter(
        self, store: Any, browser: Any
    ) -> None:
        self.enqueue(store, 3, message_type="orders")
        self.reject(store, "a")
        self.enqueue(store, 2)
        self.reject(store, "b")
        self.enqueue(store, 4, message_type="orders")

        assert browser.count_dead(MessageFilter()) == 5
        assert browser.count_dead(MessageFilter(message_type="orders")) == 3

    def test_requeue_dead_requeues_the_matching_dead_rows_as_new_requests(
        self, store: Any, browser: Any
    ) -> None:
        orders = self.enqueue(store, 3, message_type="orders")
        self.reject(store, "a")
        others = self.enqueue(store, 2)
        self.reject(store, "b")

        requeued = browser.requeue_dead(MessageFilter(message_type="orders"))

        assert requeued == 3
        rows = {i: store.get(i) for i in orders + others}
        assert all(rows[i].state is State.PENDING and rows[i].attempts == 0 for i in orders)
        assert all(rows[i].idempotency_key is None for i in orders)
        assert all(rows[i].state is State.DEAD for i in others)
        assert browser.count_dead(MessageFilter()) == 2
