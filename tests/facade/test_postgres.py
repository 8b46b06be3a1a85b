"""The facade's merge and erasure on PostgreSQL (SQLStore + SQLCRMStore sharing its units
of work)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from revcrm._facade import CRM
from revcrm.storage import SQLStore
from revcrm.storage._crm_sql import SQLCRMStore
from tests.facade.test_facade import (
    BOOK,
    _Clock,
    _paying,
    _totals,
)


@pytest.fixture
def pg_crm(postgres_url: str) -> Iterator[CRM]:
    tag = uuid.uuid4().hex[:10]
    store = SQLStore(postgres_url, prefix=f"f{tag}_")
    store.create_schema()
    # One database, one unit of work: merge and erasure are atomic across both stores.
    crm_store = SQLCRMStore.alongside(store, prefix=f"f{tag}_crm_")
    crm_store.create_schema()
    store.import_book(BOOK)
    yield CRM(store, crm_store, reporting_currency="USD", clock=_Clock())
    crm_store.drop_schema()
    crm_store.close()
    store.drop_schema()
    store.close()


@pytest.mark.postgres
def test_merge_then_anonymise_keeps_every_total(pg_crm: CRM) -> None:
    crm = pg_crm
    primary, secondary = _paying(crm)[:2]
    crm.notes.add(secondary, "call back", author_id="s1", id="n1")
    crm.tags.create("VIP")
    crm.tags.assign(secondary, "VIP", staff_id="s1")
    before = _totals(crm)
    crm.merge(primary, secondary, staff_id="s9")
    assert _totals(crm) == before
    assert crm.crm.notes.get("n1").customer_id == primary
    crm.erase(primary, staff_id="dpo")
    assert _totals(crm) == before
    assert crm.store.customers.get(primary).email is None
    assert crm.customers.profile(primary, as_of=crm.now()).tags == ("VIP",)


@pytest.mark.postgres
def test_delete_and_a_rolled_back_merge_on_one_database(pg_crm: CRM) -> None:
    crm = pg_crm
    primary, secondary, third = _paying(crm)[:3]
    crm.notes.add(third, "to be deleted", author_id="s1", id="n3")
    crm.erase(third, mode="delete")
    assert crm.store.customers.find(third) is None
    assert crm.crm.notes.find("n3") is None
    crm.notes.add(secondary, "stays put", author_id="s1", id="n2")
    before = _totals(crm)

    # A failure after the billing rows moved rolls back the billing and the CRM rows.
    def merge_then_abort() -> None:
        with crm.store.transaction():
            crm.merge(primary, secondary, staff_id="s9")
            raise RuntimeError("host aborts")

    with pytest.raises(RuntimeError):
        merge_then_abort()
    assert _totals(crm) == before
    assert crm.store.customers.find(secondary) is not None
    assert crm.crm.notes.get("n2").customer_id == secondary
