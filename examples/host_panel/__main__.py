"""A short demo: the panel in SQLite with revcrm's tables beside it, a few months of work."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import sqlalchemy as sa

from revcrm.storage import SQLStore

from . import HostPanel, sync_all


def main() -> None:
    engine = sa.create_engine("sqlite://", poolclass=sa.StaticPool)
    panel = HostPanel(engine)
    panel.create_tables()
    panel.seed()
    store = SQLStore.from_engine(engine, prefix="rc_")
    store.create_schema()
    print(sync_all(engine, store, datetime(2024, 1, 5, 2, 0))["services"])
    panel.set_service(11, amount=Decimal("20.00"))
    panel.set_service(12, domainstatus="Suspended")
    report = sync_all(engine, store, datetime(2024, 2, 5, 2, 0))["services"]
    print(f"changed {report.changed}: {[c.change.kind.value for c in report.changes]}")
    for month_end in (date(2024, 1, 31), date(2024, 2, 29)):
        print(month_end, store.mrr(at=month_end, currency="USD"))


if __name__ == "__main__":
    main()
