import asyncio
import base64
import logging
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate

import attrs
import httpx
import pytest

from adapters.httpx_sender import HttpxMessageSender
from adapters.webhooks import verify
from domain.delivery import DeliveryRequest, DeliveryResult

SECRET = "whsec_" + base64.b64encode(b"first signing key, 32 bytes long").decode()
OTHER = "whsec_" + base64.b64encode(b"second signing key for rotations").decode()
NOW = 1_700_000_000.0
REQUEST = DeliveryRequest(
    message_id=7,
    url="https://hooks.example.com/in",
    body=b'{"id":7,"message":"hello"}',
    idempotency_key="msg_token_7",
    attempt=1,
)
Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport handler that answers one canned response and keeps every request."""

    def __init__(self, status: int = 200, **response: object) -> None:
        self.status = status
        self.response = response
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, **self.response)  # type: ignore[arg-type]

    @property
    def headers(self) -> httpx.Headers:
        return self.requests[-1].headers


def make_sender(
    handler: Handler,
    *,
    secrets: tuple[str, ...] = (SECRET,),
    timestamp: Callable[[], float] = lambda: NOW,
    **bounds: int,
) -> HttpxMessageSender:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return HttpxMessageSender(
        client, secrets=secrets, user_agent="outbox/1.2.3", timestamp=timestamp, **bounds
    )


def send(sender: HttpxMessageSender, request: DeliveryRequest = REQUEST) -> DeliveryResult:
    return asyncio.run(sender.send(request))


def test_the_body_is_posted_as_json_to_the_requests_url() -> None:
    recorder = Recorder()

    send(make_sender(recorder))

    posted = recorder.requests[0]
    assert (posted.method, str(posted.url), posted.content) == ("POST", REQUEST.url, REQUEST.body)
    assert posted.headers["content-type"] == "application/json"


def test_the_idempotency_key_goes_out_as_idempotency_key_and_webhook_id() -> None:
    recorder = Recorder()

    send(make_sender(recorder))

    assert recorder.headers["idempotency-key"] == recorder.headers["webhook-id"] == "msg_token_7"


def test_the_user_agent_is_the_configured_one() -> None:
    recorder = Recorder()

    send(make_sender(recorder))

    assert recorder.headers["user-agent"] == "outbox/1.2.3"


def test_the_timestamp_is_whole_seconds_from_the_clock() -> None:
    recorder = Recorder()

    send(make_sender(recorder, timestamp=lambda: NOW + 0.9))

    assert recorder.headers["webhook-timestamp"] == str(int(NOW))


def test_the_signature_verifies_against_the_secret() -> None:
    recorder = Recorder()

    send(make_sender(recorder))

    verify(SECRET, dict(recorder.headers), recorder.requests[0].content, now=NOW)


def test_two_secrets_give_two_signatures_each_verifiable() -> None:
    recorder = Recorder()

    send(make_sender(recorder, secrets=(SECRET, OTHER)))

    headers = dict(recorder.headers)
    assert len(headers["webhook-signature"].split(" ")) == 2
    verify(SECRET, headers, REQUEST.body, now=NOW)
    verify(OTHER, headers, REQUEST.body, now=NOW)


def test_without_secrets_no_signature_header_is_sent() -> None:
    recorder = Recorder()

    send(make_sender(recorder, secrets=()))

    assert "webhook-signature" not in recorder.headers


def test_each_attempt_carries_the_time_it_was_made_and_the_same_key() -> None:
    recorder = Recorder(503)
    clock = [NOW]
    sender = make_sender(recorder, timestamp=lambda: clock[0])

    send(sender, REQUEST)
    clock[0] += 30
    send(sender, attrs.evolve(REQUEST, attempt=2))

    first, second = (request.headers for request in recorder.requests)
    assert (first["webhook-timestamp"], second["webhook-timestamp"]) == (
        str(int(NOW)),
        str(int(NOW + 30)),
    )
    assert first["webhook-id"] == second["webhook-id"] == "msg_token_7"
    assert first["webhook-signature"] != second["webhook-signature"]


def test_a_success_reports_its_status_and_latency() -> None:
    result = send(make_sender(Recorder(201)))

    assert result.status_code == 201
    assert result.error is None
    assert result.latency_ms >= 0


def test_a_redirect_comes_back_as_its_status_and_is_not_followed() -> None:
    recorder = Recorder(302, headers={"Location": "https://elsewhere.example.com/"})

    result = send(make_sender(recorder))

    assert result.status_code == 302
    assert len(recorder.requests) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_read_on_429_and_503(status: int) -> None:
    recorder = Recorder(status, headers={"Retry-After": "120"})

    result = send(make_sender(recorder))

    assert result.retry_after_seconds == 120.0


def test_retry_after_as_an_http_date_counts_from_the_senders_clock() -> None:
    recorder = Recorder(503, headers={"Retry-After": formatdate(NOW + 90, usegmt=True)})

    result = send(make_sender(recorder))

    assert result.retry_after_seconds == 90.0


def test_retry_after_in_the_past_means_now() -> None:
    recorder = Recorder(429, headers={"Retry-After": formatdate(NOW - 90, usegmt=True)})

    result = send(make_sender(recorder))

    assert result.retry_after_seconds == 0.0


@pytest.mark.parametrize("value", ["soon", "-5", "1.5", "", "Mon, 99 Foo 2024 99:99:99 GMT"])
def test_garbage_retry_after_is_ignored(value: str) -> None:
    recorder = Recorder(503, headers={"Retry-After": value})

    result = send(make_sender(recorder))

    assert result.retry_after_seconds is None


def test_retry_after_is_ignored_on_statuses_other_than_429_and_503() -> None:
    recorder = Recorder(500, headers={"Retry-After": "120"})

    result = send(make_sender(recorder))

    assert result.retry_after_seconds is None


def test_the_excerpt_is_bounded_and_printable() -> None:
    recorder = Recorder(400, content=b"bad\r\n\x00request " + b"\xff" * 5000)

    result = send(make_sender(recorder, excerpt_chars=40))

    assert len(result.excerpt) <= 40
    assert result.excerpt.startswith("bad request \ufffd")
    assert result.excerpt.isprintable()


def test_the_response_is_read_no_further_than_the_bound() -> None:
    served = CountingBody(chunk=1024, total=10 * 1024 * 1024)
    sender = make_sender(lambda _: httpx.Response(200, stream=served), max_response_bytes=4096)

    result = send(sender)

    assert result.status_code == 200
    assert served.yielded <= 4096 + 1024
    assert served.closed


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.ReadTimeout("slow read"),
        httpx.RemoteProtocolError("peer closed"),
        httpx.ReadError("reset"),
        RuntimeError("a bug in the transport"),
    ],
)
def test_a_transport_failure_becomes_a_result_named_by_its_class(error: Exception) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise error

    result = send(make_sender(fail))

    assert result.error == type(error).__name__
    assert result.status_code is None


def test_a_bad_url_becomes_a_result_too() -> None:
    request = attrs.evolve(REQUEST, url="https://exa mple.com:xx/")

    result = send(make_sender(Recorder()), request)

    assert result.error is not None


def test_secrets_appear_in_no_result_log_line_or_repr(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sender = make_sender(Recorder(503, content=b"try later"), secrets=(SECRET, OTHER))

    results = [send(sender), send(make_sender(_raise_connect_error, secrets=(SECRET,)))]

    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    shown = caplog.text + repr(results) + repr(sender)
    for secret in (SECRET, SECRET.removeprefix("whsec_"), OTHER, key.decode()):
        assert secret not in shown
    assert "message 7 attempt 1" in caplog.text


class CountingBody(httpx.AsyncByteStream):
    def __init__(self, *, chunk: int, total: int) -> None:
        self.chunk, self.total = chunk, total
        self.yielded = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.yielded < self.total:
            self.yielded += self.chunk
            yield b"x" * self.chunk

    async def aclose(self) -> None:
        self.closed = True


def _raise_connect_error(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused")
