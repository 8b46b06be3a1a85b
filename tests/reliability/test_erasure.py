"""Erasure leaves nothing personal readable (issue 12.5).

After ``crm.erase(mode="anonymise")`` and after ``mode="delete"``, none of the customer's
personal values (name, email, phone, username, company, notes, call summaries, contacts,
the notes staff wrote on its lead's moves, its subscriptions' details, free-text intake
answers) occurs in the raw bytes of the SQLite database, its ``-wal`` and ``-shm`` files,
read while the application still holds its connections open, nor in any text column of
any revcrm table on PostgreSQL. Anonymising leaves every metric as it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from revcrm import BillingCycle, Customer, Money, Subscription
from revcrm._facade import CRM
from revcrm.crm import Contact, IntakeQuestion
from revcrm.leads import Lead
from revcrm.storage import SQLStore
from revcrm.storage._crm import ERASED_TEXT
from revcrm.storage._crm_sql import SQLCRMStore

T0 = datetime(2024, 2, 1, 9, tzinfo=UTC)
AS_OF = datetime(2024, 6, 1, tzinfo=UTC)


def _values(tag: str) -> dict[str, str]:
    """Personal values unique to one customer (``tag``), easy to find in raw bytes."""
    return {
        "name": f"Zelda Quixote{tag}",
        "email": f"zq{tag}-victim@example.com",
        "phone": f"+44 7700 9{tag}",
        "username": f"zquser{tag}",
        "company": f"Quixotic{tag} Ltd",
        "website": f"https://zq{tag}.example.org",
        "note": f"rang Zelda{tag} at home",
        "call": f"spoke with Zelda{tag} about billing",
        "contact": f"Zebulon{tag} Quixote",
        "lead note": f"emailed zq{tag}-victim@example.com",
        "lost reason": f"Zelda{tag} went elsewhere",
        "details": f"zquser{tag}.hosting.example",
        "intake": f"my bakery Zelda{tag}",
        "attribute": f"nick-zq{tag}",
    }


class _Clock:
    def __init__(self) -> None:
        self.now = AS_OF

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def _populate(crm: CRM, cid: str, v: dict[str, str]) -> None:
    """A customer with every kind of personal value revcrm stores."""
    crm.crm.leads.add(
        Lead(
            id=f"lead-{cid}",
            email=v["email"],
            name=v["name"],
            phone=v["phone"],
            company=v["company"],
            notes=v["lead note"],
            created_at=T0 - timedelta(days=9),
        )
    )
    crm.leads.move(
        f"lead-{cid}",
        "lost",
        staff_id="s1",
        at=T0 - timedelta(days=8),
        lost_reason=v["lost reason"],
    )
    crm.leads.move(f"lead-{cid}", "new", staff_id="s1", at=T0 - timedelta(days=7))
    crm.leads.move(
        f"lead-{cid}", "contacted", staff_id="s1", at=T0 - timedelta(days=5), note=v["lead note"]
    )
    customer = Customer(
        id=cid,
        registered_at=T0,
        email=v["email"],
        username=v["username"],
        name=v["name"],
        company=v["company"],
        phone=v["phone"],
        website=v["website"],
        custom_attributes={"nickname": v["attribute"]},
    )
    crm.store.customers.upsert(customer)
    assert crm.leads.match_registration(customer) is not None
    crm.store.subscriptions.upsert(
        Subscription.start(
            id=f"sub-{cid}",
            customer_id=cid,
            at=T0,
            price=Money("30", "USD"),
            cycle=BillingCycle.MONTHLY,
            details=(("server", v["details"]), ("node", "node-a")),
        )
    )
    crm.notes.add(cid, v["note"], author_id="s1", at=T0 + timedelta(days=1))
    crm.calls.log(cid, v["call"], staff_id="s1", at=T0 + timedelta(days=2))
    crm.contacts.save(Contact(id=f"ct-{cid}", customer_id=cid, name=v["contact"], email=v["email"]))
    crm.intake.answer(cid, "why", v["intake"], at=T0 + timedelta(days=3))


def _crm(store: SQLStore, crm_store: SQLCRMStore) -> CRM:
    crm = CRM(store, crm_store, reporting_currency="USD", clock=_Clock())
    crm.intake.define(IntakeQuestion.free_text(id="why", prompt="Why us?"))
    return crm


def _found_in_files(db: Path, values: dict[str, str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for suffix in ("", "-wal", "-shm"):
        path = Path(f"{db}{suffix}")
        raw = path.read_bytes() if path.exists() else b""
        hits = [k for k, value in values.items() if value.encode() in raw]
        if hits:
            found[path.name] = hits
    return found


@pytest.fixture
def sqlite_crm(tmp_path: Path) -> Iterator[tuple[CRM, Path]]:
    db = tmp_path / "panel.db"
    store = SQLStore(f"sqlite:///{db}")
    store.create_schema()
    crm_store = SQLCRMStore.alongside(store)
    crm_store.create_schema()
    yield _crm(store, crm_store), db
    store.close()


def test_sqlite_files_hold_no_erased_value(sqlite_crm: tuple[CRM, Path]) -> None:
    crm, db = sqlite_crm
    anon, gone = _values("001"), _values("002")
    _populate(crm, "c-anon", anon)
    _populate(crm, "c-gone", gone)
    # The values are in the files before (or the check below could not fail).
    assert _found_in_files(db, anon)
    before = crm.metrics.dashboard(as_of=AS_OF)

    crm.erase("c-anon", staff_id="dpo")
    assert crm.metrics.dashboard(as_of=AS_OF) == before  # anonymising keeps every metric
    crm.erase("c-gone", mode="delete")

    # Read while the stores' connections are still open (the pool holds them).
    assert _found_in_files(db, anon) == {}
    assert _found_in_files(db, gone) == {}


def test_erased_values_are_gone_from_reads(sqlite_crm: tuple[CRM, Path]) -> None:
    crm, _ = sqlite_crm
    v = _values("003")
    _populate(crm, "c1", v)
    crm.erase("c1")
    lead = crm.crm.leads.lead_for_customer("c1")
    assert lead is not None
    assert [t.note for t in lead.history if t.note] == [ERASED_TEXT, ERASED_TEXT]
    assert [t.lost_reason for t in lead.history if t.lost_reason] == [ERASED_TEXT]
    profile = crm.customers.profile("c1", as_of=AS_OF)
    text = repr(profile) + repr(crm.customers.timeline("c1", as_of=AS_OF))
    assert [k for k, value in v.items() if value in text] == []
    # The details keep their keys (the profile says which details the service had).
    assert crm.store.subscriptions.get("sub-c1").details == (
        ("server", ERASED_TEXT),
        ("node", ERASED_TEXT),
    )


@pytest.mark.postgres
def test_postgres_columns_hold_no_erased_value(postgres_url: str) -> None:
    prefix = f"e{uuid.uuid4().hex[:10]}_"
    store = SQLStore(postgres_url, prefix=prefix)
    store.create_schema()
    crm_store = SQLCRMStore.alongside(store, prefix=f"{prefix}crm_")
    crm_store.create_schema()
    try:
        crm = _crm(store, crm_store)
        anon, gone = _values("004"), _values("005")
        _populate(crm, "c-anon", anon)
        _populate(crm, "c-gone", gone)
        assert _found_in_columns(store.engine, prefix, anon)
        before = crm.metrics.dashboard(as_of=AS_OF)
        crm.erase("c-anon", staff_id="dpo")
        assert crm.metrics.dashboard(as_of=AS_OF) == before
        crm.erase("c-gone", mode="delete")
        assert _found_in_columns(store.engine, prefix, anon) == {}
        assert _found_in_columns(store.engine, prefix, gone) == {}
    finally:
        crm_store.drop_schema()
        store.drop_schema()
        store.close()


def _found_in_columns(
    engine: sa.Engine, prefix: str, values: dict[str, str]
) -> dict[str, list[str]]:
    """Every text-like column of every table under ``prefix``, searched for the values."""
    found: dict[str, list[str]] = {}
    inspector = sa.inspect(engine)
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            if not table.startswith(prefix):
                continue
            for column in inspector.get_columns(table):
                if not isinstance(column["type"], (sa.String, sa.Text, sa.JSON, sa.LargeBinary)):
                    continue
                q = sa.text(f'SELECT CAST("{column["name"]}" AS text) FROM "{table}"')
                cells = [r[0] for r in conn.execute(q) if r[0] is not None]
                hits = [k for k, value in values.items() if any(value in c for c in cells)]
                if hits:
                    found[f"{table}.{column['name']}"] = hits
    return found
