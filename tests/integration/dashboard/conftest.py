"""A real headless Chromium (Debian's, driven by Selenium) and a dashboard served on 127.0.0.1."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from adapters.clock import SystemClock
from adapters.sql.browse import SqlOutboxBrowser
from adapters.sql.store import SqlOutboxStore
from application.ports import Clock
from entrypoints.dashboard.app import Dashboard, make_app
from tests.integration.http_servers import serving
from tests.integration.sql_stores import migrated_store

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1280,900",
)  # fmt: skip


@pytest.fixture(scope="session")
def chrome() -> Iterator[webdriver.Chrome]:
    """One browser for the session; the system's Chromium, never a downloaded one."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver (apt-get)")
    profile = tempfile.mkdtemp(prefix="outbox-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def driver(chrome: webdriver.Chrome) -> webdriver.Chrome:
    """The session's browser with no cookies left from an earlier test."""
    chrome.delete_all_cookies()
    return chrome


@pytest.fixture
def store(sqlite_url: str) -> Iterator[SqlOutboxStore]:
    store = migrated_store(sqlite_url)
    yield store
    store.close()


@contextlib.contextmanager
def dashboard(
    store: SqlOutboxStore, token: str | None = None, clock: Clock | None = None
) -> Iterator[str]:
    """The dashboard over `store` on a free 127.0.0.1 port; yields its base URL."""
    pages = Dashboard(
        browser=SqlOutboxBrowser(store),
        admin=store,
        clock=clock or SystemClock(),
        targets={"*": "http://127.0.0.1/hooks"},
        database="sqlite · table Messages",
    )
    with serving(make_app(pages, token)) as url:
        yield url
