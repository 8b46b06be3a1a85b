"""Temporary home of the delete contract until it joins StoreContract."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from revcrm.storage import InMemoryStore, SQLStore, Store
from revcrm.testing._delete_contract import DeleteContract


class TestInMemory(DeleteContract):
    def make_store(self) -> Store:
        return InMemoryStore()


class TestSQLiteFile(DeleteContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self._dir = tmp_path

    def make_store(self) -> Store:
        store = SQLStore(f"sqlite:///{self._dir}/{uuid.uuid4().hex}.db")
        store.create_schema()
        return store


@pytest.mark.postgres
class TestPostgres(DeleteContract):
    @pytest.fixture(autouse=True)
    def _server(self, postgres_url: str) -> Iterator[None]:
        self._url = postgres_url
        self._made: list[SQLStore] = []
        yield
        for store in self._made:
            store.drop_schema()

    def make_store(self) -> Store:
        store = SQLStore(self._url, prefix=f"d{uuid.uuid4().hex[:12]}_")
        store.create_schema()
        self._made.append(store)
        return store
