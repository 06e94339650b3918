"""Waiting for the pipeline in unit tests: by yielding to the event loop, never by the clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from application.pipeline import PipelineSettings

# no timeout in the pipeline waits on the real clock: each wait is a yield to the loop
NO_WAITS = {"poll_interval": 0.0, "min_idle_seconds": 0.0, "flush_seconds": 0.0}


def settings(**changes: object) -> PipelineSettings:
    return PipelineSettings(**{**NO_WAITS, **changes})  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], *, steps: int = 200_000) -> None:
    """Yield to the event loop until `condition` holds; fail after `steps` yields."""
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"still false after {steps} steps of the event loop")


async def settle(steps: int = 2_000) -> None:
    """Let every task run as far as it can: the loop turned `steps` times."""
    for _ in range(steps):
        await asyncio.sleep(0)
