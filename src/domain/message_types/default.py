"""The default type: the row's text goes out as `message`, with its id and user id."""

from collections.abc import Mapping

import attrs

from domain.message_type import TextMessageType
from domain.model import Message


@attrs.frozen
class DefaultMessageType(TextMessageType):
    name: str = "default"

    def build(self, message: Message) -> Mapping[str, object]:
        return {
            "id": message.id,
            "type": self.name,
            "user_id": message.user_id,
            "message": message.body,
        }


MESSAGE_TYPE = DefaultMessageType()
