"""The ledger's cash, service-state and customer-fact rows against the rules they
aggregate: each row type is the contract a SQL store keeps as a table, so each is checked
against the record-level rule it stands for (never a second copy of that rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from revcrm import Book
from revcrm._crm_services import is_active_service, is_troubled_service, pending_cancellation
from revcrm._ledger._cash import moment_us
from revcrm._ledger._fixed import to_decimal
from revcrm._ledger._rows import CashEntry, CashKind, CustomerFacts, ServiceState
from revcrm.metrics import MetricsPolicy
from revcrm.metrics._customer_value import customer_values, ledger_rows
from revcrm.testing import strategies as rs
from revcrm.testing._contract_book import AS_OF, sample_book

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _dt(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _check_rows(book: Book, at: datetime, currency: str) -> None:
    ledger = ledger_rows(book, as_of=at, currency=currency, policy=MetricsPolicy())
    # Cash: every successful transaction (and credit entry) up to ``at`` once, each
    # converted at its own date exactly.
    cash = list(ledger.cash.rows())
    assert all(isinstance(r, CashEntry) for r in cash)
    by_id = {(r.kind, r.entry_id): r for r in cash}
    t_at = moment_us(at)
    expected = 0
    for t in book.transactions:
        if not t.succeeded or t.at > at:
            continue
        expected += 1
        row = by_id[(t.kind.value, t.id)]
        assert row.at == moment_us(t.at)
        assert row.amount_reporting is not None
        got = to_decimal(row.amount_reporting, 0, row.digits)
        assert got == book.fx.convert(t.amount, currency, on=t.at.date()).amount
        assert to_decimal(row.amount, 0, row.digits) == t.amount.amount
    for e in book.credits:
        if e.at <= at:
            expected += 1
            assert by_id[(CashKind.CREDIT.value, e.id)].currency == e.amount.currency
    assert len(cash) == expected
    assert all(r.at <= t_at for r in cash)
    # Service states: the row containing a moment says what the rules say then.
    states = list(ledger.services.rows())
    assert all(isinstance(r, ServiceState) for r in states)
    subs = {s.id: s for s in book.subscriptions}
    moments = {at, at - timedelta(days=31), at - timedelta(days=200)}
    for sub in book.subscriptions:
        moments.update(c.at for c in sub.history if c.at <= at)
        moments.update(
            s.ended_at for s in sub.states if s.ended_at is not None and s.ended_at <= at
        )
    for m in sorted(moments):
        mu = moment_us(m)
        for sub_id, sub in subs.items():
            inside = [
                r
                for r in states
                if r.subscription_id == sub_id and r.start <= mu and (r.end is None or mu < r.end)
            ]
            state = sub.state_at(m)
            if state is None:
                assert inside == []
                continue
            (srow,) = inside
            assert srow.active == is_active_service(state, m)
            assert srow.troubled == is_troubled_service(state)
            when = pending_cancellation(state, m)
            assert srow.cancellation_at == (None if when is None else moment_us(when))
            assert srow.status == state.status.value
    # Facts: total paid, refunds, payments and credit as customer_value defines them.
    values = {v.customer_id: v for v in customer_values(book, as_of=at, currency=currency)}
    for f in ledger.facts.rows():
        assert isinstance(f, CustomerFacts)
        v = values[f.customer_id]
        d = f.digits
        assert to_decimal(f.total_paid, 0, d) == v.total_paid.amount
        assert to_decimal(f.refunded, 0, d) == v.refunded.amount
        assert f.net_payments == f.total_paid - f.refunded
        assert f.payment_count == v.payment_count
        last = None if f.last_payment_at is None else _dt(f.last_payment_at)
        assert last == v.last_payment_at
        own = book.credit_balance(f.customer_id, currency, at=at).amount
        assert to_decimal(f.credit_balance, 0, d) == own
        since = None if f.first_paid_at is None else _dt(f.first_paid_at)
        assert since == v.subscriber_since


def test_rows_of_the_contract_book() -> None:
    book = sample_book()
    for currency in ("USD", "EUR"):
        _check_rows(book, AS_OF, currency)
        _check_rows(book, datetime(2024, 3, 1, tzinfo=UTC), currency)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_rows_follow_the_rules(data: st.DataObject) -> None:
    book = data.draw(rs.books(max_customers=3))
    at = data.draw(rs.moments_near(book))
    currency = data.draw(
        st.sampled_from(sorted({s.currency for s in book.subscriptions} | {"USD"}))
    )
    if any(t.succeeded and t.at <= at for t in book.transactions) or book.subscriptions:
        try:
            _check_rows(book, at, currency)
        except Exception as exc:  # a missing rate is the one expected refusal
            from revcrm.errors import MissingRateError

            if not isinstance(exc, MissingRateError):
                raise


def test_row_types_are_plain() -> None:
    """ids, int microseconds, int units with their digits, str codes, bools: nothing else
    (what a SQL table stores without a codec)."""
    ledger = ledger_rows(sample_book(), as_of=AS_OF, currency="USD", policy=MetricsPolicy())
    plain = (str, int, bool, type(None))
    for row in [*ledger.cash.rows(), *ledger.services.rows(), *ledger.facts.rows()]:
        for name in type(row).__attrs_attrs__:  # type: ignore[attr-defined]
            value = getattr(row, name.name)
            assert isinstance(value, plain), (type(row).__name__, name.name, value)
            assert not isinstance(value, Decimal | datetime)
