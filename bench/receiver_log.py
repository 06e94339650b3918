"""What nginx received, per request path: arrival times and idempotency keys from its access log."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Arrivals:
    """The POSTs one run sent to its own path."""

    times: list[float] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.times)

    def rate(self) -> float:
        """Messages per second from the first arrival to the last (steady state, no start-up)."""
        span = max(self.times) - min(self.times)
        return len(self.times) / span if span > 0 else float("nan")

    def doubles(self) -> int:
        """Deliveries beyond the first of each message (the key ends with the row id)."""
        return len(self.keys) - len({key.rsplit("_", 1)[-1] for key in self.keys})


class ReceiverLog:
    """Reads the access log incrementally; each benchmark run uses a path of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._by_path: dict[str, Arrivals] = {}

    def arrivals(self, path: str) -> Arrivals:
        self._read()
        return self._by_path.get(path, Arrivals())

    def wait_for(self, path: str, count: int, timeout: float = 5.0) -> Arrivals:
        """The arrivals at `path` once `count` are logged (nginx flushes its log every 100 ms)."""
        deadline = time.monotonic() + timeout
        while len(self.arrivals(path)) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.arrivals(path)

    def forget(self, path: str) -> None:
        self._by_path.pop(path, None)

    def _read(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("rb") as log:
            log.seek(self._offset)
            chunk = log.read()
        complete = chunk.rfind(b"\n") + 1
        self._offset += complete
        for line in chunk[:complete].decode(errors="replace").splitlines():
            stamp, uri, key = [*line.split(" ", 2), "", ""][:3]
            arrivals = self._by_path.setdefault(uri, Arrivals())
            arrivals.times.append(float(stamp))
            arrivals.keys.append(key)
