"""How the pipeline runs a blocking call (a database statement) without stalling its loop.

Production hands each call to a thread (`asyncio.to_thread`); unit tests run it inline, so
what the pipeline does next depends on nothing but the steps the test takes.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Offload(Protocol):
    def __call__(self, func: Callable[..., T], /, *args: Any) -> Coroutine[Any, Any, T]: ...


async def inline(func: Callable[..., T], /, *args: Any) -> T:
    """Run the call on the loop itself (for tests over the in-memory store)."""
    return func(*args)
