"""`outbox dashboard` as a process: binding rules, and no secret on any page."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from application.ports import NewMessage
from tests.integration.http_servers import closed_port
from tests.integration.sql_stores import migrated_store

ROOT = Path(__file__).resolve().parents[3]
SECRET = "whsec_" + "c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw=="
TARGET = "http://hookuser:hunter2-password@127.0.0.1:9/hooks?api_key=query-secret-123"


def environment(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOX_")}
    env.update(OUTBOX_DATABASE_URL=url, **extra)
    return env


@pytest.fixture
def running(sqlite_url: str) -> Iterator[str]:
    store = migrated_store(sqlite_url)
    store.enqueue([NewMessage(user_id=1, body="hello")])
    store.close()
    port = closed_port()
    env = environment(sqlite_url, OUTBOX_SIGNING_SECRET=SECRET, OUTBOX_TARGET_URL=TARGET)
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints", "dashboard", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "dashboard on http://127.0.0.1" in line, (
            process.stderr.read() if process.stderr else ""
        )
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_without_a_token_it_refuses_to_bind_beyond_loopback(sqlite_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "entrypoints", "dashboard", "--host", "0.0.0.0"],
        cwd=ROOT, env=environment(sqlite_url), capture_output=True, text=True, timeout=60,
    )  # fmt: skip

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "outbox: error: refusing to serve the dashboard on 0.0.0.0 without "
        "OUTBOX_DASHBOARD_TOKEN: set a token, or bind to 127.0.0.1"
    ]


def test_no_page_shows_the_signing_secret_or_a_password(running: str) -> None:
    paths = ["/", "/messages", "/messages/1", "/retry", "/login", "/messages?user_id=x"]

    pages = [httpx.get(running + path) for path in paths]

    assert [p.status_code for p in pages] == [200, 200, 200, 200, 200, 400]
    text = "".join(p.text for p in pages)
    for secret in (SECRET, SECRET[6:], "hunter2-password", "query-secret-123", "hookuser"):
        assert secret not in text
    assert "hello" in pages[2].text
    assert "http://127.0.0.1:9/hooks" in pages[0].text  # the target, without its credentials
