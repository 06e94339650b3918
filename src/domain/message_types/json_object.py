"""The `json` type: `Message` holds a JSON object, sent as `data` beside the id and user id."""

import json
from collections.abc import Mapping

import attrs

from domain.errors import InvalidMessage
from domain.message_type import TextMessageType
from domain.model import Message


@attrs.frozen
class JsonObjectMessageType(TextMessageType):
    name: str = "json"

    def build(self, message: Message) -> Mapping[str, object]:
        """Parses once, here: text that is not a JSON object raises `InvalidMessage` too."""
        assert message.body is not None
        return {
            "id": message.id,
            "type": self.name,
            "user_id": message.user_id,
            "data": _parse(message.body),
        }


def _parse(text: str) -> dict[str, object]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidMessage(f"Message is not JSON: {error.msg} at position {error.pos}") from error
    if not isinstance(value, dict):
        raise InvalidMessage(f"Message must be a JSON object, got {type(value).__name__}")
    return value


MESSAGE_TYPE = JsonObjectMessageType()
