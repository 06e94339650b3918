import pytest

from domain.delivery import DeliveryResult, Verdict, classify


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
def test_a_2xx_is_sent(code: int) -> None:
    result = DeliveryResult(status_code=code)

    assert classify(result) is Verdict.SENT


@pytest.mark.parametrize("code", [300, 301, 302, 304, 307, 308])
def test_a_3xx_is_dead_because_redirects_are_not_followed(code: int) -> None:
    result = DeliveryResult(status_code=code)

    assert classify(result) is Verdict.DEAD


def test_a_408_request_timeout_is_retried() -> None:
    result = DeliveryResult(status_code=408)

    assert classify(result) is Verdict.RETRY


def test_a_429_too_many_requests_is_retried() -> None:
    result = DeliveryResult(status_code=429, retry_after_seconds=30.0)

    assert classify(result) is Verdict.RETRY


@pytest.mark.parametrize("code", [400, 401, 403, 404, 405, 409, 410, 413, 422, 499])
def test_any_other_4xx_is_dead_at_once(code: int) -> None:
    result = DeliveryResult(status_code=code)

    assert classify(result) is Verdict.DEAD


@pytest.mark.parametrize("code", [500, 502, 503, 504, 599])
def test_a_5xx_is_retried(code: int) -> None:
    result = DeliveryResult(status_code=code)

    assert classify(result) is Verdict.RETRY


@pytest.mark.parametrize("error", ["ConnectError", "ReadTimeout", "RemoteProtocolError"])
def test_a_network_error_is_retried(error: str) -> None:
    result = DeliveryResult(error=error)

    assert classify(result) is Verdict.RETRY


@pytest.mark.parametrize("fields", [{}, {"status_code": 200, "error": "ConnectError"}])
def test_a_result_has_exactly_one_of_status_code_and_error(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DeliveryResult(**fields)  # type: ignore[arg-type]
