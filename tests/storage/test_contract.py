"""The storage contract suite against every backend revcrm ships."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from revcrm.storage import InMemoryStore, SQLStore, Store
from revcrm.testing.contract import StoreContract


class TestInMemoryStore(StoreContract):
    def make_store(self) -> Store:
        return InMemoryStore()


class TestSQLiteMemoryStore(StoreContract):
    def make_store(self) -> Store:
        store = SQLStore("sqlite://")
        store.create_schema()
        return store


class TestSQLiteFileStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self._dir = tmp_path
        self._made = 0

    def make_store(self) -> Store:
        self._made += 1
        store = SQLStore(f"sqlite:///{self._dir}/store{self._made}.db")
        store.create_schema()
        return store

    def reopen(self, store: Store) -> Store:
        assert isinstance(store, SQLStore)
        return SQLStore(store.engine.url)  # a second engine: another connection to the file


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, postgres_url: str) -> Iterator[None]:
        self._url = postgres_url
        self._made: list[SQLStore] = []
        yield
        for store in self._made:
            store.drop_schema()
            store.close()

    def make_store(self) -> Store:
        # A table prefix per store keeps tests apart inside one throwaway database.
        store = SQLStore(self._url, prefix=f"t{uuid.uuid4().hex[:12]}_")
        store.create_schema()
        self._made.append(store)
        return store

    def reopen(self, store: Store) -> Store:
        assert isinstance(store, SQLStore)
        return SQLStore(self._url, prefix=store.prefix)
