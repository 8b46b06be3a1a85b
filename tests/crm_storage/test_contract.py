"""The CRM storage contract suite against every backend revcrm ships."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from revcrm.storage import SQLStore
from revcrm.storage._crm import CRMStore, InMemoryCRMStore
from revcrm.storage._crm_sql import SQLCRMStore
from revcrm.testing.crm_contract import CRMStoreContract


class TestInMemoryCRMStore(CRMStoreContract):
    def make_crm_store(self) -> CRMStore:
        return InMemoryCRMStore()


class TestSQLiteMemoryCRMStore(CRMStoreContract):
    def make_crm_store(self) -> CRMStore:
        store = SQLCRMStore("sqlite://")
        store.create_schema()
        return store


class TestSQLiteFileCRMStore(CRMStoreContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self._dir = tmp_path

    def make_crm_store(self) -> CRMStore:
        store = SQLCRMStore(f"sqlite:///{self._dir}/crm-{uuid.uuid4().hex[:8]}.db")
        store.create_schema()
        return store


class TestSQLiteBillingCRMStore(CRMStoreContract):
    """The CRM store sharing a billing SQLStore's units of work (one file database)."""

    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> Iterator[None]:
        self._dir = tmp_path
        self._billing: list[SQLStore] = []
        yield
        for store in self._billing:
            store.close()

    def make_crm_store(self) -> CRMStore:
        billing = SQLStore(f"sqlite:///{self._dir}/revcrm-{uuid.uuid4().hex[:8]}.db")
        billing.create_schema()
        self._billing.append(billing)
        store = SQLCRMStore.alongside(billing)
        store.create_schema()
        return store


@pytest.mark.postgres
class TestPostgresBillingCRMStore(CRMStoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, postgres_url: str) -> Iterator[None]:
        self._url = postgres_url
        self._made: list[tuple[SQLStore, SQLCRMStore]] = []
        yield
        for billing, crm in self._made:
            crm.drop_schema()
            billing.drop_schema()
            billing.close()

    def make_crm_store(self) -> CRMStore:
        tag = uuid.uuid4().hex[:12]
        billing = SQLStore(self._url, prefix=f"b{tag}_")
        billing.create_schema()
        store = SQLCRMStore.alongside(billing, prefix=f"b{tag}_crm_")
        store.create_schema()
        self._made.append((billing, store))
        return store


@pytest.mark.postgres
class TestPostgresCRMStore(CRMStoreContract):
    @pytest.fixture(autouse=True)
    def _server(self, postgres_url: str) -> Iterator[None]:
        self._url = postgres_url
        self._made: list[SQLCRMStore] = []
        yield
        for store in self._made:
            store.drop_schema()
            store.close()

    def make_crm_store(self) -> CRMStore:
        # A table prefix per store keeps tests apart inside one throwaway database.
        store = SQLCRMStore(self._url, prefix=f"t{uuid.uuid4().hex[:12]}_")
        store.create_schema()
        self._made.append(store)
        return store
