"""The domain's exceptions, and how any exception is told in one line."""


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


def one_line(error: BaseException, limit: int = 200) -> str:
    """An exception for a log or Status line: its class, then its message's first line."""
    first = next(iter(str(error).strip().splitlines()), "")
    return (f"{type(error).__name__}: {first}" if first else type(error).__name__)[:limit]
