"""The ledger rows the SQL store keeps, built by the engine's classifier (issue 14, item 1).

Nothing here decides an MRR rule: each customer's rows are read off
:func:`revcrm.metrics.analyse` of the customer's own subscriptions (with the store's FX
rates, policy, reporting currency and horizon), which is exactly the whole book's
analysis restricted to that customer, because steps, events and movements never mix
customers. Amounts are stored as exact Decimals (the ledger's integer units at the
analysis's ``digits``, converted without rounding), so sums in SQL equal the engine's.

Three row kinds, one table each (``_schema``): the customer (``missing`` when a rate the
classifier needs is absent), its streams' steps as intervals, and its events as intervals
with the movement kinds of the natural grouping. Schema 8 adds the service-state rows of
:func:`revcrm._ledger._services.service_columns` and the status intervals of
:func:`revcrm._ledger._status.status_intervals` (:func:`build_service_rows`); schema 9
the renewing states with their billing calendar and MRR (:func:`build_renewal_rows`).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Final

import attrs

from revcrm._book import Book
from revcrm._ledger._cash import cash_columns
from revcrm._ledger._classify import KINDS
from revcrm._ledger._renewals import cycle_code
from revcrm._ledger._services import first_invoiced_at, service_columns
from revcrm._ledger._status import overdue_intervals, status_intervals
from revcrm._money import EXACT_CONTEXT, FxRates
from revcrm._records import CreditEntry, Invoice, Plan, Transaction
from revcrm._subscription import Subscription, SubscriptionStatus
from revcrm.errors import MissingRateError
from revcrm.metrics import MetricsPolicy, analyse
from revcrm.metrics._engine import MrrAnalysis
from revcrm.segments._rules import service_reach
from revcrm.storage._codec import Row, moment_from_value, moment_value, to_limbs

__all__ = [
    "LedgerRows",
    "build_cash_rows",
    "build_renewal_rows",
    "build_rows",
    "build_service_rows",
    "units_decimal",
]

#: Bounds wide enough for any event: the natural grouping (no period splits a group).
_LOW: Final = datetime(1, 1, 2, tzinfo=UTC)
_HIGH: Final = datetime(9999, 12, 30, tzinfo=UTC)
_US: Final = timedelta(microseconds=1)
#: The states whose services the renewals card counts (``renewals_due``'s).
_RENEWING: Final = frozenset({SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE})


@functools.lru_cache(maxsize=1 << 16)
def units_decimal(units: int, digits: int) -> Decimal:
    """Ledger units as the exact Decimal they stand for (trailing zeros dropped).

    Cached: a rebuild meets the same levels and prices again and again (Decimals are
    immutable, so sharing one is safe)."""
    if units == 0:
        return Decimal(0)
    c = EXACT_CONTEXT
    d = Decimal(units).scaleb(-digits, context=c).normalize(context=c)
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        d = d.quantize(Decimal(1), context=c)
    return d


@attrs.frozen
class LedgerRows:
    """Rows of ``ledger_customers``, ``ledger_steps``, ``ledger_intervals`` and
    ``ledger_first_paid``."""

    customers: list[Row]
    steps: list[Row]
    intervals: list[Row]
    first_paid: list[Row] = attrs.field(factory=list)


_NO_LIMBS: Final = (None,) * 7


@functools.cache
def _limb_names(name: str) -> tuple[str, ...]:
    return tuple(f"{name}_l{k}" for k in range(7))


def _money(row: Row, name: str, value: Decimal | None, limbs: bool) -> None:
    row[name] = value
    if limbs:
        parts = _NO_LIMBS if value is None else to_limbs(value)
        row.update(zip(_limb_names(name), parts, strict=True))


def _missing(e: MissingRateError) -> str:
    return f"{e.source} {e.target} {e.on}"


def build_rows(
    subscriptions: Sequence[Subscription],
    fx: FxRates,
    *,
    currency: str,
    policy: MetricsPolicy,
    horizon: datetime,
    limbs: bool,
) -> LedgerRows:
    """The ledger rows of every customer owning one of ``subscriptions`` (all of each
    customer's subscriptions must be given)."""
    out = LedgerRows([], [], [])
    if not subscriptions:
        return out
    # Streams in id order, so the rows (and their seq) never depend on how they were read.
    subscriptions = sorted(subscriptions, key=lambda sub: sub.id)
    try:
        analyses = [_analyse(subscriptions, fx, currency, policy, horizon)]
    except MissingRateError:
        # Find the customers whose rates are missing; the others are built as usual.
        by_customer: dict[str, list[Subscription]] = defaultdict(list)
        for sub in subscriptions:
            by_customer[sub.customer_id].append(sub)
        analyses = []
        for cid in sorted(by_customer):
            try:
                analyses.append(_analyse(by_customer[cid], fx, currency, policy, horizon))
            except MissingRateError as e:
                out.customers.append({"customer_id": cid, "missing": _missing(e)})
    built = {row["customer_id"] for row in out.customers}
    for a in analyses:
        _rows_of(a, policy, limbs, out)
    owners = sorted({s.customer_id for s in subscriptions} - built)
    out.customers.extend({"customer_id": cid, "missing": None} for cid in owners)
    return out


def _analyse(
    subs: Iterable[Subscription],
    fx: FxRates,
    currency: str,
    policy: MetricsPolicy,
    horizon: datetime,
) -> MrrAnalysis:
    book = Book(subscriptions=tuple(subs), fx=fx)  # no references to check: records stored
    return analyse(book, currency=currency, policy=policy, horizon=horizon)


def _rows_of(a: MrrAnalysis, policy: MetricsPolicy, limbs: bool, out: LedgerRows) -> None:
    # The analysis's columns (steps, the sweep's converted values, events): the same
    # arrays MrrAnalysis aggregates, read once here.
    out.first_paid.extend(
        {"customer_id": cid, "at": at} for cid, at in sorted(a.first_paid().items())
    )
    steps, sweep, ev = a._steps, a._prefix, a._ledger
    digits = steps.digits
    ids = steps.customer_ids
    at = steps.at.tolist()
    stream = steps.stream.tolist()
    value = sweep.value.tolist()
    measured = sweep.measured.tolist()
    owner = steps.stream_customer.tolist()
    cur = steps.stream_currency.tolist()
    n = len(at)
    seq: dict[str, int] = defaultdict(int)
    for i in range(n):
        s = stream[i]
        end = at[i + 1] if i + 1 < n and stream[i + 1] == s else None
        v = int(value[i])
        if v == 0 or end == at[i]:
            continue
        cid = ids[owner[s]]
        row: Row = {
            "customer_id": cid,
            "seq": seq[cid],
            "stream_id": steps.stream_keys[s],
            "currency": steps.currencies[cur[s]],
            "measured": bool(measured[i]),
            "start_at": moment_from_value(at[i]),
            "end_at": None if end is None else moment_from_value(end),
        }
        _money(row, "amount", units_decimal(v, digits), limbs)
        seq[cid] += 1
        out.steps.append(row)
    # Movements of the natural grouping, keyed by the event that opens them.
    m = a._classified([_LOW, _HIGH])
    opened = {
        int(e): (KINDS[int(k)], int(amount))
        for e, k, amount in zip(m.first.tolist(), m.kind.tolist(), m.amount.tolist(), strict=True)
    }
    window = policy.grouping_window
    window_us = None if window is None else window // _US
    keep_free = not policy.free_plans_churn
    e_at = ev.at.tolist()
    before = ev.before.tolist()
    after = ev.after.tolist()
    free = ev.free_after.tolist()
    ptr = ev.ptr.tolist()
    for c, cid in enumerate(ids):
        lo, hi = ptr[c], ptr[c + 1]
        for e in range(lo, hi):
            nxt = e_at[e + 1] if e + 1 < hi else None
            joins = nxt is not None and window_us is not None and nxt - e_at[e] <= window_us
            kind = opened.get(e)
            level = int(after[e])
            row = {
                "customer_id": cid,
                "seq": e - lo,
                "start_at": moment_from_value(e_at[e]),
                "end_at": None if nxt is None else moment_from_value(nxt),
                "before": units_decimal(int(before[e]), digits),
                "counted": level > 0 or (keep_free and bool(free[e])),
                "free_after": bool(free[e]),
                "kind": None if kind is None else kind[0],
                "joins_next_at": moment_from_value(nxt) if joins and nxt is not None else None,
            }
            _money(row, "mrr", units_decimal(level, digits), limbs)
            _money(row, "amount", None if kind is None else units_decimal(kind[1], digits), limbs)
            out.intervals.append(row)


def build_cash_rows(
    transactions: Sequence[Transaction],
    credits: Sequence[CreditEntry],
    fx: FxRates,
    *,
    currency: str,
    customer_ids: Sequence[str],
    limbs: bool,
) -> tuple[list[Row], list[Row]]:
    """The ``ledger_cash`` rows of these customers (all their transactions and credit
    entries given), and the ``ledger_cash_missing`` rows of those lacking a rate.

    ``limbs`` (SQLite): the rows hold the values as SQLite stores them (moments in
    microseconds, amounts as decimal text, which :func:`~revcrm.storage._codec.flat`
    passes on unchanged), for the driver only; else typed values (PostgreSQL)."""
    rows: list[Row] = []
    missing: list[Row] = []
    ids = tuple(sorted(set(customer_ids)))
    book = Book(transactions=tuple(transactions), credits=tuple(credits), fx=fx)
    try:
        cols = [cash_columns(book, currency, customer_ids=ids)]
    except MissingRateError:
        # Find the customers whose rates are missing; the others are built as usual.
        cols = []
        for cid in ids:
            try:
                cols.append(cash_columns(book, currency, customer_ids=(cid,)))
            except MissingRateError as e:
                missing.append({"customer_id": cid, "missing": _missing(e)})
    # SQLite's rows carry the stored values themselves (microseconds, decimal text): the
    # entries' moments are microseconds already, so no datetime is made to be undone.
    for c in cols:
        for entry in c.rows():
            amount = units_decimal(entry.amount, entry.digits)
            reporting = entry.amount_reporting
            value = None if reporting is None else units_decimal(reporting, entry.digits)
            row: Row = {
                "customer_id": entry.customer_id,
                "kind": entry.kind,
                "entry_id": entry.entry_id,
                "at": entry.at if limbs else moment_from_value(entry.at),
                "currency": entry.currency,
                "amount": str(amount) if limbs else amount,
            }
            _money(row, "reporting", value, limbs)
            if limbs and value is not None:
                row["reporting"] = str(value)
            row["invoice_id"] = entry.invoice_id
            rows.append(row)
    return rows, missing


def build_service_rows(
    subscriptions: Sequence[Subscription],
    invoices: Sequence[Invoice],
    plans: Sequence[Plan],
    *,
    customer_ids: Sequence[str],
    horizon: datetime,
) -> tuple[list[Row], list[Row], list[Row], list[Row], list[Row]]:
    """The ``ledger_services``, ``ledger_status``, ``ledger_overdue``, ``ledger_reach``
    and ``ledger_invoiced`` rows of these customers (all their
    subscriptions and invoices given; ``plans``: at least those the subscriptions name),
    scheduled cancellations cut up to ``horizon``."""
    ids = tuple(sorted(set(customer_ids)))
    book = Book(plans=tuple(plans), subscriptions=tuple(subscriptions))
    services: list[Row] = []
    seq: dict[str, int] = defaultdict(int)
    cols = service_columns(book, customer_ids=ids, horizon=horizon)
    for i, state in enumerate(cols.rows()):
        cid = state.customer_id
        services.append(
            {
                "customer_id": cid,
                "seq": seq[cid],
                "subscription_id": state.subscription_id,
                "start_at": moment_from_value(state.start),
                "end_at": None if state.end is None else moment_from_value(state.end),
                "status": state.status,
                "active": state.active,
                "troubled": state.troubled,
                "cancellation_at": (
                    None
                    if state.cancellation_at is None
                    else moment_from_value(state.cancellation_at)
                ),
                "product_id": state.product_id,
                "anchor": cols.anchors[i],
                "cycle_count": cols.cycles[i].count,
                "cycle_unit": cols.cycles[i].unit.value,
            }
        )
        seq[cid] += 1
    subs: dict[str, list[Subscription]] = defaultdict(list)
    invs: dict[str, list[Invoice]] = defaultdict(list)
    for sub in subscriptions:
        subs[sub.customer_id].append(sub)
    for inv in invoices:
        invs[inv.customer_id].append(inv)
    status: list[Row] = []
    overdue: list[Row] = []
    invoiced: list[Row] = []
    for cid in ids:
        own = sorted(invs.get(cid, []), key=lambda i: i.id)
        first = first_invoiced_at(own)
        if first is not None:
            invoiced.append({"customer_id": cid, "first_at": first})
        spans = [(inv, lo, hi) for inv in own for lo, hi in overdue_intervals(inv)]
        pieces = status_intervals(cid, subs.get(cid, []), own, spans)
        status.extend(
            {
                "customer_id": cid,
                "seq": k,
                "start_at": p.start,
                "end_at": p.end,
                "status": p.status.value,
            }
            for k, p in enumerate(pieces)
        )
        overdue.extend(
            {"customer_id": cid, "seq": k, "invoice_id": inv.id, "start_at": lo, "end_at": hi}
            for k, (inv, lo, hi) in enumerate(spans)
        )
    reach = _reach_rows(subs, invs)
    return services, status, overdue, reach, invoiced


def _reach_rows(
    subs: Mapping[str, Sequence[Subscription]], invs: Mapping[str, Sequence[Invoice]]
) -> list[Row]:
    """Per subscription, the steps of how far its invoices reach (``service_reach``, the
    Active rule's one definition), each up to the next."""
    rows: list[Row] = []
    for cid in sorted(subs):
        own = sorted(invs.get(cid, ()), key=lambda i: i.id)
        k = 0
        for sub in sorted(subs[cid], key=lambda s: s.id):
            steps = service_reach(sub.id, own)
            for j, step in enumerate(steps):
                rows.append(
                    {
                        "customer_id": cid,
                        "seq": k,
                        "subscription_id": sub.id,
                        "start_at": step.start,
                        "end_at": steps[j + 1].start if j + 1 < len(steps) else None,
                        "billed_through": step.billed_through,
                        "paid_through": step.paid_through,
                    }
                )
                k += 1
    return rows


def build_renewal_rows(subscriptions: Sequence[Subscription], steps: Sequence[Row]) -> list[Row]:
    """The ``ledger_renewals`` rows of the owners of ``subscriptions`` (all of each one's
    given; ``steps``: their ``ledger_steps`` rows): each state that may renew (active or
    past due with no cancellation scheduled, else ``next_renewal`` is None) over its
    interval, cut where its stream's step changes, with its billing calendar and the
    step's MRR. A state superseded at the moment it begins is never the state at a
    moment: left out, as ``state_at`` does."""
    by_stream: dict[str, list[Row]] = defaultdict(list)
    for step in steps:
        by_stream[step["stream_id"]].append(step)
    rows: list[Row] = []
    seq: dict[str, int] = defaultdict(int)
    for sub in sorted(subscriptions, key=lambda s: (s.customer_id, s.id)):
        history = sub.history
        own = sorted(by_stream.get(sub.id, ()), key=lambda r: r["start_at"])
        cid = sub.customer_id
        for i, state in enumerate(sub.states):
            lo = history[i].at
            hi = history[i + 1].at if i + 1 < len(history) else None
            if (hi is not None and hi <= lo) or state.status not in _RENEWING:
                continue
            if state.cancel_at_period_end:
                continue
            months, length_us = cycle_code(state.cycle)
            calendar: Row = {
                "anchor_us": moment_value(state.billing_anchor),
                "months": months,
                "length_us": length_us,
            }
            for start, end, live in _cut(lo, hi, own):
                rows.append(
                    {
                        "customer_id": cid,
                        "seq": seq[cid],
                        "subscription_id": sub.id,
                        "start_at": start,
                        "end_at": end,
                        **calendar,
                        "measured": False if live is None else live["measured"],
                        "currency": sub.currency if live is None else live["currency"],
                        "amount": None if live is None else live["amount"],
                    }
                )
                seq[cid] += 1
    return rows


def _cut(
    lo: datetime, hi: datetime | None, steps: Sequence[Row]
) -> list[tuple[datetime, datetime | None, Row | None]]:
    """``[lo, hi)`` (``hi`` None: open) in pieces, each within one of ``steps`` (disjoint,
    by start) or within none of them (no MRR)."""
    out: list[tuple[datetime, datetime | None, Row | None]] = []
    cursor: datetime | None = lo
    for step in steps:
        if cursor is None or (hi is not None and step["start_at"] >= hi):
            break
        end = step["end_at"]
        if end is not None and end <= cursor:
            continue
        if step["start_at"] > cursor:
            out.append((cursor, step["start_at"], None))
            cursor = step["start_at"]
        stop = end if hi is None or (end is not None and end < hi) else hi
        out.append((cursor, stop, step))
        cursor = stop
    if cursor is not None and (hi is None or cursor < hi):
        out.append((cursor, hi, None))
    return out
