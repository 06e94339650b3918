import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from application.message_type_registry import MessageTypeError, discover
from domain.errors import DuplicateMessageType, InvalidMessage
from domain.message_type import MAX_MESSAGE_CHARS
from domain.model import Message, State

TYPE_MODULE = """
import attrs

@attrs.frozen
class Type:
    name: str = {name!r}

    def validate(self, message):
        pass

    def build(self, message):
        return {{}}

MESSAGE_TYPE = Type()
"""


def row(body: str | None = "hello", user_id: int | None = 42, kind: str = "default") -> Message:
    return Message(id=9, user_id=user_id, body=body, message_type=kind, state=State.PENDING)


def reason_for(message: Message) -> str:
    with pytest.raises(InvalidMessage) as raised:
        discover().payload(message)
    return raised.value.reason


@pytest.fixture
def plugin_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    package = tmp_path / f"outbox_plugins_{tmp_path.name}"
    package.mkdir()
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in [n for n in sys.modules if n.startswith(package.name)]:
        del sys.modules[name]


def test_discovery_finds_the_built_in_types() -> None:
    types = discover()

    assert {"default", "json"} <= set(types)


def test_two_modules_claiming_one_name_is_a_start_up_error_naming_both(
    plugin_package: Path,
) -> None:
    (plugin_package / "first.py").write_text(TYPE_MODULE.format(name="sms"))
    (plugin_package / "second.py").write_text(TYPE_MODULE.format(name="sms"))

    with pytest.raises(DuplicateMessageType) as raised:
        discover([plugin_package.name])

    assert f"{plugin_package.name}.first" in str(raised.value)
    assert f"{plugin_package.name}.second" in str(raised.value)


def test_a_plugin_claiming_a_built_in_name_is_a_start_up_error(plugin_package: Path) -> None:
    (plugin_package / "mine.py").write_text(TYPE_MODULE.format(name="default"))

    with pytest.raises(DuplicateMessageType, match=r"domain\.message_types\.default"):
        discover(["domain.message_types", plugin_package.name])


def test_a_plugin_package_adds_its_types(plugin_package: Path) -> None:
    (plugin_package / "sms.py").write_text(TYPE_MODULE.format(name="sms"))

    types = discover(["domain.message_types", plugin_package.name])

    assert set(types) >= {"default", "json", "sms"}


def test_a_module_without_message_type_is_a_start_up_error(plugin_package: Path) -> None:
    (plugin_package / "empty.py").write_text("X = 1\n")

    with pytest.raises(MessageTypeError, match=rf"{plugin_package.name}\.empty"):
        discover([plugin_package.name])


def test_a_module_that_fails_to_import_is_a_start_up_error(plugin_package: Path) -> None:
    (plugin_package / "broken.py").write_text("raise RuntimeError('oops')\n")

    with pytest.raises(MessageTypeError, match="oops"):
        discover([plugin_package.name])


def test_a_private_module_is_not_a_message_type(plugin_package: Path) -> None:
    (plugin_package / "_helpers.py").write_text("X = 1\n")

    types = discover([plugin_package.name])

    assert len(types) == 0


@pytest.mark.parametrize(
    "body, reason",
    [
        (None, "Message is NULL"),
        ("", "Message is empty"),
        (" \t\n ", "Message is empty"),
        ("x" * (MAX_MESSAGE_CHARS + 1), f"Message is too long: {MAX_MESSAGE_CHARS + 1}"),
        ("half a pair: \ud800", "Message is not valid Unicode"),
    ],
    ids=["null", "empty", "whitespace", "oversized", "lone surrogate"],
)
def test_the_default_type_refuses_a_bad_message_with_a_clear_reason(
    body: str | None, reason: str
) -> None:
    message = row(body=body)

    assert reason_for(message).startswith(reason)


@pytest.mark.parametrize(
    "user_id, reason",
    [
        (None, "UserID is NULL"),
        (0, "UserID must be positive, got 0"),
        (-3, "UserID must be positive, got -3"),
    ],
)
def test_the_default_type_refuses_a_bad_user_id(user_id: int | None, reason: str) -> None:
    message = row(user_id=user_id)

    assert reason_for(message) == reason


def test_the_default_type_accepts_a_message_of_exactly_the_limit() -> None:
    message = row(body="x" * MAX_MESSAGE_CHARS)

    payload = discover().payload(message)

    assert len(payload) > MAX_MESSAGE_CHARS


def test_an_unknown_type_is_invalid() -> None:
    message = row(kind="carrier-pigeon")

    assert reason_for(message) == "unknown message type 'carrier-pigeon'"


def test_the_default_body_holds_id_user_id_and_message() -> None:
    message = row(body="héllo ☃")

    body = json.loads(discover().payload(message))

    assert body == {"id": 9, "type": "default", "user_id": 42, "message": "héllo ☃"}


def test_the_json_type_sends_an_object_as_data() -> None:
    message = row(body='{"order": 17, "items": ["a"]}', kind="json")

    body = json.loads(discover().payload(message))

    assert body == {"id": 9, "type": "json", "user_id": 42, "data": {"order": 17, "items": ["a"]}}


def test_the_json_type_refuses_text_that_is_not_json() -> None:
    message = row(body="{not json", kind="json")

    assert reason_for(message).startswith("Message is not JSON")


@pytest.mark.parametrize("body, kind", [("[1, 2]", "list"), ("17", "int"), ('"s"', "str")])
def test_the_json_type_refuses_json_that_is_not_an_object(body: str, kind: str) -> None:
    message = row(body=body, kind="json")

    assert reason_for(message) == f"Message must be a JSON object, got {kind}"


@pytest.mark.parametrize("body", ['{"a": NaN}', '{"a": "\\ud800"}'])
def test_the_json_type_refuses_an_object_that_cannot_be_sent_as_json(body: str) -> None:
    message = row(body=body, kind="json")

    assert reason_for(message).startswith("body is not JSON-serialisable")


def test_the_json_type_checks_the_user_id_too() -> None:
    message = row(body="{}", user_id=None, kind="json")

    assert reason_for(message) == "UserID is NULL"
