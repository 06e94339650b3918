from typing import Any

import pytest

from adapters.in_memory import InMemoryOutboxStore
from tests.contracts.store_contract import OutboxStoreContract, evolve_pending


class TestInMemoryOutboxStore(OutboxStoreContract):
    @pytest.fixture
    def store(self) -> InMemoryOutboxStore:
        return InMemoryOutboxStore()

    def upstream_resend(self, store: Any, message_id: int) -> None:
        store.insert(evolve_pending(store.get(message_id)))
