"""Idempotency keys: one per send request, shared by all its retries.

A key is the claim token of the claim that started the request plus the row id, so it is
unique without coordination; the SQL stores build the same string in the claim statement.
"""

KEY_PREFIX = "msg_"


def key_prefix(token: str) -> str:
    return f"{KEY_PREFIX}{token}_"


def new_key(token: str, message_id: int) -> str:
    return f"{key_prefix(token)}{message_id}"
