"""The customer list of a book from its ledger at ``as_of``: the record filters, the
status filter (the ledger's statuses), the product and segment filters, then sort and page
over the customer facts' columns; rows are built for the page alone. The in-memory store
lists with it (:mod:`revcrm.storage._memory`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from revcrm._book import Book
from revcrm._crm_services import CustomerStatus
from revcrm._ledger._cash import moment_us
from revcrm._ledger._facts import FactColumns, LedgerRows, customer_statuses
from revcrm._ledger._services import OPEN
from revcrm._money import EXACT_CONTEXT
from revcrm.errors import ValidationError
from revcrm.segments._config import SegmentConfig
from revcrm.segments._segments import Segmentation
from revcrm.storage._query import (
    CustomerQuery,
    CustomerRow,
    CustomerSort,
    Direction,
    Page,
    row_of,
)
from revcrm.storage._reads import NEVER, matches, sort_value

__all__ = ["SegmentationOf", "list_from_ledger"]

_MONEY_SORTS: Final = {
    CustomerSort.MRR: "mrr",
    CustomerSort.LTV: "net_payments",
    CustomerSort.TOTAL_PAID: "total_paid",
    CustomerSort.CREDIT_BALANCE: "credit_balance",
}


def _sort_keys(book: Book, facts: FactColumns, sort: CustomerSort, idx: list[int]) -> list[Any]:
    """Per candidate (indexes of ``facts``) a key ordered as ``sort_value`` orders the
    rows: money as units, moments as microseconds (a missing last payment as ``NEVER``)."""
    ids = facts.customer_ids
    customers = book.customer_index
    match sort:
        case CustomerSort.ID:
            return [ids[i] for i in idx]
        case CustomerSort.NAME:
            return [customers[ids[i]].name.casefold() for i in idx]
        case CustomerSort.EMAIL:
            return [(customers[ids[i]].email or "").casefold() for i in idx]
        case CustomerSort.CREATED:
            return [int(facts.registered_at[i]) for i in idx]
        case CustomerSort.ACTIVE_SERVICES:
            return [int(facts.active_services[i]) for i in idx]
        case CustomerSort.LAST_PAYMENT:
            never = moment_us(NEVER)
            last = facts.last_payment_at
            return [never if int(last[i]) == OPEN else int(last[i]) for i in idx]
    column = facts.net_payments if sort is CustomerSort.LTV else getattr(facts, _MONEY_SORTS[sort])
    values = column.tolist()
    return [values[i] for i in idx]


def _cursor_key(q: CustomerQuery, value: object, digits: int) -> object:
    """The cursor's sort value in the keys' terms (see :func:`_sort_keys`)."""
    if q.sort in _MONEY_SORTS:
        if isinstance(value, Decimal | int) and not isinstance(value, bool):
            return Decimal(value).scaleb(digits, context=EXACT_CONTEXT)
    elif q.sort in (CustomerSort.CREATED, CustomerSort.LAST_PAYMENT):
        if isinstance(value, datetime):
            return moment_us(value)
    elif q.sort is CustomerSort.ACTIVE_SERVICES:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, str):
        return value
    raise ValidationError("cursor", q.cursor, "not a cursor of this sort")


SegmentationOf = Callable[[datetime, str, SegmentConfig], Segmentation]


def list_from_ledger(
    book: Book, q: CustomerQuery, ledger: LedgerRows, segmentation_of: SegmentationOf
) -> Page[CustomerRow]:
    """The customer list of ``book`` from its ledger at ``q.as_of``: filters, sort and page
    over the customer facts' columns; rows are built for the page alone."""
    facts = ledger.facts
    index = facts.index()
    candidates = [c for c in book.customers if matches(c, q)]
    if q.status is not None:
        with_status = _with_status(ledger, q.status)
        candidates = [c for c in candidates if c.id in with_status]
    if q.product_id is not None:
        services = ledger.services
        rows = ledger.services_at.active_rows.tolist()
        holders = {
            facts.customer_ids[int(services.customer[r])]
            for r in rows
            if services.product_ids[r] == q.product_id
        }
        candidates = [c for c in candidates if c.id in holders]
    if q.segment is not None:
        members = set(
            segmentation_of(q.as_of, q.currency, q.segment_config).customers_in(q.segment)
        )
        candidates = [c for c in candidates if c.id in members]
    idx = [index[c.id] for c in candidates]
    if q.paying is not None:
        mrr = facts.mrr
        idx = [i for i in idx if (mrr[i] > 0) == q.paying]
    if q.has_active_services is not None:
        active = facts.active_services
        idx = [i for i in idx if (active[i] > 0) == q.has_active_services]
    keys = _sort_keys(book, facts, q.sort, idx)
    ids = facts.customer_ids
    desc = q.direction is Direction.DESC
    decorated = sorted(zip(keys, (ids[i] for i in idx), idx, strict=True), reverse=desc)
    after = q.after()
    if after is not None:
        av, aid = after
        bound = (_cursor_key(q, av, facts.digits), aid)
        if desc:
            decorated = [d for d in decorated if (d[0], d[1]) < bound]
        else:
            decorated = [d for d in decorated if (d[0], d[1]) > bound]
    chosen = decorated[: q.limit]
    customers = book.customer_index
    page = [row_of(customers[d[1]], facts, d[2]) for d in chosen]
    cursor = None
    if len(decorated) > q.limit and page:
        cursor = q.next_cursor(sort_value(page[-1], q.sort), page[-1].id)
    return Page(items=tuple(page), next_cursor=cursor, as_of=q.as_of)


def _with_status(ledger: LedgerRows, status: CustomerStatus) -> set[str]:
    """Customers whose status at the ledger's ``as_of`` is ``status`` (from the ledger's
    service-state rows and facts, by the rule's one definition)."""
    ids = ledger.facts.customer_ids
    return {ids[i] for i, s in enumerate(customer_statuses(ledger)) if s is status}
