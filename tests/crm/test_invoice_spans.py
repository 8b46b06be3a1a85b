"""The invoice rules as spans (``invoice_unpaid_span``, ``invoice_overdue_span``: the one
definition): the point rules derived from them (membership) answer exactly what the
former point definitions (copied here as the oracle) did, at every edge (issue, the due
day's end in UTC and in ``at``'s own zone, payment, each give or take a microsecond) in
aware datetimes of several zones, both folds included; and the ledger's overdue pieces
equal the former moment-by-moment evaluation."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from revcrm import Money
from revcrm._crm_services import (
    invoice_overdue,
    invoice_overdue_span,
    invoice_unpaid,
    invoice_unpaid_span,
    overdue_from,
)
from revcrm._ledger._status import overdue_intervals
from revcrm._records import Invoice, InvoiceLine, InvoiceStatus, LineKind
from revcrm.errors import ValidationError
from revcrm.testing import strategies as rs

_US = timedelta(microseconds=1)
_ZONES: tuple[tzinfo, ...] = (
    UTC,
    ZoneInfo("America/Los_Angeles"),
    ZoneInfo("Asia/Tokyo"),
    ZoneInfo("Pacific/Kiritimati"),  # +14
    ZoneInfo("Pacific/Pago_Pago"),  # -11
    ZoneInfo("America/Havana"),  # DST changes at midnight
    ZoneInfo("America/Sao_Paulo"),  # DST changed at midnight until 2019
    ZoneInfo("Asia/Kolkata"),
    timezone(timedelta(hours=-3, minutes=-30)),
)
# Due dates whose next day begins at a DST change in a zone: Sao Paulo 2018 (a gap at
# midnight; the clock set back from midnight), Havana 2025 (a gap at midnight; midnight
# repeated), the US 2024.
_DUE = (date(2018, 2, 17), date(2018, 11, 3), date(2024, 3, 9), date(2025, 3, 8), date(2025, 11, 1))


def _old_unpaid(invoice: Invoice, at: datetime) -> bool:
    """The former definition of ``invoice_unpaid``, verbatim."""
    if invoice.issued_at > at:
        return False
    if invoice.status is InvoiceStatus.OPEN:
        return True
    return (
        invoice.status is InvoiceStatus.PAID
        and invoice.paid_at is not None
        and invoice.paid_at > at
    )


def _old_overdue(invoice: Invoice, at: datetime) -> bool:
    """The former definition of ``invoice_overdue``, verbatim."""
    return _old_unpaid(invoice, at) and at.date() > invoice.due_date


def _old_overdue_intervals(invoice: Invoice) -> list[tuple[datetime, datetime | None]]:
    """The former ``overdue_intervals``: the rule at each moment its answer could change."""
    moments = sorted(
        {
            invoice.issued_at,
            datetime.combine(invoice.due_date + timedelta(days=1), time(0), tzinfo=UTC),
            *(() if invoice.paid_at is None else (invoice.paid_at,)),
        }
    )
    out: list[tuple[datetime, datetime | None]] = []
    opened: datetime | None = None
    for at in moments:
        overdue = _old_overdue(invoice, at)
        if overdue and opened is None:
            opened = at
        elif not overdue and opened is not None:
            out.append((opened, at))
            opened = None
    if opened is not None:
        out.append((opened, None))
    return out


def _invoice(
    issued_at: datetime, due: date, status: InvoiceStatus, paid_at: datetime | None
) -> Invoice:
    return Invoice(
        id="inv_1",
        customer_id="cus_1",
        currency="USD",
        issued_at=issued_at,
        due_date=due,
        status=status,
        lines=(InvoiceLine(kind=LineKind.ONE_OFF, amount=Money("10", "USD")),),
        paid_at=paid_at,
    )


def _edges(invoice: Invoice) -> list[datetime]:
    """Every moment where an answer can change, in UTC."""
    out = [invoice.issued_at, *(overdue_from(invoice, zone) for zone in _ZONES)]
    return out if invoice.paid_at is None else [*out, invoice.paid_at]


def _cases() -> list[Invoice]:
    out = []
    for due in _DUE:
        midnight = datetime.combine(due, time(0), tzinfo=UTC)
        for issued in (midnight, midnight + timedelta(days=1) - _US):
            end = overdue_from(_invoice(issued, due, InvoiceStatus.OPEN, None))
            paid: list[datetime | None] = [None, issued, issued + _US, end - _US, end]
            paid += [issued + timedelta(days=40)]
            for zone in _ZONES[1:4]:
                paid.append(overdue_from(_invoice(issued, due, InvoiceStatus.OPEN, None), zone))
            for status in InvoiceStatus:
                for paid_at in paid if status is InvoiceStatus.PAID else (None, end):
                    try:
                        out.append(_invoice(issued, due, status, paid_at))
                    except ValidationError:
                        continue
    return out


def test_point_rules_from_the_spans_equal_the_former_definitions_at_every_edge() -> None:
    checked = 0
    for inv in _cases():
        for edge, shift in itertools.product(_edges(inv), (-_US, timedelta(0), _US)):
            instant = edge + shift
            for zone in _ZONES:
                local = instant.astimezone(zone)
                for at in {local, local.replace(fold=1)}:
                    assert invoice_unpaid(inv, at) is _old_unpaid(inv, at), (inv, at)
                    assert invoice_overdue(inv, at) is _old_overdue(inv, at), (inv, at)
                    checked += 1
        assert overdue_intervals(inv) == _old_overdue_intervals(inv), inv
    assert checked > 40_000


def test_spans_shape() -> None:
    issued = datetime(2024, 3, 1, 12, tzinfo=UTC)
    paid = datetime(2024, 3, 20, tzinfo=UTC)
    due = date(2024, 3, 10)
    assert invoice_unpaid_span(_invoice(issued, due, InvoiceStatus.OPEN, None)) == (issued, None)
    assert invoice_unpaid_span(_invoice(issued, due, InvoiceStatus.PAID, paid)) == (issued, paid)
    for status in (InvoiceStatus.DRAFT, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE):
        assert invoice_unpaid_span(_invoice(issued, due, status, paid)) is None
    assert invoice_unpaid_span(_invoice(issued, due, InvoiceStatus.PAID, None)) is None
    day_after = datetime(2024, 3, 11, tzinfo=UTC)
    paid_inv = _invoice(issued, due, InvoiceStatus.PAID, paid)
    assert invoice_overdue_span(paid_inv) == (day_after, paid)
    # In Tokyo (+9) the day after the due date begins nine hours before UTC's.
    tokyo = invoice_overdue_span(paid_inv, ZoneInfo("Asia/Tokyo"))
    assert tokyo == (day_after - timedelta(hours=9), paid)
    # Paid by the end of the due day: never overdue.
    assert invoice_overdue_span(_invoice(issued, due, InvoiceStatus.PAID, day_after)) is None


@given(
    rs.invoices(),
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2040, 1, 1),
        timezones=st.sampled_from(_ZONES),
    ),
    st.booleans(),
)
def test_point_rules_equal_the_former_definitions(inv: Invoice, at: datetime, near: bool) -> None:
    if near:
        # Near one of the invoice's own edges, where the answers change.
        at = min(_edges(inv), key=lambda e: abs(e - at)).astimezone(at.tzinfo)
    assert invoice_unpaid(inv, at) is _old_unpaid(inv, at)
    assert invoice_overdue(inv, at) is _old_overdue(inv, at)
    assert overdue_intervals(inv) == _old_overdue_intervals(inv)


def test_where_a_zone_sets_its_clock_back_across_midnight_the_span_starts_at_the_first_midnight() -> (
    None
):
    # The one documented difference from the former point rule: Newfoundland set its
    # clocks back at 00:01 to 23:01 the day before (1987-2010), so its date went back
    # for an hour. The span is overdue from the first moment of the day after the due
    # date on (02:30 UTC); the former rule, reading at.date(), said "not overdue" again
    # for that repeated hour.
    zone = ZoneInfo("America/St_Johns")
    due = date(2010, 11, 6)
    inv = _invoice(datetime(2010, 11, 1, tzinfo=UTC), due, InvoiceStatus.OPEN, None)
    first_midnight = datetime(2010, 11, 7, 2, 30, tzinfo=UTC)
    assert overdue_from(inv, zone) == first_midnight
    repeated = datetime(2010, 11, 7, 2, 45, tzinfo=UTC).astimezone(zone)
    assert repeated.date() == due  # 23:15 on the due day, the second time
    assert invoice_overdue(inv, repeated)
    assert not _old_overdue(inv, repeated)
    after = datetime(2010, 11, 7, 3, 30, tzinfo=UTC).astimezone(zone)
    assert invoice_overdue(inv, after)
    assert _old_overdue(inv, after)
