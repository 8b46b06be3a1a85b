"""SQLCRMStore specifics: construction, schema, repr, exact money."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from revcrm import Money
from revcrm.crm import Note
from revcrm.errors import StorageError, ValidationError
from revcrm.leads import Lead
from revcrm.storage._crm_sql import SQLCRMStore

_T0 = datetime(2024, 1, 1, tzinfo=UTC)


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


def test_a_hosts_engine_keeps_its_connection_settings(tmp_path: Path) -> None:
    """SQLCRMStore on a host's engine (issue 11.4): the host's connections keep their
    settings (foreign keys off, secure delete off here) before and after revcrm's work,
    which turns secure delete on for its own writes only."""
    engine = sa.create_engine(f"sqlite:///{tmp_path}/host.db")

    @sa.event.listens_for(engine, "connect")
    def _host_settings(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA secure_delete=0")

    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE host_users (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql(
            "CREATE TABLE host_services (id INTEGER PRIMARY KEY, "
            "user_id INTEGER REFERENCES host_users(id))"
        )

    def host_insert(service_id: int) -> tuple[int, int]:
        # An orphan row the host's own code writes (foreign keys are off in its engine).
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"INSERT INTO host_services (id, user_id) VALUES ({service_id}, 999)"
            )
            fk = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
            secure = conn.exec_driver_sql("PRAGMA secure_delete").scalar()
        return int(fk or 0), int(secure or 0)

    assert host_insert(1) == (0, 0)
    store = SQLCRMStore(engine, prefix="crm_")
    store.create_schema()
    note = Note.create(id="n1", customer_id="c1", author_id="s1", body="hi", at=_T0)
    store.notes.add(note)
    with store.transaction():
        store.notes.erase_customer("c1")
        with store.engine.connect() as other:  # another pooled connection meanwhile
            assert other.exec_driver_sql("PRAGMA secure_delete").scalar() == 0
    store.scrub()
    assert host_insert(2) == (0, 0)
    assert store.notes.get("n1").body == "[erased]"
    engine.dispose()


def test_lead_cursors_are_signed_with_the_store_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/crm.db"
    key = b"k" * 32
    first = SQLCRMStore(url, cursor_secret=key)
    first.create_schema()
    for i in range(3):
        first.leads.add(Lead(id=f"l{i}", email=f"{i}@example.com", created_at=_T0))
    cursor = first.leads.page(limit=1).next_cursor
    assert cursor is not None
    # Another process with the same key continues the listing; one without it refuses.
    same = SQLCRMStore(url, cursor_secret=key)
    assert [x.id for x in same.leads.page(limit=1, cursor=cursor).items] == ["l1"]
    other = SQLCRMStore(url)
    with pytest.raises(ValidationError, match="cursor"):
        other.leads.page(limit=1, cursor=cursor)
    with pytest.raises(ValidationError, match="cursor_secret"):
        SQLCRMStore(url, cursor_secret=b"short")
    for store in (first, same, other):
        store.close()


def test_a_joined_store_signs_with_the_billing_key(tmp_path: Path) -> None:
    from revcrm.storage import SQLStore

    billing = SQLStore(f"sqlite:///{tmp_path}/b.db", cursor_secret=b"b" * 32)
    billing.create_schema()
    crm = SQLCRMStore.alongside(billing)
    crm.create_schema()
    for i in range(2):
        crm.leads.add(Lead(id=f"l{i}", email=f"{i}@example.com", created_at=_T0))
    cursor = crm.leads.page(limit=1).next_cursor
    assert cursor is not None
    again = SQLCRMStore(billing.engine, cursor_secret=b"b" * 32)
    assert [x.id for x in again.leads.page(limit=1, cursor=cursor).items] == ["l1"]
    with pytest.raises(ValidationError), billing.transaction():
        crm.scrub()
    billing.close()
