from collections.abc import Iterator

import pytest

from adapters.sql.store import SqlOutboxStore
from tests.integration.sql_stores import SqlStoreContract, migrated_store

pytestmark = pytest.mark.postgres


class TestPostgresOutboxStore(SqlStoreContract):
    @pytest.fixture
    def store(self, pg_url: str) -> Iterator[SqlOutboxStore]:
        store = migrated_store(pg_url)
        yield store
        store.close()
