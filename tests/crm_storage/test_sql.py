"""SQLCRMStore specifics: construction, schema, repr, exact money."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from revcrm import Money
from revcrm.errors import StorageError, ValidationError
from revcrm.leads import Lead
from revcrm.storage._crm_sql import SQLCRMStore


def test_prefix_is_checked() -> None:
    with pytest.raises(ValidationError, match="prefix"):
        SQLCRMStore("sqlite://", prefix="Bad-Prefix")


def test_url_is_checked() -> None:
    with pytest.raises(ValidationError, match="url"):
        SQLCRMStore("mysql://x/y")


def test_schema_is_idempotent_and_named_by_prefix(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/crm.db")
    store = SQLCRMStore(engine, prefix="crm_")
    assert store.engine is engine
    store.create_schema()
    store.create_schema()
    names = set(sa.inspect(engine).get_table_names())
    assert {"crm_notes", "crm_tags", "crm_leads", "crm_lead_transitions"} <= names
    assert "prefix='crm_'" in repr(store)
    store.drop_schema()
    assert not set(sa.inspect(engine).get_table_names())
    store.close()  # not its engine: left open for its owner
    engine.dispose()


def test_money_is_exact_text(tmp_path: Path) -> None:
    store = SQLCRMStore(f"sqlite:///{tmp_path}/crm.db")
    store.create_schema()
    value = Money("1234567890.123456789", "EUR")
    lead = Lead(
        id="l1",
        email="a@example.com",
        created_at=datetime(2024, 1, 1, tzinfo=UTC),
        expected_value=value,
    )
    store.leads.add(lead)
    assert store.leads.get("l1").expected_value == value
    with store.engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT expected_value_amount FROM revcrm_crm_leads")).scalar()
    assert raw == "1234567890.123456789"
    store.close()


def test_missing_tables_are_a_storage_error() -> None:
    store = SQLCRMStore("sqlite://")
    with pytest.raises(StorageError):
        store.notes.find("n1")
    store.close()
