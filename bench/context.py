"""What every scenario shares: the profile (sizes), the receiver, the databases, the report."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.databases import BenchDatabase
from bench.plot import Series
from bench.processes import Settings
from bench.receiver_log import ReceiverLog
from bench.report import Report


@dataclass(frozen=True)
class Profile:
    name: str
    runs: int  # repetitions of the cheaper scenarios
    heavy_runs: int  # repetitions of the long ones (dispatcher, scale)
    ceiling_count: int
    ceiling_concurrency: tuple[int, ...]
    db_ceiling_count: int
    seed_count: int
    drain_count: int
    worker_count: int
    sweep_count: int
    sweep: tuple[Settings, ...]
    scale_count: int
    latency_count: int
    sqlite_poll_interval: float
    memory_marks: tuple[int, ...]
    claim_sent_rows: tuple[int, ...]
    claim_repeats: int
    peer_count: int = 50_000  # scenario 9: pgqueuer vs drain


@dataclass
class Bench:
    profile: Profile
    url: str  # the nginx receiver's base URL
    log: ReceiverLog
    databases: list[BenchDatabase]
    workdir: Path
    recommended: Settings
    report: Report = field(default_factory=Report)
    figures: dict[str, float] = field(default_factory=dict)
    curves: list[Series] = field(default_factory=list)  # RSS against messages, per database
    _paths: itertools.count[int] = field(default_factory=itertools.count)

    def path(self, label: str) -> str:
        """A receiver path of its own for one run, so its arrivals can be told apart."""
        safe = re.sub(r"[^A-Za-z0-9_-]", "", label)  # a database name may hold spaces
        return f"/{safe}-{next(self._paths)}"

    @property
    def postgres(self) -> BenchDatabase:
        return next(db for db in self.databases if db.is_postgres)

    def child_log(self, label: str) -> Path:
        return self.workdir / f"{label}.log"
