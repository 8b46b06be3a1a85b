"""Quickstart: turn a host panel's billing rows into MRR, a waterfall and a dashboard.

Run with ``python examples/quickstart.py``. A host application would read these rows from
its own database (or use a revcrm store); here they are literals.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from revcrm import (
    BillingCycle,
    Book,
    Customer,
    FxRates,
    Money,
    Subscription,
    Transaction,
    format_money,
)
from revcrm.metrics import analyse, dashboard, format_dashboard


def at(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def build_book() -> Book:
    customers = [
        Customer(id="1", email="ana@example.com", name="Ana", registered_at=at(2024, 1, 3)),
        Customer(id="2", email="bo@example.com", name="Bo", registered_at=at(2024, 2, 10)),
    ]
    vps = Subscription.start(
        id="svc-1", customer_id="1", at=at(2024, 1, 3), price=Money("40", "USD"),
        cycle=BillingCycle.MONTHLY, product_id="vps",
    ).change_plan(at(2024, 4, 3), price=Money("80", "USD"))
    hosting = Subscription.start(
        id="svc-2", customer_id="2", at=at(2024, 2, 10), price=Money("240", "EUR"),
        cycle=BillingCycle.ANNUAL, product_id="shared",
    )
    payments = [
        Transaction(
            id=f"tx-{m}", customer_id="1", kind="payment", status="succeeded",
            amount=Money("40" if m < 4 else "80", "USD"), method="stripe", at=at(2024, m, 3),
        )
        for m in range(1, 7)
    ]
    fx = FxRates.from_rates([(date(2024, 1, 1), "EUR", "USD", "1.08")])
    return Book.of(customers=customers, subscriptions=[vps, hosting], transactions=payments, fx=fx)


def main() -> None:
    book = build_book()
    analysis = analyse(book, currency="USD")
    now = at(2024, 6, 15)
    print("MRR:", format_money(analysis.mrr(now), locale="en_US"))
    w = analysis.waterfall(at(2024, 4, 1), at(2024, 5, 1))
    assert w.start_mrr + w.net_movements + w.fx_impact == w.end_mrr
    print("April expansion:", format_money(w.expansion, locale="en_US"))
    print(format_dashboard(dashboard(book, as_of=now, currency="USD"), locale="en_US"))


if __name__ == "__main__":
    main()
