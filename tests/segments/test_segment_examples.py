"""Worked examples: one customer per segment, the thresholds' edges, the configuration,
custom segments and predicates, and the errors."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from revcrm import BillingCycle, Book, InvoiceStatus, Money, SubscriptionStatus
from revcrm.errors import CurrencyMismatchError, NotFoundError, ValidationError
from revcrm.metrics import MetricsPolicy, analyse
from revcrm.segments import (
    PRECEDENCE,
    AllOf,
    AnyOf,
    CustomSegment,
    LtvBaseline,
    Not,
    Segment,
    SegmentConfig,
    attribute_equals,
    customers_in,
    has_active_service,
    has_tag,
    in_segment,
    ltv_at_least,
    mrr_at_least,
    mrr_below,
    owned_by,
    primary_segment,
    referral_source,
    registered_before,
    registered_since,
    segment_counts,
    segmentation,
    segments_of,
    where,
)
from tests._builders import customer, invoice, payment, service, t, usd

AS_OF = t(2024, 6, 15)
TICK = timedelta(microseconds=1)


def _book() -> Book:
    """One customer per situation, as of 2024-06-15 (LTVs: hv 3000, active 300, risk 300,
    ending 200, suspended 100, churned 100, other 1200; mean of the 7 payers 742.857...)."""
    customers = [
        customer("hv", owner_id="alice", referral_source="Google"),
        customer("active", custom_attributes={"tier": "gold", "seats": 3}),
        customer("risk"),
        customer("ending"),
        customer("suspended"),
        customer("churned"),
        customer("new", t(2024, 6, 1)),
        customer("never"),
        customer("other"),
        customer("future", t(2024, 7, 1)),
    ]
    subs = [
        service("s_hv", "hv", usd(500)),
        service("s_active", "active", usd(50)),
        service("s_risk", "risk", usd(50)),
        service("s_ending", "ending", usd(50)).cancel(t(2024, 6, 10), ends_at=t(2024, 6, 20)),
        service("s_susp", "suspended", usd(50)).set_status(
            t(2024, 5, 1), SubscriptionStatus.SUSPENDED
        ),
        service("s_churned", "churned", usd(50)).cancel(t(2024, 3, 1), ends_at=t(2024, 3, 1)),
        service("s_other", "other", usd(1200), cycle=BillingCycle.ANNUAL),
    ]
    txns = [
        payment("p_hv1", "hv", usd(2500), t(2024, 1, 1)),
        payment("p_hv2", "hv", usd(500), t(2024, 6, 1)),
        payment("p_active1", "active", usd(250), t(2024, 1, 1)),
        payment("p_active2", "active", usd(50), t(2024, 6, 1)),
        payment("p_risk", "risk", usd(300), t(2024, 5, 20)),
        payment("p_ending", "ending", usd(200), t(2024, 5, 10)),
        payment("p_susp", "suspended", usd(100), t(2024, 3, 1)),
        payment("p_churned", "churned", usd(100), t(2024, 2, 1)),
        payment("p_other", "other", usd(1200), t(2024, 1, 1)),
        payment("f_never", "never", usd(10), t(2024, 1, 1), status="failed"),
    ]
    invoices = [
        invoice(
            "i_risk",
            "risk",
            usd(50),
            issued=t(2024, 5, 18),
            status=InvoiceStatus.OPEN,
            due=date(2024, 6, 1),
        )
    ]
    return Book.of(customers=customers, subscriptions=subs, transactions=txns, invoices=invoices)


EXPECTED = {
    "hv": {Segment.HIGH_VALUE, Segment.ACTIVE},
    "active": {Segment.ACTIVE},
    "risk": {Segment.AT_RISK, Segment.ACTIVE},
    # Still served until June 20, so not churned; paid May 10, within a month and the
    # 7-day grace (from May 8), so still Active.
    "ending": {Segment.AT_RISK, Segment.ACTIVE},
    "suspended": {Segment.AT_RISK, Segment.CHURNED},
    "churned": {Segment.CHURNED},
    "new": {Segment.NEW, Segment.NEVER_PURCHASED},
    "never": {Segment.NEVER_PURCHASED},  # a failed payment is not an order
    # Paid yearly in January: its annual period is paid, so Active in June.
    "other": {Segment.HIGH_VALUE, Segment.ACTIVE},
}


def test_the_fixed_payment_window_is_an_explicit_option() -> None:
    # active_payment_days=35 is the rule of earlier versions: a payment in the last 35
    # days, whatever the cycle: the annual payer and the May 10 payer are not Active.
    seg = segmentation(
        _book(), as_of=AS_OF, currency="USD", config=SegmentConfig(active_payment_days=35)
    )
    assert seg.segments_of("other") == {Segment.HIGH_VALUE}
    assert seg.segments_of("ending") == {Segment.AT_RISK}
    assert seg.segments_of("active") == {Segment.ACTIVE}


def test_each_customer_lands_in_its_segments() -> None:
    seg = segmentation(_book(), as_of=AS_OF, currency="USD")
    assert {cid: set(seg.segments_of(cid)) for cid in EXPECTED} == EXPECTED
    assert seg.ltv_baseline == LtvBaseline(total=usd(5200), paying_customers=7)
    assert seg.average_ltv == usd(5200) / 7
    assert seg.segments_of("future") == frozenset()
    assert seg.primary("future") is None


def test_primary_segments_follow_the_precedence() -> None:
    seg = segmentation(_book(), as_of=AS_OF, currency="USD")
    primaries = {cid: seg.primary(cid) for cid in EXPECTED}
    assert primaries == {
        "hv": Segment.HIGH_VALUE,
        "active": Segment.ACTIVE,
        "risk": Segment.AT_RISK,
        "ending": Segment.AT_RISK,
        "suspended": Segment.AT_RISK,
        "churned": Segment.CHURNED,
        "new": Segment.NEW,
        "never": Segment.NEVER_PURCHASED,
        "other": Segment.HIGH_VALUE,
    }
    reverse = SegmentConfig(precedence=tuple(reversed(PRECEDENCE)))
    again = segmentation(_book(), as_of=AS_OF, currency="USD", config=reverse)
    assert again.primary("hv") is Segment.ACTIVE
    assert again.primary("new") is Segment.NEVER_PURCHASED


def test_counts_and_lists() -> None:
    book = _book()
    counts = segment_counts(book, as_of=AS_OF, currency="USD")
    assert counts.customers == 9  # "future" has not registered yet
    assert counts.members[Segment.AT_RISK] == 3
    assert counts.members[Segment.ACTIVE] == 5
    assert counts.members[Segment.OTHER] == 0
    assert counts.primary[Segment.AT_RISK] == 3
    assert sum(counts.primary.values()) == 9
    assert customers_in(book, Segment.ACTIVE, as_of=AS_OF, currency="USD") == (
        "active",
        "ending",
        "hv",
        "other",
        "risk",
    )
    assert customers_in(book, "high value", as_of=AS_OF, currency="USD", primary=True) == (
        "hv",
        "other",
    )
    assert segments_of(book, "churned", as_of=AS_OF, currency="USD") == {Segment.CHURNED}
    assert primary_segment(book, "risk", as_of=AS_OF, currency="USD") is Segment.AT_RISK


def test_other_holds_customers_in_no_named_segment() -> None:
    book = Book.of(
        customers=[customer("c")],
        subscriptions=[service("s", "c", usd(10), cycle=BillingCycle.ANNUAL)],
        transactions=[payment("p", "c", usd(10), t(2023, 1, 1))],
    )
    seg = segmentation(book, as_of=AS_OF, currency="USD")
    # The only payer sits exactly at the average: not above it, so not High Value.
    assert seg.segments_of("c") == {Segment.OTHER}
    assert seg.primary("c") is Segment.OTHER


def test_new_window_edges() -> None:
    days = timedelta(days=30)
    for offset, expected in ((-days, True), (-days - TICK, False), (timedelta(0), True)):
        book = Book.of(customers=[customer("c", AS_OF + offset)])
        assert (Segment.NEW in segments_of(book, "c", as_of=AS_OF, currency="USD")) is expected


def test_active_window_edges() -> None:
    def book(paid_at_offset: timedelta) -> Book:
        return Book.of(
            customers=[customer("c")],
            subscriptions=[service("s", "c", usd(10), cycle=BillingCycle.ANNUAL)],
            transactions=[payment("p", "c", usd(10), AS_OF - paid_at_offset)],
        )

    days = timedelta(days=35)
    fixed = SegmentConfig(active_payment_days=35)
    assert Segment.ACTIVE in segments_of(
        book(days), "c", as_of=AS_OF, currency="USD", config=fixed
    )
    assert Segment.ACTIVE not in segments_of(
        book(days + TICK), "c", as_of=AS_OF, currency="USD", config=fixed
    )
    config = SegmentConfig(active_payment_days=366)
    assert Segment.ACTIVE in segments_of(
        book(timedelta(days=366)), "c", as_of=AS_OF, currency="USD", config=config
    )


@pytest.mark.parametrize(
    ("cycle", "as_of", "earliest"),
    [
        # One cycle back from as_of by the calendar rule, less the 7-day grace.
        (BillingCycle.MONTHLY, t(2024, 6, 15), t(2024, 5, 8)),
        (BillingCycle.MONTHLY, t(2024, 3, 31), t(2024, 2, 22)),  # Feb 29, clamped
        (BillingCycle.QUARTERLY, t(2024, 6, 15), t(2024, 3, 8)),
        (BillingCycle.SEMIANNUAL, t(2024, 8, 31), t(2024, 2, 22)),  # Feb 29, clamped
        (BillingCycle.ANNUAL, t(2024, 6, 15), t(2023, 6, 8)),
        (BillingCycle.BIENNIAL, t(2024, 6, 15), t(2022, 6, 8)),
        (BillingCycle.TRIENNIAL, t(2024, 6, 15), t(2021, 6, 8)),
    ],
)
def test_the_cycle_aware_window_of_each_cycle(
    cycle: BillingCycle, as_of: datetime, earliest: datetime
) -> None:
    def book(paid: datetime) -> Book:
        return Book.of(
            customers=[customer("c", t(2020, 1, 1))],
            subscriptions=[service("s", "c", usd(10), at=t(2020, 1, 1), cycle=cycle)],
            transactions=[payment("p", "c", usd(10), paid)],
        )

    assert Segment.ACTIVE in segments_of(book(earliest), "c", as_of=as_of, currency="USD")
    assert Segment.ACTIVE not in segments_of(
        book(earliest - TICK), "c", as_of=as_of, currency="USD"
    )
    assert Segment.ACTIVE in segments_of(book(as_of), "c", as_of=as_of, currency="USD")
    # Without the grace the window starts a week later.
    strict = SegmentConfig(active_grace_days=0)
    assert Segment.ACTIVE not in segments_of(
        book(earliest + timedelta(days=7) - TICK), "c", as_of=as_of, currency="USD", config=strict
    )


def test_at_risk_cancellation_window_edges() -> None:
    def book(ends_in: timedelta) -> Book:
        sub = service("s", "c", usd(10)).cancel(t(2024, 6, 1), ends_at=AS_OF + ends_in)
        return Book.of(customers=[customer("c")], subscriptions=[sub])

    days = timedelta(days=14)
    assert Segment.AT_RISK in segments_of(book(days), "c", as_of=AS_OF, currency="USD")
    assert Segment.AT_RISK not in segments_of(book(days + TICK), "c", as_of=AS_OF, currency="USD")


def test_a_scheduled_cancellation_takes_effect_at_the_period_end() -> None:
    # Monthly from Jan 1: the period containing June 15 ends July 1 (16 days away).
    sub = service("s", "c", usd(10)).schedule_cancellation(t(2024, 6, 2))
    book = Book.of(customers=[customer("c")], subscriptions=[sub])
    seg = segmentation(book, as_of=AS_OF, currency="USD")
    assert seg.facts["c"].next_cancellation_at == t(2024, 7, 1)
    assert Segment.AT_RISK not in seg.segments_of("c")
    assert Segment.AT_RISK in segments_of(book, "c", as_of=t(2024, 6, 17), currency="USD")


def test_an_invoice_is_overdue_the_day_after_its_due_date() -> None:
    inv = invoice(
        "i", "c", usd(10), issued=t(2024, 6, 1), status=InvoiceStatus.OPEN, due=date(2024, 6, 15)
    )
    book = Book.of(customers=[customer("c")], invoices=[inv])
    assert Segment.AT_RISK not in segments_of(book, "c", as_of=t(2024, 6, 15, 23), currency="USD")
    assert Segment.AT_RISK in segments_of(book, "c", as_of=t(2024, 6, 16), currency="USD")
    # Paid on the 20th: overdue on the 18th looking back, not on the 21st.
    paid = invoice(
        "i",
        "c",
        usd(10),
        issued=t(2024, 6, 1),
        status=InvoiceStatus.PAID,
        due=date(2024, 6, 15),
        paid_at=t(2024, 6, 20),
    )
    book = Book.of(customers=[customer("c")], invoices=[paid])
    assert Segment.AT_RISK in segments_of(book, "c", as_of=t(2024, 6, 18), currency="USD")
    assert Segment.AT_RISK not in segments_of(book, "c", as_of=t(2024, 6, 21), currency="USD")


def test_churned_needs_a_service_that_once_had_mrr() -> None:
    free = service("s", "c", usd(0)).cancel(t(2024, 2, 1), ends_at=t(2024, 2, 1))
    book = Book.of(customers=[customer("c")], subscriptions=[free])
    assert segments_of(book, "c", as_of=AS_OF, currency="USD") == {Segment.OTHER}
    trial = service("s", "c", usd(10), trial_end=t(2023, 2, 1)).cancel(
        t(2023, 1, 15), ends_at=t(2023, 1, 15)
    )
    book = Book.of(customers=[customer("c")], subscriptions=[trial])
    assert segments_of(book, "c", as_of=AS_OF, currency="USD") == {Segment.OTHER}
    trials_count = MetricsPolicy(count_trials=True)
    assert segments_of(book, "c", as_of=AS_OF, currency="USD", policy=trials_count) == {
        Segment.CHURNED
    }


def test_tags_and_predicates() -> None:
    book = _book()
    tags = {"hv": ["VIP"], "risk": ["vip", "late payer"], "never": ["Partner"]}
    seg = segmentation(book, as_of=AS_OF, currency="USD", tags=tags)
    assert seg.customers_in(has_tag("Vip")) == ("hv", "risk")
    vip_at_risk = has_tag("vip") & in_segment(Segment.AT_RISK)
    assert isinstance(vip_at_risk, AllOf)
    assert seg.customers_in(vip_at_risk) == ("risk",)
    assert seg.customers_in(~has_tag("vip") & has_active_service()) == (
        "active",
        "ending",
        "other",
    )
    assert ~~has_tag("vip") == has_tag("vip")
    either = has_tag("partner") | mrr_at_least(usd(500))
    assert isinstance(either, AnyOf)
    assert seg.customers_in(either) == ("hv", "never")
    assert seg.customers_in(mrr_below(usd(1))) == ("churned", "never", "new", "suspended")
    assert seg.customers_in(ltv_at_least(usd(1200))) == ("hv", "other")
    assert seg.customers_in(owned_by("alice")) == ("hv",)
    assert seg.customers_in(referral_source("google")) == ("hv",)
    assert seg.customers_in(attribute_equals("tier", "gold")) == ("active",)
    assert seg.customers_in(attribute_equals("seats", Decimal("3.0"))) == ("active",)
    assert seg.customers_in(attribute_equals("seats", True)) == ()
    assert seg.customers_in(registered_since(t(2024, 6, 1))) == ("new",)
    assert len(seg.customers_in(registered_before(date(2024, 6, 1)))) == 8
    assert seg.customers_in(where("LTV over 2k", lambda f: f.ltv > usd(2000))) == ("hv",)
    assert seg.customers_in(Not(part=in_segment("churned")) & in_segment("at_risk")) == (
        "ending",
        "risk",
    )
    assert "tagged 'vip'" in vip_at_risk.describe()
    big = CustomSegment(name="Big", predicate=mrr_at_least(usd(500)))
    assert seg.counts([big]).custom == {"Big": 1}
    with pytest.raises(ValidationError, match="custom"):
        seg.counts([big, big])


def test_a_shared_analysis_is_reused_and_checked() -> None:
    book = _book()
    analysis = analyse(book, currency="USD")
    seg = segmentation(book, as_of=AS_OF, currency="USD", analysis=analysis)
    assert seg.facts["hv"].mrr == usd(500)
    with pytest.raises(ValidationError, match="analysis"):
        segmentation(book, as_of=AS_OF, currency="EUR", analysis=analysis)
    with pytest.raises(ValidationError, match="policy"):
        segmentation(
            book, as_of=AS_OF, currency="USD", analysis=analysis, policy=MetricsPolicy.stripe()
        )


def test_errors_name_the_field() -> None:
    book = _book()
    with pytest.raises(NotFoundError):
        segments_of(book, "nobody", as_of=AS_OF, currency="USD")
    with pytest.raises(ValidationError, match="active_payment_days"):
        SegmentConfig(active_payment_days=-1)
    with pytest.raises(ValidationError, match="new_customer_days"):
        SegmentConfig(new_customer_days=True)
    with pytest.raises(ValidationError, match="precedence"):
        SegmentConfig(precedence=(Segment.AT_RISK,))
    with pytest.raises(ValidationError, match="precedence"):
        SegmentConfig(precedence=(*PRECEDENCE[:-1], Segment.AT_RISK))
    with pytest.raises(ValidationError, match="amount"):
        mrr_at_least(500)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="segment"):
        in_segment("vip")
    with pytest.raises(ValidationError, match="segment"):
        customers_in(book, "loyal", as_of=AS_OF, currency="USD")
    with pytest.raises(ValidationError, match="primary"):
        customers_in(book, has_tag("x"), as_of=AS_OF, currency="USD", primary=True)
    with pytest.raises(ValidationError, match="ltv_baseline"):
        segmentation(
            book,
            as_of=AS_OF,
            currency="USD",
            ltv_baseline=LtvBaseline(total=Money("1", "EUR"), paying_customers=1),
        )
    with pytest.raises(ValidationError, match="as_of"):
        segmentation(book, as_of="2024-06-15", currency="USD")  # type: ignore[arg-type]
    seg = segmentation(book, as_of=AS_OF, currency="USD")
    with pytest.raises(CurrencyMismatchError):
        seg.customers_in(mrr_at_least(Money("1", "EUR")))
    with pytest.raises(ValidationError, match="float"):
        attribute_equals("seats", 3.0)  # type: ignore[arg-type]


def test_predicates_describe_themselves_and_check_their_parts() -> None:
    rule = (
        (mrr_at_least(usd(10)) | mrr_below(usd(1)) | ltv_at_least(usd(5)))
        & ~owned_by("bob")
        & registered_before(t(2024, 1, 1))
        & registered_since(t(2023, 1, 1))
        & referral_source("Google")
        & has_active_service()
        & attribute_equals("tier", "gold")
        & where("custom rule", lambda f: True)
    )
    assert rule.describe() == (
        "((MRR >= 10 USD or MRR < 1 USD or LTV >= 5 USD) and not owned by 'bob' and "
        "registered before 2024-01-01T00:00:00+00:00 and registered since "
        "2023-01-01T00:00:00+00:00 and referred by 'google' and has an active service and "
        "tier = 'gold' and custom rule)"
    )
    assert in_segment(Segment.AT_RISK).describe() == "in At Risk"
    with pytest.raises(ValidationError, match=r"parts\[1\]"):
        AllOf(parts=(has_tag("a"), "b"))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="part"):
        Not(part="b")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        has_tag("a") & "b"  # type: ignore[operator]
    with pytest.raises(ValidationError, match="function"):
        where("x", 3)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="source"):
        referral_source(" ")
    with pytest.raises(ValidationError, match="predicate"):
        CustomSegment(name="x", predicate=lambda f: True)  # type: ignore[arg-type]
