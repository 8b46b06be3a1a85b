"""The per-customer CRM operations follow one table list in both stores."""

from __future__ import annotations

from revcrm.storage import InMemoryCRMStore
from revcrm.storage._crm_tables import CUSTOMER_TABLES, delete_rows, erase_rows, rehome_rows


def test_the_memory_store_keeps_every_listed_table() -> None:
    store = InMemoryCRMStore()
    for specs in CUSTOMER_TABLES.values():
        for spec in specs:
            assert isinstance(store.collection(spec.name), dict | list), spec.name


def test_every_group_runs_on_an_empty_memory_store() -> None:
    store = InMemoryCRMStore()
    for group in CUSTOMER_TABLES:
        assert rehome_rows(store, group, "a", "b") == 0
        assert erase_rows(store, group, "a") == 0
        assert delete_rows(store, group, "a") == 0
