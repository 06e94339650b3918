"""`outbox drain` / `outbox worker` as child processes: environment, CPU time, RSS."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass(frozen=True)
class Settings:
    batch_size: int
    concurrency: int

    def label(self) -> str:
        return f"batch {self.batch_size}, concurrency {self.concurrency}"


def outbox_env(
    database_url: str, target_url: str, settings: Settings, **extra: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
    env.update(
        OUTBOX_DATABASE_URL=database_url,
        OUTBOX_TARGET_URL=target_url,
        OUTBOX_ALLOW_PRIVATE_TARGETS="true",
        OUTBOX_SIGNING_SECRET=SECRET,
        OUTBOX_BATCH_SIZE=str(settings.batch_size),
        OUTBOX_CONCURRENCY=str(settings.concurrency),
        OUTBOX_LOG_FORMAT="text",
    )
    env.update(extra)
    return env


@dataclass(frozen=True)
class Finished:
    wall_seconds: float
    cpu_seconds: float
    returncode: int


class Child:
    """One `python -m entrypoints <command>`; its CPU time is read from wait4 when it exits."""

    def __init__(
        self, command: str, env: dict[str, str], log: Path, argv: list[str] | None = None
    ) -> None:
        self._log = log.open("ab")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            argv
            or [
                sys.executable,
                "-m",
                "entrypoints",
                command,
                *(["--no-progress"] if command == "drain" else []),
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_kib(self) -> dict[str, int]:
        """VmRSS, its anonymous / file / shared parts and VmHWM (peak) of the child, in KiB."""
        fields: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem"):
                fields[name] = int(value.split()[0])
        return fields

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 600.0) -> Finished:
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"child {self.pid} did not exit within {timeout:g} s")
            time.sleep(0.01)
        wall = time.perf_counter() - self.started
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self._log.close()
        return Finished(wall, usage.ru_utime + usage.ru_stime, self.process.returncode)


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, step: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def source_trees(
    parser: argparse.ArgumentParser, before: Path | None, after: Path
) -> dict[str, Path]:
    """{"before": …, "after": …} (before only when given), each checked to be a `src` tree:
    the children put it first on PYTHONPATH, else the editable install's tree would run."""
    trees = {"after": after.resolve()}
    if before is not None:
        trees = {"before": before.resolve(), **trees}
    for src in trees.values():
        if not (src / "entrypoints").is_dir():
            parser.error(f"{src} is not a src directory (no entrypoints/ in it)")
    return trees
