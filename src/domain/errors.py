class DomainError(Exception):
    """A rule of the message lifecycle was broken."""


class IllegalTransition(DomainError):
    """A transition was asked of a message in a state that does not allow it."""


class InvalidMessage(DomainError):
    """A row cannot be turned into a request; the reason goes into Status."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DuplicateMessageType(DomainError):
    """Two modules claim the same message type name."""
