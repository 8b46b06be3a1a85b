"""The facade's merge and erasure on PostgreSQL (SQLStore + SQLCRMStore, one database)."""

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
    crm_store = SQLCRMStore(postgres_url, prefix=f"f{tag}_crm_")
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
