"""The size knob: the default fits `make test`; `OUTBOX_FAULTS_SCALE=long` runs bigger."""

from __future__ import annotations

import os
from pathlib import Path

SCALES = ("default", "long")


def scale() -> str:
    value = os.environ.get("OUTBOX_FAULTS_SCALE", "default").strip().lower() or "default"
    if value not in SCALES:
        raise ValueError(f"OUTBOX_FAULTS_SCALE must be one of {', '.join(SCALES)}, got {value!r}")
    return value


def is_long() -> bool:
    return scale() == "long"


def scaled(default: int, long: int) -> int:
    return long if is_long() else default


def report(line: str) -> None:
    """Print a scenario's figures line (shown with -s) and append it to $OUTBOX_FAULTS_REPORT."""
    print(f"\n{line}", flush=True)
    target = os.environ.get("OUTBOX_FAULTS_REPORT")
    if target:
        with Path(target).open("a", encoding="utf-8") as results:
            results.write(line + "\n")
