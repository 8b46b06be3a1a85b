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


class _BillingContract(CRMStoreContract):
    """CRM stores sharing one billing SQLStore's units of work: a CRM schema (prefix) per
    store, the billing store built once per class (its schema is the slow part)."""

    billing: SQLStore

    @pytest.fixture(autouse=True)
    def _drop_made(self) -> Iterator[None]:
        self._made: list[SQLCRMStore] = []
        yield
        for store in self._made:
            store.drop_schema()

    def make_crm_store(self) -> CRMStore:
        store = SQLCRMStore.alongside(type(self).billing, prefix=f"c{uuid.uuid4().hex[:12]}_")
        store.create_schema()
        self._made.append(store)
        return store


@pytest.fixture(scope="class")
def sqlite_billing(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    path = tmp_path_factory.mktemp("billing") / "revcrm.db"
    billing = SQLStore(f"sqlite:///{path}")
    billing.create_schema()
    request.cls.billing = billing
    yield
    billing.close()


@pytest.fixture(scope="class")
def postgres_billing(request: pytest.FixtureRequest, postgres_url: str) -> Iterator[None]:
    billing = SQLStore(postgres_url, prefix=f"b{uuid.uuid4().hex[:12]}_")
    billing.create_schema()
    request.cls.billing = billing
    yield
    billing.drop_schema()
    billing.close()


@pytest.mark.usefixtures("sqlite_billing")
class TestSQLiteBillingCRMStore(_BillingContract):
    pass


@pytest.mark.postgres
@pytest.mark.usefixtures("postgres_billing")
class TestPostgresBillingCRMStore(_BillingContract):
    pass


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
