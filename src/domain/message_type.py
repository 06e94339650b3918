"""The extension point: a message type validates a row and builds its request body."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import ClassVar, Protocol

from domain.errors import DuplicateMessageType, InvalidMessage
from domain.model import Message

MAX_MESSAGE_CHARS = 256 * 1024


class MessageType(Protocol):
    """One kind of outbox row. A module in `domain.message_types` exposes one as `MESSAGE_TYPE`."""

    @property
    def name(self) -> str:
        """The value of the row's `MessageType` column that selects this type."""
        ...

    def validate(self, message: Message) -> None:
        """Raise `InvalidMessage(reason)` if the row cannot be sent; never called twice per send."""
        ...

    def build(self, message: Message) -> Mapping[str, object]:
        """Return the JSON object to POST for a row that passed `validate`; may raise
        `InvalidMessage` too, for checks that need the parsed body."""
        ...


class TextMessageType:
    """Base for the common kind of type: `Message` is text (not NULL, not blank, at most
    `max_chars`, valid Unicode) for a positive `UserID`. Subclasses add `name` and `build`."""

    max_chars: ClassVar[int] = MAX_MESSAGE_CHARS

    def validate(self, message: Message) -> None:
        require_user(message)
        require_text(message, self.max_chars)


class MessageTypes(Mapping[str, MessageType]):
    """The known message types by name; a name claimed twice is a start-up error."""

    def __init__(self, types: Iterable[tuple[str, MessageType]]) -> None:
        self._by_name: dict[str, MessageType] = {}
        self._origin: dict[str, str] = {}
        for origin, message_type in types:
            self._add(origin, message_type)

    def _add(self, origin: str, message_type: MessageType) -> None:
        name = message_type.name
        if name in self._by_name:
            raise DuplicateMessageType(
                f"message type {name!r} is claimed by both {self._origin[name]} and {origin}"
            )
        self._by_name[name] = message_type
        self._origin[name] = origin

    def __getitem__(self, name: str) -> MessageType:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def payload(self, message: Message) -> bytes:
        """Validate the row through its type and encode the body; `InvalidMessage` says why not."""
        message_type = self._by_name.get(message.message_type)
        if message_type is None:
            raise InvalidMessage(f"unknown message type {message.message_type!r}")
        message_type.validate(message)
        return encode(message_type.build(message))


# built once: json.dumps with options builds a new encoder on every call
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode(body: Mapping[str, object]) -> bytes:
    try:
        return _ENCODER.encode(body).encode("utf-8")
    except (TypeError, ValueError) as error:
        raise InvalidMessage(f"body is not JSON-serialisable: {error}") from error


def require_user(message: Message) -> int:
    if message.user_id is None:
        raise InvalidMessage("UserID is NULL")
    if message.user_id <= 0:
        raise InvalidMessage(f"UserID must be positive, got {message.user_id}")
    return message.user_id


def require_text(message: Message, max_chars: int) -> str:
    body = message.body
    if body is None:
        raise InvalidMessage("Message is NULL")
    if not body.strip():
        raise InvalidMessage("Message is empty")
    if len(body) > max_chars:
        raise InvalidMessage(f"Message is too long: {len(body)} characters, limit {max_chars}")
    _require_encodable(body)
    return body


def _require_encodable(body: str) -> None:
    try:
        body.encode("utf-8")
    except UnicodeEncodeError as error:
        raise InvalidMessage(
            f"Message is not valid Unicode: {error.reason} at position {error.start}"
        ) from error
