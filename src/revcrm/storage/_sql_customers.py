"""The SQL store's customer list and customer summary.

Money columns at a moment sorted and filtered in SQL, paged by signed cursors: MRR, total
paid and LTV as sums over the ledger tables (``LedgerReads``), the credit balance over
the credit entries. A page's rows are the ledger facts of its customers' own records.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from revcrm._book import Book
from revcrm._ledger._fixed import to_decimal
from revcrm._money import EXACT_CONTEXT, Money, check_currency
from revcrm._records import Customer
from revcrm._time import as_of_moment
from revcrm.errors import (
    NotFoundError,
    ValidationError,
)
from revcrm.metrics import FxDateRule
from revcrm.metrics._customer_value import ledger_rows
from revcrm.storage import _reads as ref
from revcrm.storage._memory import row_of, summary_from_records
from revcrm.storage._query import (
    CustomerQuery,
    CustomerRow,
    CustomerSort,
    CustomerSummary,
    Direction,
    Page,
    read_text,
)
from revcrm.storage._schema import (
    Key,
    Moment,
)
from revcrm.storage._sql_db import _chunks
from revcrm.storage._sql_ledger import SQLLedger
from revcrm.storage._sql_ledger_queries import LedgerReads
from revcrm.storage._sql_segments import SQLSegments

__all__ = ["SQLCustomerList"]

_LIMB: Final = 10**12  # one limb of SQLite's money (see revcrm.storage._codec.to_limbs)
_LIMB_SORTS: Final = frozenset({CustomerSort.MRR, CustomerSort.TOTAL_PAID, CustomerSort.LTV})


def _shown(value: Decimal, places: int) -> Decimal:
    """``value`` as the ledger facts show it (:func:`revcrm._ledger._fixed.to_decimal`:
    trailing zeros stripped down to the currency's ``places``)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    digits = max(-exponent, 0)
    return to_decimal(int(value.scaleb(digits, context=EXACT_CONTEXT)), places, digits)


class SQLCustomerList(SQLSegments):
    """The customer list and one customer's summary, over the segment conditions."""

    def _sort_values(
        self, conn: Connection, q: CustomerQuery, rates: Mapping[str, Decimal]
    ) -> tuple[Any, ColumnElement[Any], str] | None:
        """A computed sort column as one grouped aggregate per customer (a subquery with
        ``customer_id`` and ``v``), the value for customers it has no row for, and the
        column's kind. One pass over the table, not one lookup per customer. MRR, total
        paid and LTV are sums of the ledger tables; None when the ledger does not cover
        the list (another currency, past its horizon, a customer lacking a rate): the
        page then sorts the customers' own ledger facts (``_facts_page``)."""
        s = self._schema
        tx, cr = s.transactions, s.credits
        ops = self._ops
        t = q.as_of
        zero: ColumnElement[Any] = sa.literal_column("'0'") if self._sqlite else sa.literal(0)
        payment = tx.c.kind == "payment"
        reads = LedgerReads(cast(SQLLedger, self))
        match q.sort:
            case CustomerSort.MRR:
                if not reads.list_covered(conn, q.currency, t):
                    return None
                by_rule = self._policy.fx_date is FxDateRule.SERVICE_PERIOD_START
                measured = None if by_rule else rates
                return reads.customer_mrr_values(t, measured), zero, "money"
            case CustomerSort.TOTAL_PAID | CustomerSort.LTV:
                if not reads.cash_covered(conn, q.currency):
                    return None
                net = q.sort is CustomerSort.LTV
                return reads.customer_cash_values(t, net=net), zero, "money"
            case CustomerSort.CREDIT_BALANCE:
                agg = sa.select(cr.c.customer_id, ops.dsum(cr.c).label("v")).where(
                    cr.c.currency == q.currency, cr.c.at <= t
                )
                return agg.group_by(cr.c.customer_id).subquery(), zero, "money"
            case CustomerSort.ACTIVE_SERVICES:
                # The service-state rows: one per subscription at a moment, ``active``
                # the rules' answer (is_active_service) computed when it was written.
                sv = s.ledger_services
                running = sa.and_(
                    sv.c.start_at <= t, sa.or_(sv.c.end_at.is_(None), sv.c.end_at > t)
                )
                agg = sa.select(sv.c.customer_id, sa.func.count().label("v")).where(
                    running, sv.c.active
                )
                return agg.group_by(sv.c.customer_id).subquery(), sa.literal(0), "int"
            case CustomerSort.LAST_PAYMENT:
                never = sa.literal(ref.NEVER, Moment())
                if reads.cash_complete(conn):
                    return reads.last_payments(t), never, "moment"
                # Some customer's entries lack a rate (none of them in the cash entries).
                agg = sa.select(tx.c.customer_id, sa.func.max(tx.c.at).label("v")).where(
                    tx.c.status == "succeeded", payment, tx.c.at <= t
                )
                return agg.group_by(tx.c.customer_id).subquery(), never, "moment"
        raise AssertionError(q.sort)

    def _filters(self, conn: Connection, q: CustomerQuery) -> list[ColumnElement[bool]]:
        s = self._schema
        c, sp = s.customers, s.spans
        conds: list[ColumnElement[bool]] = []
        if q.search is not None:
            conds.append(
                sa.or_(
                    self._ops.contains(c.c.name_fold, q.search),
                    self._ops.contains(c.c.email_fold, q.search),
                    self._ops.contains(c.c.username_fold, q.search),
                )
            )
        if q.owner_id is not None:
            conds.append(c.c.owner_id == q.owner_id)
        if q.referral_source is not None:
            conds.append(c.c.referral_source == q.referral_source)
        if q.registered_from is not None:
            conds.append(c.c.registered_at >= q.registered_from)
        if q.registered_before is not None:
            conds.append(c.c.registered_at < q.registered_before)
        if q.customer_ids is not None:
            conds.append(c.c.id.in_(sorted(q.customer_ids)))
        if q.paying is not None:
            reads = LedgerReads(cast(SQLLedger, self))
            paying = reads.paying_cond(conn, q.as_of, c.c.id)
            if paying is None:  # the ledger does not cover it: the spans of MRR above zero
                paying = (
                    sa.select(sp.c.subscription_id)
                    .where(sp.c.customer_id == c.c.id, sp.c.positive, self._contains(q.as_of))
                    .exists()
                )
            conds.append(paying if q.paying else ~paying)
        if q.has_active_services is not None:
            sv = s.ledger_services
            live = self._ledger_holds(sv, q.as_of, sv.c.active)
            conds.append(live if q.has_active_services else ~live)
        return conds

    def _customer_page(self, q: CustomerQuery) -> Page[CustomerRow]:
        after = q.after()

        def run(conn: Connection) -> Page[CustomerRow]:
            rates = ref.list_rates(
                self._currencies(conn), self._rates(conn), q.currency, q.as_of.date()
            )
            c = self._schema.customers
            conds = self._filters(conn, q) + self._service_filters(conn, q)
            desc = q.direction is Direction.DESC
            plain = {
                CustomerSort.ID: (c.c.id, "str"),
                CustomerSort.NAME: (c.c.name_fold, "str"),
                CustomerSort.EMAIL: (c.c.email_fold, "str"),
                CustomerSort.CREATED: (c.c.registered_at, "moment"),
            }
            value: ColumnElement[Any]
            if self._sqlite and q.sort in _LIMB_SORTS:
                done = self._limb_page(conn, q, rates, conds)
                if done is not None:
                    return done
            if q.sort in plain:
                value, kind = plain[q.sort]
                base = sa.select(c.c.id.label("id"), value.label("v")).where(*conds).subquery()
            else:
                found = self._sort_values(conn, q, rates)
                if found is None:
                    return self._facts_page(conn, q, rates, conds)
                agg, missing, kind = found
                value = sa.func.coalesce(agg.c.v, missing)
                if kind == "moment":
                    value = sa.type_coerce(value, Moment())
                joined = c.outerjoin(agg, agg.c.customer_id == c.c.id)
                base = (
                    sa.select(c.c.id.label("id"), value.label("v"))
                    .select_from(joined)
                    .where(*conds)
                    .subquery()
                )
            key = self._ops.money_key(base.c.v) if kind == "money" else base.c.v
            stmt = sa.select(base.c.id)
            if after is not None:
                av, aid = after
                literal: ColumnElement[Any]
                if kind == "money":
                    if not isinstance(av, Decimal):
                        raise ValidationError("cursor", q.cursor, "not a cursor of this sort")
                    literal = self._ops.money_key_value(av)
                elif kind == "moment":
                    literal = sa.literal(av, Moment())
                elif kind == "int":
                    literal = sa.literal(av, sa.Integer())
                else:
                    literal = sa.literal(av, Key())
                pair, other = sa.tuple_(key, base.c.id), sa.tuple_(literal, sa.literal(aid, Key()))
                stmt = stmt.where(pair < other if desc else pair > other)
            order = [key.desc(), base.c.id.desc()] if desc else [key, base.c.id]
            ids = [r[0] for r in conn.execute(stmt.order_by(*order).limit(q.limit + 1))]
            more = len(ids) > q.limit
            ids = ids[: q.limit]
            rows = self._rows(conn, ids, at=q.as_of, currency=q.currency, rates=rates)
            cursor = None
            if more and rows:
                cursor = q.next_cursor(ref.sort_value(rows[-1], q.sort), rows[-1].id)
            return Page(items=tuple(rows), next_cursor=cursor, as_of=q.as_of)

        return self._run(False, run)

    def _limb_page(
        self,
        conn: Connection,
        q: CustomerQuery,
        rates: Mapping[str, Decimal],
        conds: list[ColumnElement[bool]],
    ) -> Page[CustomerRow] | None:
        """SQLite: a page sorted by MRR, total paid or LTV on integers alone, when the
        ledger covers the list, the figure is a plain sum (no measured step to convert)
        and every amount in scope has limbs. Each customer's limb sums (integers summed
        in C) weighted into one Python integer, the value exactly; the page is the top
        keys (a heap, no full sort). Normalising the carries in SQL instead (a
        materialised step per limb) took longer than the sums themselves. None: the
        exact path."""
        reads = LedgerReads(cast(SQLLedger, self))
        t = q.as_of
        if q.sort is CustomerSort.MRR:
            by_rule = self._policy.fx_date is FxDateRule.SERVICE_PERIOD_START
            if not reads.list_covered(conn, q.currency, t):
                return None
            if not by_rule and not set(rates) <= {q.currency}:
                return None  # measured steps to convert at the moment's rates
            sums = reads.customer_limb_sums(t, cash=False)
        else:
            if not reads.cash_covered(conn, q.currency):
                return None
            net = q.sort is CustomerSort.LTV
            sums = reads.customer_limb_sums(t, cash=True, net=net)
        desc = q.direction is Direction.DESC
        mark: tuple[int, str] | None = None
        after = q.after()
        if after is not None:
            av, aid = after
            if not isinstance(av, Decimal):
                raise ValidationError("cursor", q.cursor, "not a cursor of this sort")
            units = av.scaleb(48, context=EXACT_CONTEXT)
            if units != units.to_integral_value():
                return None  # no value of limbs: the exact path answers
            mark = (int(units), aid)
        c = self._schema.customers
        stmt = (
            sa.select(c.c.id, sums.c.neg, *(sums.c[f"s{k}"] for k in range(7)), sums.c.bare)
            .select_from(c.outerjoin(sums, sums.c.customer_id == c.c.id))
            .where(*conds)
        )
        # Each customer's value in units of 10**-48 as one exact integer, the limb sums
        # (most significant first; None: no row) by Horner's rule: no carry to normalise;
        # the refunds' taken off.
        b = _LIMB
        values: dict[str, int] = {}
        for cid, neg, s0, s1, s2, s3, s4, s5, s6, bare in conn.execute(stmt).all():
            if bare:
                return None  # an amount without limbs: the exact path answers
            v = ((s0 or 0) * b + (s1 or 0)) * b + (s2 or 0)
            v = ((v * b + (s3 or 0)) * b + (s4 or 0)) * b + (s5 or 0)
            v = v * b + (s6 or 0)
            key = str(cid)
            values[key] = values.get(key, 0) + (-v if neg else v)
        keyed = [(v, cid) for cid, v in values.items()]
        if mark is not None:
            keyed = [k for k in keyed if (k < mark if desc else k > mark)]
        pick = heapq.nlargest if desc else heapq.nsmallest
        ids = [cid for _, cid in pick(q.limit + 1, keyed)]
        rows = self._rows(conn, ids[: q.limit], at=t, currency=q.currency, rates=rates)
        cursor = None
        if len(ids) > q.limit and rows:
            cursor = q.next_cursor(ref.sort_value(rows[-1], q.sort), rows[-1].id)
        return Page(items=tuple(rows), next_cursor=cursor, as_of=t)

    def _facts_page(
        self,
        conn: Connection,
        q: CustomerQuery,
        rates: Mapping[str, Decimal],
        conds: list[ColumnElement[bool]],
    ) -> Page[CustomerRow]:
        """A page sorted by a ledger figure the ledger tables do not cover: every filtered
        customer's row from its own records (the ledger facts, as for the page rows),
        ordered here by the row's sort value."""
        c = self._schema.customers
        ids = [str(r[0]) for r in conn.execute(sa.select(c.c.id).where(*conds))]
        rows = self._rows(conn, ids, at=q.as_of, currency=q.currency, rates=rates)
        desc = q.direction is Direction.DESC
        decorated = sorted(
            ((ref.sort_value(r, q.sort), r.id, r) for r in rows),
            key=lambda d: (d[0], d[1]),
            reverse=desc,
        )
        after = q.after()
        if after is not None:
            av, aid = after
            if not isinstance(av, Decimal):
                raise ValidationError("cursor", q.cursor, "not a cursor of this sort")
            mark = (av, aid)
            decorated = [
                d for d in decorated if ((d[0], d[1]) < mark if desc else (d[0], d[1]) > mark)
            ]
        chosen = [d[2] for d in decorated[: q.limit]]
        cursor = None
        if len(decorated) > q.limit and chosen:
            cursor = q.next_cursor(ref.sort_value(chosen[-1], q.sort), chosen[-1].id)
        return Page(items=tuple(chosen), next_cursor=cursor, as_of=q.as_of)

    # -- service states: status, product and built-in segments ---------------------------

    def _rows(
        self,
        conn: Connection,
        ids: Sequence[str],
        *,
        at: datetime,
        currency: str,
        rates: Mapping[str, Decimal],
    ) -> list[CustomerRow]:
        """The list rows of ``ids`` (in that order): the ledger's figures of just these
        customers (:meth:`LedgerReads.page_values`) when it covers them, else (and for
        those it could not build) the ledger facts of their own records."""
        if not ids:
            return []
        found = LedgerReads(cast(SQLLedger, self)).page_values(conn, ids, at, currency)
        if found is None:
            return self._record_rows(conn, ids, at=at, currency=currency)
        values, lacking = found
        c = self._schema.customers
        customers: dict[str, Customer] = {}
        for chunk in _chunks(list(ids)):
            customers.update((x.id, x) for x in self._load(conn, "customer", c.c.id.in_(chunk)))
        rows = {}
        if lacking:
            rows = {r.id: r for r in self._record_rows(conn, lacking, at=at, currency=currency)}
        places = Money.zero(currency).minor_units

        def money(value: Decimal) -> Money:
            return Money(_shown(value, places), currency)

        out = []
        for cid in ids:
            row = rows.get(cid)
            if row is None:
                v = values[cid]
                row = CustomerRow(
                    customer=customers[cid],
                    mrr=money(v.mrr),
                    ltv=money(EXACT_CONTEXT.subtract(v.total_paid, v.refunded)),
                    total_paid=money(v.total_paid),
                    credit_balance=money(v.credit_balance),
                    active_services=v.active_services,
                    last_payment_at=v.last_payment_at,
                )
            out.append(row)
        return out

    def _record_rows(
        self, conn: Connection, ids: Sequence[str], *, at: datetime, currency: str
    ) -> list[CustomerRow]:
        """The list rows of ``ids`` as the ledger facts of their own records (a small
        book of them: the one definition, as the in-memory store computes them)."""
        wanted = list(ids)

        def owned(kind: str) -> list[Any]:
            head = self._head(kind)
            found: list[Any] = []
            for chunk in _chunks(wanted):
                found.extend(self._load(conn, kind, head.c.customer_id.in_(list(chunk))))
            return found

        c = self._schema.customers
        customers: list[Customer] = []
        for chunk in _chunks(wanted):
            customers.extend(self._load(conn, "customer", c.c.id.in_(list(chunk))))
        # The page's own records make a small book whose ledger facts are these rows
        # (the one definition, as the in-memory store computes them).
        mini = Book(
            customers=tuple(customers),
            subscriptions=tuple(owned("subscription")),
            invoices=tuple(owned("invoice")),
            transactions=tuple(owned("transaction")),
            credits=tuple(owned("credit")),
            fx=self._rates(conn),
        )
        ledger = ledger_rows(mini, as_of=at, currency=currency, policy=self._policy)
        index = ledger.facts.index()
        by_id = {x.id: x for x in customers}
        return [row_of(by_id[cid], ledger.facts, index[cid]) for cid in ids]

    def customer_summary(
        self, customer_id: str, *, as_of: date | datetime, currency: str
    ) -> CustomerSummary:
        read_text(customer_id, "customer_id")
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)

        def run(conn: Connection) -> CustomerSummary:
            # One customer's rows are few: load them (indexed by customer) and compute its
            # figures from them exactly as the in-memory store does.
            found = self._load(conn, "customer", self._schema.customers.c.id == customer_id)
            if not found:
                raise NotFoundError("customer", customer_id)

            def owned(kind: str, time_column: str) -> tuple[Any, ...]:
                head = self._head(kind)
                order = [head.c[time_column], head.c.id]
                return tuple(self._load(conn, kind, head.c.customer_id == customer_id, order=order))

            return summary_from_records(
                found[0],
                owned("subscription", "started_at"),
                owned("invoice", "issued_at"),
                owned("transaction", "at"),
                owned("credit", "at"),
                fx=self._rates(conn),
                at=t,
                currency=currency,
                policy=self._policy,
            )

        return self._run(False, run)

    # -- dashboard aggregates ------------------------------------------------------------
