"""The dashboard in a real headless Chromium, over a real SQLite outbox on 127.0.0.1.

Deliveries go through a real `outbox drain` subprocess to a real receiver. The run also
writes the README's screenshots to docs/screenshots/.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest
from aiohttp import web
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import func, select

from adapters.clock import ManualClock
from adapters.sql.store import SqlOutboxStore
from application.ports import Attempt, NewMessage
from domain.delivery import DeliveryResult, Verdict, classify
from domain.model import Message, State
from domain.retry import RetryPolicy
from tests.integration.dashboard.conftest import dashboard
from tests.integration.http_servers import serving

ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "docs" / "screenshots"
TOKEN = "a-long-enough-dashboard-token-0123"
SCREENSHOT_POLICY = RetryPolicy(base_seconds=60, max_seconds=120, max_attempts=4)
HOSTILE = '<script>window.__pwned = 1</script><img src="x" onerror="window.__pwned = 2">'


class Receiver:
    """Answers 400 to any body containing "reject", 200 otherwise; remembers every key."""

    def __init__(self) -> None:
        self.keys: dict[int, list[str]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.keys.setdefault(int(body["id"]), []).append(request.headers["Idempotency-Key"])
        if "reject" in str(body.get("message")):
            return web.Response(status=400, text='{"error": "rejected by the receiver"}')
        return web.Response(status=200, text="ok")


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    handler = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", handler.handle)
    with serving(app) as url:
        yield handler, f"{url}/hooks"


def drain(store: SqlOutboxStore, target: str) -> None:
    """A real `outbox drain` in a subprocess, configured only by environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
    env.update(
        OUTBOX_DATABASE_URL=store.engine.url.render_as_string(hide_password=False),
        OUTBOX_TARGET_URL=target,
        OUTBOX_ALLOW_PRIVATE_TARGETS="1",
    )
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints", "drain", "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr


def enqueue(
    store: SqlOutboxStore, *bodies: str, user_id: int = 1, kind: str = "default"
) -> list[int]:
    return store.enqueue([NewMessage(user_id=user_id, body=b, message_type=kind) for b in bodies])


def counts_in_table(store: SqlOutboxStore) -> dict[int, int]:
    t = store.table.c
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.ToSend, func.count()).group_by(t.ToSend)).all()
    return {int(state): int(n) for state, n in rows}


def follow(driver: webdriver.Chrome, by: str, what: str) -> None:
    """Click a link or button and wait until the next page has replaced this one."""
    old = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(by, what).click()
    WebDriverWait(driver, 10, poll_frequency=0.02).until(expected_conditions.staleness_of(old))


def listed_ids(driver: webdriver.Chrome) -> list[int]:
    """The IDs in the message list, read in one round trip."""
    script = "return [...document.querySelectorAll('a.message-id')].map(a => a.textContent)"
    return [int(text) for text in driver.execute_script(script)]


def text_of(driver: webdriver.Chrome, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def seed_failed_message(store: SqlOutboxStore, now: datetime) -> int:
    """One row the receiver refused after two retried failures, as a worker records it."""
    [row] = enqueue(store, '{"order": 1042, "amount": -5}', user_id=1042, kind="json")
    answers = [
        DeliveryResult(status_code=503, latency_ms=31, excerpt="upstream unavailable"),
        DeliveryResult(error="timeout", latency_ms=10_000),
        DeliveryResult(status_code=422, latency_ms=48, excerpt='{"error": "amount must be > 0"}'),
    ]
    for minutes, answer in zip((14, 12, 7), answers, strict=True):
        deliver(store, now - timedelta(minutes=minutes), _always(answer), limit=1)
    return row


def _always(answer: DeliveryResult) -> Callable[[Message], DeliveryResult]:
    return lambda _: answer


def seed_an_hour(store: SqlOutboxStore, now: datetime) -> int:
    """An hour of traffic through the store's port: steady sends, an eight-minute outage
    (503s, retried, a few dying of exhaustion), the odd 400. Returns how many attempts."""
    rng = random.Random(7)
    attempts = 0
    for minute in range(60):
        moment = now - timedelta(minutes=59 - minute)
        bodies = [f"event {minute}-{i}" for i in range(15 + rng.randrange(15))]
        enqueue(store, *bodies, user_id=minute)
        outage = 38 <= minute < 46

        def answer(message: Message, outage: bool = outage) -> DeliveryResult:
            if outage:
                return DeliveryResult(status_code=503, latency_ms=rng.uniform(2, 9))
            code = 400 if rng.random() < 0.02 else 200
            return DeliveryResult(status_code=code, latency_ms=rng.lognormvariate(3.0, 0.5))

        attempts += deliver(store, moment, answer, rng=rng)
    return attempts


def deliver(
    store: SqlOutboxStore,
    at: datetime,
    answer: Callable[[Message], DeliveryResult],
    limit: int = 500,
    rng: random.Random | None = None,
) -> int:
    """What one worker batch records at `at`: claim, one answer per row, ack."""
    token = f"{int(at.timestamp() * 1000):x}"
    claimed = store.claim(
        owner="w", token=token, limit=limit, now=at,
        lease_until=at + timedelta(seconds=30),
    )  # fmt: skip
    done, history = [], []
    for message in claimed:
        result = answer(message)
        jitter = rng.random() if rng else 0.5
        done.append(
            message.mark_sent(result, at)
            if classify(result) is Verdict.SENT
            else message.mark_failed(result, SCREENSHOT_POLICY, at, jitter)
        )
        key = message.idempotency_key or ""
        history.append(Attempt(
            message_id=message.id, attempt=message.attempts, idempotency_key=key,
            started_at=at, result=result,
        ))  # fmt: skip
    store.ack(token, done, history)
    return len(history)


def kill_rows(store: SqlOutboxStore, ids: list[int], reason: str = "Message is empty") -> None:
    """Make rows dead the way the dispatcher does (claim, then reject)."""
    now = datetime.now(UTC)
    claimed = store.claim(
        owner="t", token="kill", limit=len(ids), now=now, lease_until=now + timedelta(seconds=30)
    )
    assert sorted(m.id for m in claimed) == sorted(ids)
    store.ack("kill", [m.reject(reason) for m in claimed], [])


def test_the_overview_counts_match_the_table_after_a_drain(
    driver: webdriver.Chrome, store: SqlOutboxStore, receiver: tuple[Receiver, str]
) -> None:
    enqueue(store, *[f"order {i} confirmed" for i in range(7)], user_id=42)
    [failed, _] = enqueue(store, "reject: unknown customer", "reject: bad total", user_id=43)
    enqueue(store, "", user_id=44)  # invalid: never POSTed
    drain(store, receiver[1])

    with dashboard(store) as url:
        driver.get(url + "/")
        shown = {
            state: int(text_of(driver, f"count-{state}").replace(",", "")) for state in range(4)
        }
        driver.get(f"{url}/messages/{failed}")

    table = counts_in_table(store)
    assert shown == {state: table.get(state, 0) for state in range(4)}
    assert shown == {0: 7, 1: 0, 2: 0, 3: 3}
    assert text_of(driver, "status").startswith("dead: HTTP 400")


def test_the_readme_screenshots_show_an_hour_of_traffic(
    driver: webdriver.Chrome, store: SqlOutboxStore
) -> None:
    now = datetime.now(UTC)
    failed = seed_failed_message(store, now)
    attempts = seed_an_hour(store, now) + 3

    with dashboard(store, clock=ManualClock(now)) as url:
        driver.get(url + "/")
        drawn = {
            kind: len(driver.find_elements(By.CSS_SELECTOR, f"svg.chart rect.{kind}"))
            for kind in ("sent", "retried", "dead")
        }
        counted = int(text_of(driver, "latency-count"))
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / "overview.png"))
        driver.get(f"{url}/messages/{failed}")
        rows = driver.find_elements(By.CSS_SELECTOR, "#attempts tbody tr")
        driver.set_window_size(1280, 1020)
        driver.save_screenshot(str(SCREENSHOTS / "failed-message.png"))
        driver.set_window_size(1280, 900)

    assert drawn["sent"] >= 50 and drawn["retried"] > 0 and drawn["dead"] > 0
    assert counted == attempts
    assert len(rows) == 3


def test_filtering_and_paging_through_a_thousand_rows_reaches_every_row_once(
    driver: webdriver.Chrome, store: SqlOutboxStore
) -> None:
    wanted = enqueue(store, *[f"m{i}" for i in range(1000)], user_id=7)
    enqueue(store, *[f"noise{i}" for i in range(150)], user_id=8)
    seen: list[int] = []

    with dashboard(store) as url:
        driver.get(url + "/messages")
        driver.find_element(By.NAME, "user_id").send_keys("7")
        follow(driver, By.ID, "apply-filter")
        while True:
            seen += listed_ids(driver)
            older = driver.find_elements(By.ID, "older")
            if not older:
                break
            follow(driver, By.ID, "older")
        follow(driver, By.ID, "newer")
        back = listed_ids(driver)

    assert seen == sorted(wanted, reverse=True)
    assert back == seen[-100:-50]


def test_the_retry_button_requeues_a_dead_row_and_a_worker_then_sends_it(
    driver: webdriver.Chrome, store: SqlOutboxStore, receiver: tuple[Receiver, str]
) -> None:
    [row] = enqueue(store, "reject me once")
    drain(store, receiver[1])
    first_key = receiver[0].keys[row][0]
    with store.engine.begin() as conn:  # upstream fixes the row, as an operator would ask
        conn.execute(store.table.update().values(Message="fixed").where(store.table.c.ID == row))

    with dashboard(store) as url:
        driver.get(f"{url}/messages/{row}")
        follow(driver, By.ID, "retry")
        notice = text_of(driver, "requeued")
    drain(store, receiver[1])

    assert notice.startswith("Re-queued 1 row(s)")
    sent = store.get(row)
    assert sent is not None and sent.state is State.SENT
    assert receiver[0].keys[row][-1] != first_key


def test_retrying_every_dead_row_of_a_filter_says_how_many_first(
    driver: webdriver.Chrome, store: SqlOutboxStore
) -> None:
    orders = enqueue(store, "a", "b", "c", kind="orders")
    others = enqueue(store, "d", "e")
    kill_rows(store, orders + others)

    with dashboard(store) as url:
        driver.get(f"{url}/messages?state=dead&type=orders")
        follow(driver, By.ID, "retry-matching")
        confirmation = text_of(driver, "confirm-count")
        follow(driver, By.ID, "confirm-retry")
        notice = text_of(driver, "requeued")

    assert "re-queues 3 dead row(s)" in confirmation
    assert notice.startswith("Re-queued 3 dead row(s)")
    states = {i: store.get(i).state for i in orders + others}  # type: ignore[union-attr]
    assert [states[i] for i in orders] == [State.PENDING] * 3
    assert [states[i] for i in others] == [State.DEAD] * 2


def test_a_hostile_message_renders_as_text_and_runs_nothing(
    driver: webdriver.Chrome, store: SqlOutboxStore
) -> None:
    [row] = enqueue(store, HOSTILE, kind="<b>type</b>")
    kill_rows(store, [row], reason=HOSTILE)

    with dashboard(store) as url:
        driver.get(f"{url}/messages/{row}")
        body, status = text_of(driver, "body"), text_of(driver, "status")
        flag_on_detail = driver.execute_script("return window.__pwned")
        driver.get(f"{url}/messages?type=%3Cb%3Etype%3C%2Fb%3E")
        listed = driver.find_element(By.CSS_SELECTOR, "td.status").text
        flag_on_list = driver.execute_script("return window.__pwned")

    assert body == HOSTILE and status == f"invalid: {HOSTILE}" and HOSTILE in listed
    assert flag_on_detail is None and flag_on_list is None


def test_without_the_token_pages_go_to_the_login_and_actions_get_403(
    driver: webdriver.Chrome, store: SqlOutboxStore
) -> None:
    [row] = enqueue(store, "x")
    kill_rows(store, [row])

    with dashboard(store, token=TOKEN) as url:
        driver.get(f"{url}/messages?state=dead")
        login_url = driver.current_url
        refused = httpx.post(f"{url}/messages/{row}/retry", data={"csrf": "x"})
        driver.find_element(By.ID, "token").send_keys("wrong-token-wrong-token")
        follow(driver, By.ID, "login")
        failed = text_of(driver, "login-failed")
        driver.find_element(By.ID, "token").send_keys(TOKEN)
        follow(driver, By.ID, "login")
        after_login = driver.current_url
        cookie = next(c for c in driver.get_cookies() if c["name"] == "outbox_session")
        bearer = httpx.get(f"{url}/messages", headers={"Authorization": f"Bearer {TOKEN}"})

    assert unquote(login_url) == f"{url}/login?next=/messages?state=dead"
    assert refused.status_code == 403 and store.get(row).state is State.DEAD  # type: ignore[union-attr]
    assert "not the dashboard's token" in failed
    assert after_login == f"{url}/messages?state=dead"
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert TOKEN not in cookie["value"]
    assert bearer.status_code == 200 and "message-id" in bearer.text


def test_a_post_without_the_csrf_token_is_refused(
    driver: webdriver.Chrome, store: SqlOutboxStore
) -> None:
    [row] = enqueue(store, "x")
    kill_rows(store, [row])

    with dashboard(store) as url:
        driver.get(f"{url}/messages/{row}")
        driver.execute_script("document.querySelector('input[name=csrf]').remove()")
        follow(driver, By.ID, "retry")
        refusal = driver.find_element(By.TAG_NAME, "body").text

    assert "CSRF" in refusal
    assert store.get(row).state is State.DEAD  # type: ignore[union-attr]
