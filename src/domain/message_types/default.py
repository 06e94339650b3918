"""The default type: the row's text goes out as `message`, with its id and user id."""

from collections.abc import Mapping

import attrs

from domain.message_type import require_text, require_user
from domain.model import Message

MAX_MESSAGE_CHARS = 256 * 1024


@attrs.frozen
class DefaultMessageType:
    name: str = "default"

    def validate(self, message: Message) -> None:
        require_user(message)
        require_text(message, MAX_MESSAGE_CHARS)

    def build(self, message: Message) -> Mapping[str, object]:
        return {
            "id": message.id,
            "type": self.name,
            "user_id": message.user_id,
            "message": message.body,
        }


MESSAGE_TYPE = DefaultMessageType()
