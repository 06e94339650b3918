"""The throwaway PostgreSQL of a test session: it serves, and nothing of it outlives the session,
even a session killed outright (SIGKILL: no finalizer, no atexit)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.throwaway_pg import find_bindir, remove_orphans

ROOT = Path(__file__).resolve().parents[2]
BINDIR = find_bindir()
SESSION = (
    "import time\n"
    "from tests.throwaway_pg import ThrowawayPostgres, find_bindir, stop_on_exit\n"
    "server = ThrowawayPostgres(find_bindir())\n"
    "stop_on_exit(server)\n"
    "print(server.start(), server.home, server.process.pid, flush=True)\n"
    "time.sleep(300)\n"
)

pytestmark = pytest.mark.skipif(
    BINDIR is None, reason="no PostgreSQL server binaries (scripts/bootstrap installs them)"
)


def gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.1)
    return False


def test_a_session_ended_by_sigterm_or_killed_outright_leaves_no_server_or_directory() -> None:
    command = [sys.executable, "-c", SESSION]
    terminated, killed = (
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)
    )
    servers = [session_server(terminated), session_server(killed)]
    for url, home, _ in servers:
        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as conn:
            assert conn.execute("SELECT current_setting('fsync')").fetchone() == ("off",)
        assert home.is_dir()

    terminated.send_signal(signal.SIGTERM)  # its handler stops the server and deletes its files
    killed.send_signal(signal.SIGKILL)  # no handler runs: the kernel signals the server
    assert terminated.wait(60) == -signal.SIGTERM and killed.wait(10) == -signal.SIGKILL

    assert all(gone(pid, within=30) for _, _, pid in servers), "a server outlived its session"
    assert not servers[0][1].exists()
    remove_orphans()  # what the next session does first
    assert not servers[1][1].exists()


def session_server(session: subprocess.Popen[str]) -> tuple[str, Path, int]:
    assert session.stdout is not None
    url, home, pid = session.stdout.readline().split()
    return url, Path(home), int(pid)
