"""The CRM storage contract suite against every backend revcrm ships."""

from __future__ import annotations

from revcrm.storage._crm import CRMStore, InMemoryCRMStore
from revcrm.testing.crm_contract import CRMStoreContract


class TestInMemoryCRMStore(CRMStoreContract):
    def make_crm_store(self) -> CRMStore:
        return InMemoryCRMStore()
