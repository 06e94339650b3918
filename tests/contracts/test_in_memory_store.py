import attrs
import pytest

from adapters.in_memory import InMemoryOutboxStore
from domain.model import Message, State
from tests.contracts.store_contract import OutboxStoreContract


class TestInMemoryOutboxStore(OutboxStoreContract[InMemoryOutboxStore]):
    @pytest.fixture
    def store(self) -> InMemoryOutboxStore:
        return InMemoryOutboxStore()

    def upstream_resend(self, store: InMemoryOutboxStore, message_id: int) -> None:
        row = store.get(message_id)
        assert row is not None
        store.insert(attrs.evolve(row, state=State.PENDING))

    def emptied(self, store: InMemoryOutboxStore) -> InMemoryOutboxStore:
        return InMemoryOutboxStore()

    def all_rows(self, store: InMemoryOutboxStore) -> list[Message]:
        return store.all()
