"""The reference integration (examples/host_panel) run over months, on SQLite and PostgreSQL.

The panel's tables and revcrm's (prefix ``rc_``) share one database. After every nightly
sync the MRR of each month already closed must be what it was when first computed, a
re-sync of unchanged rows writes nothing, and the panel's own writes behave as before.
"""

from __future__ import annotations

import importlib
import sys
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from revcrm import Money
from revcrm.storage import SQLStore

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
host_panel: Any = importlib.import_module("examples.host_panel")
schema: Any = importlib.import_module("examples.host_panel.schema")

USD = "USD"


@pytest.fixture(params=["sqlite", "postgresql"])
def host_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'panel.db'}")
        yield engine
        engine.dispose()
        return
    url = request.getfixturevalue("postgres_url")
    name = f"panel_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(url)
    with admin.begin() as c:
        c.exec_driver_sql(f"CREATE SCHEMA {name}")
    engine = sa.create_engine(url, connect_args={"options": f"-csearch_path={name}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as c:
            c.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        admin.dispose()


def host_orphan_insert(engine: sa.Engine, item_id: int) -> None:
    """A panel write: on SQLite the panel never enforced its declared foreign keys, so a
    line of an invoice not written yet is accepted; PostgreSQL always enforces them, so
    there the line goes to an existing invoice."""
    invoice = 999_999 if engine.dialect.name == "sqlite" else 1100
    with Session(engine) as s, s.begin():
        s.add(
            schema.InvoiceItem(
                id=item_id, invoiceid=invoice, type="Item", description="x", amount=Decimal(1)
            )
        )


def versions(store: SQLStore) -> dict[str, int]:
    out: dict[str, int] = {}
    for kind, repo in (
        ("s", store.subscriptions),
        ("i", store.invoices),
        ("t", store.transactions),
        ("c", store.customers),
    ):
        for key in [f"{n}" for n in range(1, 20)] + [f"{n}" for n in range(1100, 1400)]:
            found = repo.find(key)
            if found is not None:
                out[f"{kind}{key}"] = repo.get_versioned(key).version
    for sid in ("11", "12", "13"):
        out[f"s{sid}"] = store.subscriptions.get_versioned(sid).version
    return out


def month_starts(until: datetime) -> list[date]:
    out, d = [], date(2023, 12, 1)
    while datetime(d.year, d.month, d.day) < until:
        out.append(d)
        d = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return out


def test_host_panel_over_months(host_engine: sa.Engine) -> None:
    panel = host_panel.HostPanel(host_engine)
    panel.create_tables()
    panel.seed()
    host_orphan_insert(host_engine, 5_000_000)  # works before revcrm is installed

    store = SQLStore.from_engine(host_engine, prefix="rc_")
    store.create_schema()
    seen: dict[date, Money] = {}

    def nightly(at: datetime) -> dict[str, Any]:
        reports: dict[str, Any] = host_panel.sync_all(host_engine, store, at)
        for close in month_starts(at):
            mrr = store.mrr(at=close, currency=USD)
            assert seen.setdefault(close, mrr) == mrr, f"MRR of {close} changed at {at}"
        return reports

    first = nightly(datetime(2024, 1, 5, 2))
    assert (first["customers"].created, first["services"].created) == (2, 2)
    assert store.mrr(at=date(2024, 1, 1), currency=USD) == Money("30", USD)

    panel.register(3, "Grace", "Hopper", datetime(2024, 1, 10, 8))
    panel.buy(13, 3, 2, Decimal("30.00"), "Monthly", date(2024, 1, 10))
    nightly(datetime(2024, 1, 11, 2))
    panel.set_service(11, amount=Decimal("20.00"))  # upgrade
    up = nightly(datetime(2024, 2, 11, 2))["services"]
    assert [c.change.kind.value for c in up.changes] == ["plan_changed"]
    panel.set_service(12, domainstatus="Suspended")
    nightly(datetime(2024, 3, 6, 2))
    assert store.mrr(at=date(2024, 4, 1), currency=USD) == Money("50", USD)
    panel.set_service(12, domainstatus="Active")  # unsuspended
    nightly(datetime(2024, 4, 8, 2))
    panel.set_service(13, cancel_requested_at=datetime(2024, 5, 3, 15))
    nightly(datetime(2024, 5, 4, 2))
    panel.set_service(13, domainstatus="Cancelled", termination_date=date(2024, 5, 10))
    nightly(datetime(2024, 5, 11, 2))
    assert store.mrr(at=date(2024, 6, 1), currency=USD) == Money("40", USD)

    panel.invoice(1150, 1, 11, Decimal("20.00"), date(2024, 6, 2), date(2024, 7, 2), paid=False)
    tx = panel.pay(1150, datetime(2024, 6, 2, 12), pending=True)
    nightly(datetime(2024, 6, 3, 2))
    assert store.transactions.get(str(tx)).status.value == "pending"
    panel.confirm(tx, datetime(2024, 6, 4, 9))
    paid = nightly(datetime(2024, 6, 5, 2))
    assert (paid["transactions"].changed, paid["invoices"].changed) == (1, 1)
    assert store.invoices.get("1150").status.value == "paid"
    panel.refund(1300, datetime(2024, 6, 10, 16))
    panel.add_credit(1, 3, date(2024, 6, 10), Decimal("5.00"), "goodwill")
    refund = nightly(datetime(2024, 6, 11, 2))
    assert refund["transactions"].created == 1
    assert refund["credits"].created == 1

    before = versions(store)
    again = nightly(datetime(2024, 6, 12, 2))
    assert all(r.written == 0 for r in again.values()), again
    assert again["services"].unchanged == 3
    assert versions(store) == before

    host_orphan_insert(host_engine, 7_000_000)  # and still works with revcrm beside it
    if host_engine.dialect.name == "sqlite":
        with host_engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
