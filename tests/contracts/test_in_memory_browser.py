import pytest

from adapters.in_memory import InMemoryOutboxStore
from adapters.in_memory_browse import InMemoryOutboxBrowser
from tests.contracts.browser_contract import OutboxBrowserContract


class TestInMemoryOutboxBrowser(OutboxBrowserContract):
    @pytest.fixture
    def store(self) -> InMemoryOutboxStore:
        return InMemoryOutboxStore()

    @pytest.fixture
    def browser(self, store: InMemoryOutboxStore) -> InMemoryOutboxBrowser:
        return InMemoryOutboxBrowser(store)
