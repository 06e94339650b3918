"""`outbox receiver`: a local endpoint that verifies signatures, dedupes and reports what it got.

Demo hooks in the body's `message` text: `[fail-once]` answers 503 (Retry-After: 1) to the
first delivery of a key, `[reject]` answers 422. `GET /stats` returns the counts and every POST.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Mapping

import attrs
from aiohttp import web

from adapters.webhooks import WebhookVerificationError, secret_key, verify

TALLY_FIELDS = ("received", "duplicates", "rejected", "failed", "bad_signatures")


@attrs.frozen(kw_only=True)
class Delivery:
    """One POST as the receiver saw it and what it answered."""

    key: str | None
    webhook_id: str | None
    message_id: object
    signature_valid: bool | None
    received_at: float
    status: int


@attrs.define
class ReceiverState:
    received: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    bad_signatures: int = 0
    deliveries: list[Delivery] = attrs.field(factory=list)
    delivered_keys: set[str] = attrs.field(factory=set)
    failed_once_keys: set[str] = attrs.field(factory=set)

    def tally(self) -> str:
        return " ".join(f"{name}={getattr(self, name)}" for name in TALLY_FIELDS)

    def as_json(self) -> dict[str, object]:
        counts: dict[str, object] = {name: getattr(self, name) for name in TALLY_FIELDS}
        return counts | {"deliveries": [attrs.asdict(d) for d in self.deliveries]}


STATE = web.AppKey("receiver_state", ReceiverState)


@attrs.frozen
class _Answer:
    status: int
    text: str
    counter: str
    headers: Mapping[str, str] = attrs.field(factory=dict)


class _Receiver:
    def __init__(
        self, state: ReceiverState, secret: str | None, fail_rate: float, rng: random.Random
    ) -> None:
        self.state = state
        self.secrets = tuple(secret.split()) if secret else ()
        for each in self.secrets:
            secret_key(each)  # a malformed secret fails here, at start-up, not on every POST
        self.fail_rate = fail_rate
        self.rng = rng

    async def post(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = request.headers.get("Idempotency-Key") or request.headers.get("webhook-id")
        signature_error = self._signature_error(request.headers, body)
        answer = self._answer(key, signature_error, _message_text(body))
        setattr(self.state, answer.counter, getattr(self.state, answer.counter) + 1)
        self.state.deliveries.append(
            Delivery(
                key=key,
                webhook_id=request.headers.get("webhook-id"),
                message_id=_message_field(body, "id"),
                signature_valid=signature_error is None if self.secrets else None,
                received_at=time.time(),
                status=answer.status,
            )
        )
        return web.Response(status=answer.status, text=answer.text, headers=answer.headers)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.as_json())

    def _signature_error(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """None when unchecked or valid for one of the secrets, else why not."""
        reason = None
        for secret in self.secrets:
            try:
                verify(secret, headers, body, now=time.time())
                return None
            except WebhookVerificationError as error:
                reason = error.reason
        return reason

    def _answer(self, key: str | None, signature_error: str | None, message: str) -> _Answer:
        if signature_error is not None:
            return _Answer(400, f"bad signature: {signature_error}", "bad_signatures")
        if key is None:
            return _Answer(400, "missing Idempotency-Key header", "rejected")
        if key in self.state.delivered_keys:
            return _Answer(200, "duplicate: already delivered", "duplicates")
        if "[reject]" in message:
            return _Answer(422, "rejected: the message asked for it", "rejected")
        if "[fail-once]" in message and key not in self.state.failed_once_keys:
            self.state.failed_once_keys.add(key)
            return _Answer(503, "failing once on purpose", "failed", {"Retry-After": "1"})
        if self.fail_rate and self.rng.random() < self.fail_rate:
            return _Answer(503, "random failure (--fail-rate)", "failed")
        self.state.delivered_keys.add(key)
        return _Answer(200, "delivered", "received")


def _message_field(body: bytes, name: str) -> object:
    try:
        document = json.loads(body)
    except ValueError:
        return None
    return document.get(name) if isinstance(document, dict) else None


def _message_text(body: bytes) -> str:
    text = _message_field(body, "message")
    return text if isinstance(text, str) else ""


def build_app(
    *, secret: str | None, fail_rate: float = 0.0, rng: random.Random | None = None
) -> web.Application:
    """The receiver as an aiohttp application; its state is `app[STATE]`.

    `secret` may hold several space-separated `whsec_` secrets (a rotation): any one verifies.
    """
    state = ReceiverState()
    receiver = _Receiver(state, secret, fail_rate, rng or random.Random())
    app = web.Application()
    app[STATE] = state
    app.router.add_get("/stats", receiver.stats)
    app.router.add_post("/{path:.*}", receiver.post)
    return app


async def run_receiver(
    host: str,
    port: int,
    secret: str | None,
    fail_rate: float,
    on_ready: Callable[[int], None] | None = None,
) -> None:
    """Serve until cancelled, printing the tally whenever it changed, about once a second."""
    app = build_app(secret=secret, fail_rate=fail_rate)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound = int(runner.addresses[0][1])
        print(
            f"receiver listening on http://{host}:{bound}/ (signatures "
            f"{'verified' if secret else 'not checked'}); GET /stats for details",
            flush=True,
        )
        if on_ready is not None:
            on_ready(bound)
        await _print_tally(app[STATE])
    finally:
        await runner.cleanup()


async def _print_tally(state: ReceiverState) -> None:
    shown = ""
    while True:
        await asyncio.sleep(1.0)
        line = state.tally()
        if line != shown:
            print(line, flush=True)
            shown = line
