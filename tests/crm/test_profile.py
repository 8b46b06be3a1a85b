"""The customer profile: a worked example with every section, the status rules, payments
per service, and properties on generated books against the metric functions."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from revcrm import (
    BillingCycle,
    Book,
    CreditEntry,
    FxRates,
    InvoiceLine,
    InvoiceStatus,
    LineKind,
    Money,
    Plan,
    Product,
    SubscriptionStatus,
    TransactionKind,
    TransactionStatus,
)
from revcrm._money import money_sum
from revcrm.crm import (
    AttributeType,
    Contact,
    CustomerStatus,
    Note,
    Tag,
    TicketRef,
    customer_profile,
    format_profile,
)
from revcrm.errors import NotFoundError, ValidationError
from revcrm.leads import LeadStage
from revcrm.metrics import MetricsPolicy, MovementKind, analyse
from revcrm.metrics._customer_value import customer_value
from revcrm.testing import strategies as rs
from revcrm.testing.strategies import busy_books, moments_near
from tests._builders import customer, eur, invoice, payment, service, t, usd

AS_OF = t(2024, 6, 15)
TICK = timedelta(microseconds=1)
FX = FxRates.from_rates([(date(2023, 1, 1), "EUR", "USD", "1.10")])


def _book() -> Book:
    c1 = customer(
        "c1",
        t(2023, 1, 1),
        name="Ana Lima",
        email="ana@example.com",
        phone="+351 900 000 000",
        role="admin",
        company="Lima Hosting",
        website="https://lima.example",
        location="Lisbon, PT",
        owner_id="alice",
        last_login_at=t(2024, 6, 14),
        custom_attributes={"seats": 5, "vip": True, "since": date(2020, 3, 1), "tier": "gold"},
    )
    web = service(
        "s_web",
        "c1",
        usd(20),
        at=t(2024, 1, 10),
        plan_id="plan_web",
        details=(("server", "web01"), ("node", "n3")),
    )
    vps = service("s_vps", "c1", eur(100), at=t(2024, 2, 1), product_id="prod_vps").set_status(
        t(2024, 6, 5), SubscriptionStatus.PAST_DUE
    )
    old = service("s_old", "c1", usd(5), at=t(2023, 1, 1)).cancel(
        t(2023, 6, 1), ends_at=t(2023, 6, 1)
    )
    later = service("s_later", "c1", usd(7), at=t(2024, 7, 1))
    mixed = invoice(
        "i_mixed",
        "c1",
        usd(20),
        issued=t(2024, 5, 10),
        subscription_id="s_web",
        extra=(InvoiceLine(kind=LineKind.ONE_OFF, amount=usd(5), description="setup"),),
    )
    overdue = invoice(
        "i_vps",
        "c1",
        eur(100),
        issued=t(2024, 6, 1),
        status=InvoiceStatus.OPEN,
        due=date(2024, 6, 10),
        subscription_id="s_vps",
    )
    txns = [
        payment("t_web", "c1", usd(20), t(2024, 4, 10), subscription_id="s_web"),
        payment("t_mixed", "c1", usd(25), t(2024, 5, 10), invoice_id="i_mixed"),
        payment("t_vps_part", "c1", eur(40), t(2024, 6, 2), invoice_id="i_vps"),
        payment("t_fail", "c1", eur(100), t(2024, 6, 5), status="failed", subscription_id="s_vps"),
        payment("t_refund", "c1", usd(5), t(2024, 5, 12), kind="refund", invoice_id="i_mixed"),
        payment("t_pending", "c1", usd(20), t(2024, 6, 14), status="pending"),
        payment("t_future", "c1", usd(20), t(2024, 7, 1), subscription_id="s_web"),
    ]
    credits = [
        CreditEntry(id="cr1", customer_id="c1", amount=usd(15), reason="goodwill", at=t(2024, 3, 1))
    ]
    lead = customer("lead", t(2024, 6, 1), name="Prospect")
    return Book.of(
        customers=[c1, lead],
        products=[Product(id="prod_web", name="Web hosting"), Product(id="prod_vps", name="VPS")],
        plans=[
            Plan(
                id="plan_web",
                product_id="prod_web",
                name="Web Starter",
                price=usd(20),
                cycle=BillingCycle.MONTHLY,
            )
        ],
        subscriptions=[web, vps, old, later],
        invoices=[mixed, overdue],
        transactions=txns,
        credits=credits,
        fx=FX,
    )


def _records() -> dict[str, object]:
    note = Note.create(
        id="n1", customer_id="c1", author_id="alice", body="Wants a discount", at=t(2024, 5, 1)
    )
    pinned = Note.create(
        id="n2",
        customer_id="c1",
        author_id="bob",
        body="Key account",
        at=t(2024, 4, 1),
        pinned=True,
    )
    gone, _ = Note.create(
        id="n3", customer_id="c1", author_id="bob", body="typo", at=t(2024, 5, 2)
    ).delete(at=t(2024, 5, 3), staff_id="bob")
    after = Note.create(id="n4", customer_id="c1", author_id="bob", body="later", at=t(2024, 7, 1))
    return {
        "notes": [note, pinned, gone, after],
        "contacts": [
            Contact(
                id="k2", customer_id="c1", name="Zoe", title="Billing", email="zoe@lima.example"
            ),
            Contact(id="k1", customer_id="c1", name="bruno", phone="+351 1"),
        ],
        "tickets": [
            TicketRef(id="101", subject="Slow site", status="closed", updated_at=t(2024, 3, 1)),
            TicketRef(id="102", subject="VPS down", status="open", updated_at=t(2024, 6, 6)),
        ],
        "tags": ["vip", Tag.of("Reseller", "#00AA00"), "VIP"],
    }


def test_the_profile_shows_every_section() -> None:
    p = customer_profile(_book(), "c1", as_of=AS_OF, currency="USD", **_records())  # type: ignore[arg-type]
    o = p.overview
    assert (o.name, o.email, o.company, o.location, o.owner_id) == (
        "Ana Lima",
        "ana@example.com",
        "Lima Hosting",
        "Lisbon, PT",
        "alice",
    )
    assert o.last_login_at == t(2024, 6, 14)
    b = p.billing
    # MRR: web $20 + VPS EUR 100 at 1.10 (past due still counts, ChartMogul).
    assert b.mrr == usd(130)
    assert b.arr == usd(1560)
    # Cash: 20 + 25 + EUR 40 x 1.10 = 89 paid, 5 refunded; the July payment is after as_of.
    assert b.total_paid == usd(89)
    assert b.refunded == usd(5)
    assert b.net_payments == b.ltv == usd(84)
    assert b.payment_count == 3
    assert b.average_invoice_value == (usd(25) + usd(110)) / 2
    # Open EUR 100 invoice minus EUR 40 paid, at the as_of rate.
    assert b.outstanding_balance == usd(66)
    assert b.credit_balance == usd(15)
    assert b.subscriber_since == t(2023, 1, 1)
    assert b.last_payment_at == t(2024, 6, 2)
    assert b.status is CustomerStatus.PAST_DUE  # past due wins over the active web service
    assert b.lead_stage is None

    assert [s.subscription_id for s in p.services] == ["s_old", "s_web", "s_vps"]
    old, web, vps = p.services
    assert (web.product_name, web.plan_name, web.status) == (
        "Web hosting",
        "Web Starter",
        SubscriptionStatus.ACTIVE,
    )
    assert web.details == (("server", "web01"), ("node", "n3"))
    assert web.next_renewal == t(2024, 7, 10)
    assert web.mrr == usd(20)
    # $20 linked to the service, plus $25 x 20/25 of the mixed invoice, minus $5 x 20/25.
    assert web.paid == usd(40)
    assert web.refunded == usd(4)
    assert web.payment_count == 2
    assert vps.product_name == "VPS"
    assert vps.status is SubscriptionStatus.PAST_DUE
    assert vps.paid == usd(44)
    assert vps.price == eur(100)
    assert old.status is SubscriptionStatus.CANCELLED
    assert old.ends_at == t(2023, 6, 1)
    assert old.next_renewal is None

    assert [i.invoice_id for i in p.invoices] == ["i_vps", "i_mixed"]  # newest first
    vps_invoice = p.invoices[0]
    assert vps_invoice.overdue
    assert vps_invoice.balance == eur(60)
    assert not p.invoices[1].overdue
    assert p.invoices[1].balance == usd(0)

    tx = p.transactions
    assert [x.id for x in tx.succeeded] == ["t_web", "t_mixed", "t_vps_part"]
    assert [x.id for x in tx.refunded] == ["t_refund"]
    assert [x.id for x in tx.failed] == ["t_fail"]
    assert [x.id for x in tx.pending] == ["t_pending"]

    assert [k.id for k in p.tickets] == ["102", "101"]
    assert [c.name for c in p.contacts] == ["bruno", "Zoe"]
    assert [n.id for n in p.notes] == ["n2", "n1"]  # pinned first; deleted and later left out
    assert p.tags == ("Reseller", "vip")
    assert [(a.key, a.type) for a in p.custom_attributes] == [
        ("seats", AttributeType.NUMBER),
        ("since", AttributeType.DATE),
        ("tier", AttributeType.STRING),
        ("vip", AttributeType.BOOLEAN),
    ]
    kinds = [m.kind for m in p.movements]
    assert kinds == [
        MovementKind.NEW,
        MovementKind.CHURN,
        MovementKind.REACTIVATION,
        MovementKind.EXPANSION,
    ]
    assert p.mrr_history[-1] == (t(2024, 2, 1), usd(130))

    text = format_profile(p, locale="en_US")
    assert "Status past_due" in text
    assert "MRR $130.00  ARR $1,560.00  LTV $84.00" in text
    assert "server=web01, node=n3" in text
    assert "OVERDUE" in text
    assert "[pinned]" in text
    german = format_profile(p, locale="de_DE")
    assert "130,00" in german


def test_a_lead_shows_its_lead_stage() -> None:
    p = customer_profile(_book(), "lead", as_of=AS_OF, currency="USD", lead_status="qualified")
    assert p.billing.status is CustomerStatus.LEAD
    assert p.billing.lead_stage is LeadStage.QUALIFIED
    assert p.services == ()
    assert p.billing.mrr == usd(0)
    assert "lead (qualified lead)" in format_profile(p, locale="en_US")
    # Once a service exists the lead stage is history.
    active = customer_profile(_book(), "c1", as_of=AS_OF, currency="USD", lead_status="qualified")
    assert active.billing.lead_stage is None


def test_status_rules() -> None:
    def status(*subs: object, invoices: tuple[object, ...] = ()) -> CustomerStatus:
        book = Book.of(customers=[customer("c")], subscriptions=subs, invoices=invoices)  # type: ignore[arg-type]
        return customer_profile(book, "c", as_of=AS_OF, currency="USD").billing.status

    active = service("a", "c", usd(10))
    ended = service("e", "c", usd(10)).cancel(t(2024, 1, 1), ends_at=t(2024, 1, 1))
    ending = service("g", "c", usd(10)).cancel(t(2024, 6, 1), ends_at=t(2024, 7, 1))
    suspended = service("s", "c", usd(10)).set_status(t(2024, 6, 1), SubscriptionStatus.SUSPENDED)
    pending = service("p", "c", usd(10), status=SubscriptionStatus.PENDING)
    trial = service("tr", "c", usd(10), trial_end=t(2024, 7, 1), at=t(2024, 6, 1))
    overdue = invoice(
        "i", "c", usd(5), issued=t(2024, 5, 1), status=InvoiceStatus.OPEN, due=date(2024, 5, 15)
    )
    assert status() is CustomerStatus.LEAD
    assert status(pending) is CustomerStatus.LEAD
    assert status(active) is CustomerStatus.ACTIVE
    assert status(trial) is CustomerStatus.ACTIVE
    assert status(ending) is CustomerStatus.ACTIVE  # still served until July 1
    assert status(ended) is CustomerStatus.CANCELLED
    assert status(ended, active) is CustomerStatus.ACTIVE
    assert status(suspended, active) is CustomerStatus.PAST_DUE
    assert status(ended, invoices=(overdue,)) is CustomerStatus.PAST_DUE


def test_inputs_are_checked() -> None:
    book = _book()
    with pytest.raises(NotFoundError):
        customer_profile(book, "nobody", as_of=AS_OF, currency="USD")
    other = Note.create(id="n", customer_id="lead", author_id="a", body="b", at=t(2024, 1, 1))
    with pytest.raises(ValidationError, match=r"notes\[0\]\.customer_id"):
        customer_profile(book, "c1", as_of=AS_OF, currency="USD", notes=[other])
    with pytest.raises(ValidationError, match="lead_status"):
        customer_profile(book, "lead", as_of=AS_OF, currency="USD", lead_status="hot")
    analysis = analyse(book, currency="EUR")
    with pytest.raises(ValidationError, match="analysis"):
        customer_profile(book, "c1", as_of=AS_OF, currency="USD", analysis=analysis)
    with pytest.raises(ValidationError, match="policy"):
        customer_profile(
            book,
            "c1",
            as_of=AS_OF,
            currency="EUR",
            analysis=analysis,
            policy=MetricsPolicy.stripe(),
        )
    value = customer_value(book, "c1", as_of=t(2024, 1, 1), currency="USD")
    with pytest.raises(ValidationError, match="value"):
        customer_profile(book, "c1", as_of=AS_OF, currency="USD", value=value)
    with pytest.raises(ValidationError, match="as_of"):
        customer_profile(book, "c1", as_of=datetime(2024, 6, 15), currency="USD")
    with pytest.raises(ValidationError, match="locale"):
        format_profile(customer_profile(book, "c1", as_of=AS_OF, currency="USD"), locale="")


# -- properties on generated books ------------------------------------------------------------

_BOOKS = st.one_of(rs.books(currencies=("USD", "EUR")), busy_books())


def _linked_cash(book: Book, cid: str, at: datetime) -> tuple[Fraction, Fraction]:
    """Successful payments and refunds attributable to services, by the documented rule,
    as exact fractions of USD."""
    invoices = {i.id: i for i in book.invoices}
    paid = refunded = Fraction(0)
    for tx in book.transactions:
        if tx.customer_id != cid or not tx.succeeded or tx.at > at:
            continue
        value = Fraction(book.fx.convert(tx.amount, "USD", on=tx.at.date()).amount)
        if tx.subscription_id is not None:
            share = Fraction(1)
        elif tx.invoice_id is not None and invoices[tx.invoice_id].total.amount > 0:
            inv = invoices[tx.invoice_id]
            on_subs = sum(
                (Fraction(line.total.amount) for line in inv.lines if line.subscription_id),
                Fraction(0),
            )
            share = on_subs / Fraction(inv.total.amount)
        else:
            continue
        if tx.kind is TransactionKind.PAYMENT:
            paid += value * share
        else:
            refunded += value * share
    return paid, refunded


@given(st.data())
def test_profile_figures_agree_with_the_metric_functions(data: st.DataObject) -> None:
    book = data.draw(_BOOKS)
    at = data.draw(moments_near(book))
    cid = data.draw(st.sampled_from([c.id for c in book.customers]))
    p = customer_profile(book, cid, as_of=at, currency="USD")
    value = customer_value(book, cid, as_of=at, currency="USD")
    analysis = analyse(book, currency="USD", horizon=at + TICK)
    b = p.billing
    assert b.mrr == analysis.customer_mrr(cid, at)
    assert b.arr == b.mrr * 12
    assert (b.total_paid, b.refunded, b.outstanding_balance, b.credit_balance) == (
        value.total_paid,
        value.refunded,
        value.outstanding_balance,
        value.credit_balance,
    )
    assert b.ltv == b.net_payments == value.net_payments
    # Services: every service started by as_of, their MRRs adding up to the customer's.
    started = [s for s in book.subscriptions if s.customer_id == cid and s.started_at <= at]
    assert {s.subscription_id for s in p.services} == {s.id for s in started}
    total = money_sum((s.mrr for s in p.services), "USD")
    assert total == b.mrr
    # Payments per service: the documented share of each linked transaction.
    paid, refunded = _linked_cash(book, cid, at)
    got_paid = sum((Fraction(s.paid.amount) for s in p.services), Fraction(0))
    got_refunded = sum((Fraction(s.refunded.amount) for s in p.services), Fraction(0))
    assert abs(got_paid - paid) <= Fraction(1, 10**20)
    assert abs(got_refunded - refunded) <= Fraction(1, 10**20)
    # Invoices: issued by as_of; balances add up to the outstanding balance.
    issued = {i.id for i in book.invoices if i.customer_id == cid and i.issued_at <= at}
    assert {i.invoice_id for i in p.invoices} == issued
    owed = money_sum(
        (
            book.fx.convert(i.balance, "USD", on=at.date())
            for i in p.invoices
            if i.status not in (InvoiceStatus.DRAFT, InvoiceStatus.VOID)
        ),
        "USD",
    )
    assert owed == b.outstanding_balance
    # Transactions: the groups partition the customer's transactions up to as_of.
    tx = p.transactions
    groups = [*tx.succeeded, *tx.refunded, *tx.failed, *tx.pending]
    mine = [x for x in book.transactions if x.customer_id == cid and x.at <= at]
    assert sorted(x.id for x in groups) == sorted(x.id for x in mine)
    assert all(x.status is TransactionStatus.SUCCEEDED for x in tx.succeeded + tx.refunded)
    # History and movements stop at as_of.
    assert all(when <= at for when, _ in p.mrr_history)
    assert all(m.at <= at and m.customer_id == cid for m in p.movements)
    assert [m.at for m in p.movements] == sorted(m.at for m in p.movements)


@given(st.data())
def test_a_sub_book_gives_the_same_profile_as_the_whole_book(data: st.DataObject) -> None:
    book = data.draw(_BOOKS)
    at = data.draw(moments_near(book))
    cid = data.draw(st.sampled_from([c.id for c in book.customers]))
    whole = customer_profile(
        book,
        cid,
        as_of=at,
        currency="USD",
        analysis=analyse(book, currency="USD", horizon=at + TICK),
    )
    part = customer_profile(book.restricted_to([cid]), cid, as_of=at, currency="USD")
    assert part == whole


def test_money_is_never_rounded_in_the_profile() -> None:
    book = Book.of(
        customers=[customer("c")],
        subscriptions=[service("s", "c", usd("100"), cycle=BillingCycle.QUARTERLY)],
        transactions=[payment("p", "c", Money("0.005", "USD"), t(2024, 6, 1))],
    )
    p = customer_profile(book, "c", as_of=AS_OF, currency="USD")
    assert p.billing.mrr == usd(100) / 3  # revcrm's division rule, not 28 digits
    assert p.billing.total_paid == Money("0.005", "USD")


def test_the_profile_explains_why_a_customer_is_in_other() -> None:
    from revcrm.crm import format_profile
    from revcrm.segments import LtvBaseline, Segment, segmentation

    # Monthly, last paid in January: active but its period is unpaid, so in OTHER.
    book = Book.of(
        customers=[customer("c")],
        subscriptions=[service("s", "c", usd(10), at=t(2024, 1, 10))],
        transactions=[payment("p", "c", usd(10), t(2024, 1, 10))],
    )
    as_of = t(2024, 6, 15)
    baseline = segmentation(book, as_of=as_of, currency="USD").ltv_baseline
    profile = customer_profile(book, "c", as_of=as_of, currency="USD", ltv_baseline=baseline)
    assert profile.segments == {Segment.OTHER}
    assert profile.primary_segment is Segment.OTHER
    missed = {m.segment: m.reason for m in profile.other_reason}
    assert set(missed) == set(Segment) - {Segment.OTHER}
    assert missed[Segment.ACTIVE] == "current period not paid: s (monthly): no payment since 2024-05-08"
    text = format_profile(profile, locale="en_US")
    assert "Segments Other (primary Other)" in text
    assert "not Active: current period not paid" in text
    # Without the book's baseline the profile shows no segments.
    assert customer_profile(book, "c", as_of=as_of, currency="USD").primary_segment is None
    rich = LtvBaseline(total=usd(0), paying_customers=1)
    assert Segment.HIGH_VALUE in customer_profile(
        book, "c", as_of=as_of, currency="USD", ltv_baseline=rich
    ).segments
