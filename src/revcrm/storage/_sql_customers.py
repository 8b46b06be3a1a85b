"""The SQL store's customer list and customer summary.

Money columns (MRR, LTV, balance) at a moment as aggregates over the spans and payments,
sorted and filtered in SQL, paged by signed cursors.
"""

from __future__ import annotations

import decimal
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from revcrm._book import Book
from revcrm._money import EXACT_CONTEXT, FxRates, check_currency
from revcrm._records import Customer
from revcrm._time import as_of_moment
from revcrm.errors import (
    NotFoundError,
    ValidationError,
)
from revcrm.metrics import FxDateRule
from revcrm.metrics._customer_value import ledger_rows
from revcrm.storage import _reference as ref
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
from revcrm.storage._sql_decimal import (
    _ZERO,
    _dec,
    _rate_case,
)
from revcrm.storage._sql_metrics import SQLMetrics
from revcrm.storage._sql_segments import SQLSegments

__all__ = ["SQLCustomerList"]

_T = TypeVar("_T")

_LIMB: Final = 10**12  # one limb of SQLite's money (see revcrm.storage._codec.to_limbs)
_FRACTION_LIMBS: Final = (3, 4, 5, 6)  # the limbs of 1e-12, 1e-24, 1e-36 and 1e-48
_MAX_UNITS: Final = 10**9  # the whole units of a span the integer MRR sort takes
_MAX_FACTOR: Final = 10**5  # the scaled rates it takes: no sum can pass 2**63


class SQLCustomerList(SQLSegments):
    """The customer list and one customer's summary, over the segment conditions."""

    def _running(self, t: datetime) -> ColumnElement[bool]:
        st = self._schema.states
        return sa.and_(st.c.from_at <= t, sa.or_(st.c.to_at.is_(None), st.c.to_at > t))

    def _cash_values(self, conn: Connection, q: CustomerQuery, plain: bool) -> Any:
        """Per customer (a subquery of ``customer_id`` and ``v``) total paid or LTV (net
        payments) up to ``q.as_of``, each transaction converted at its own date (the
        ledger's definition): one rate per foreign (currency, day), from ``_day_rates``."""
        tx = self._schema.transactions
        ops = self._ops
        t = q.as_of
        payment = tx.c.kind == "payment"
        conds = [tx.c.status == "succeeded", tx.c.at <= t]
        if q.sort is CustomerSort.TOTAL_PAID:
            conds.append(payment)
        sign: ColumnElement[Any] = sa.case((payment, 1), else_=-1)
        days = {} if plain else self._payment_days(conn, t, q.currency, self._rates(conn))
        if not days:
            if q.sort is CustomerSort.TOTAL_PAID:
                value = ops.dsum(tx.c)
            else:
                value = ops.dsum(tx.c, sign=sign)
            stmt = sa.select(tx.c.customer_id, value.label("v")).where(*conds)
            return stmt.group_by(tx.c.customer_id).subquery()
        rates = self._day_rates(conn, days, self._rates(conn), q.currency)
        source: Any = tx
        if self._sqlite:
            own = sa.case((payment, sa.literal_column("'1'")), else_=sa.literal_column("'-1'"))
            factor: ColumnElement[Any] = sa.case(
                (tx.c.currency == q.currency, own),
                else_=sa.func.rc_fx(tx.c.currency, tx.c.at_day, payment),
            )
            value = sa.func.coalesce(
                sa.func.rc_dsumx(tx.c.amount, factor), sa.literal_column("'0'")
            )
        else:
            source = tx.outerjoin(
                rates, sa.and_(rates.c.cur == tx.c.currency, rates.c.day == tx.c.at_day)
            )
            converted = sa.case((payment, rates.c.rate), else_=rates.c.neg)
            value = sa.func.coalesce(
                sa.func.sum(tx.c.amount * sa.func.coalesce(converted, sign)), 0
            )
        stmt = sa.select(tx.c.customer_id, value.label("v")).select_from(source).where(*conds)
        return stmt.group_by(tx.c.customer_id).subquery()

    def _customer_mrrs(self, conn: Connection, t: datetime, currency: str) -> dict[str, Decimal]:
        """Every paying customer's MRR at ``t`` under the policy's FX rule (the ledger's
        definition, as the store's ``mrr`` computes it): sums per (customer, currency,
        billing calendar) in SQL, converted here at each group's date."""
        sp = self._schema.spans
        metrics = cast(SQLMetrics, self)
        by_period = self._policy.fx_date is FxDateRule.SERVICE_PERIOD_START
        names = ["k0", "k1", "k2", "k3", "k4"]
        cols: list[ColumnElement[Any]] = [
            sp.c.customer_id.label("cid"),
            sp.c.currency.label("cur"),
            *SQLMetrics._money(metrics, sp.c),
        ]
        if by_period:
            keys = SQLMetrics._period_keys(metrics, sp.c, t, before_anchor_starts=False)
            own = sp.c.currency == currency
            cols += [
                sa.case((own, sa.null()), else_=k).label(n)
                for k, n in zip(keys, names, strict=True)
            ]
        inner = sa.select(*cols).where(sp.c.positive, self._contains(t, scan=True)).subquery()
        group: list[ColumnElement[Any]] = [inner.c.cid, inner.c.cur]
        if by_period:
            group += [inner.c[n] for n in names]
        stmt: sa.Select[Any] = sa.select(*group, self._ops.dsum(inner.c)).group_by(*group)
        fx: FxRates | None = None
        rates: dict[tuple[str, date], Decimal] = {}
        out: dict[str, Decimal] = defaultdict(Decimal)
        with decimal.localcontext(EXACT_CONTEXT):
            for row in conn.execute(stmt):
                values: Any = tuple(row)
                cid, cur = str(values[0]), str(values[1])
                amount = _dec(values[-1])
                if cur != currency and amount:
                    day = SQLMetrics._period_day(values[2:7], t) if by_period else t.date()
                    rate = rates.get((cur, day))
                    if rate is None:
                        fx = fx or self._rates(conn)
                        rate = rates[(cur, day)] = fx.rate(cur, currency, day)
                    amount *= rate
                out[cid] += amount
        return out

    def _sort_values(
        self, conn: Connection, q: CustomerQuery, rates: Mapping[str, Decimal]
    ) -> tuple[Any, ColumnElement[Any], str]:
        """A computed sort column as one grouped aggregate per customer (a subquery with
        ``customer_id`` and ``v``), the value for customers it has no row for, and the
        column's kind. One pass over the table, not one lookup per customer."""
        s = self._schema
        sp, tx, cr = s.spans, s.transactions, s.credits
        ops = self._ops
        t = q.as_of
        plain = set(rates) <= {q.currency}  # nothing to convert
        zero: ColumnElement[Any] = sa.literal_column("'0'") if self._sqlite else sa.literal(0)
        payment = tx.c.kind == "payment"

        def converted(
            table: Any, conds: list[ColumnElement[bool]], sign: ColumnElement[Any] | None = None
        ) -> Any:
            # Exact sums per customer and currency first (integer limbs on SQLite), then
            # one conversion per customer and currency: never one per row.
            per_currency = (
                sa.select(
                    table.c.customer_id,
                    table.c.currency,
                    ops.dsum(table.c, sign=sign).label("s"),
                )
                .where(*conds)
                .group_by(table.c.customer_id, table.c.currency)
            )
            if plain:
                only = sa.select(table.c.customer_id, ops.dsum(table.c, sign=sign).label("v"))
                return only.where(*conds).group_by(table.c.customer_id).subquery()
            inner = per_currency.subquery()
            total = ops.dsum_times(inner.c.s, _rate_case(inner.c.currency, rates))
            return (
                sa.select(inner.c.customer_id, total.label("v"))
                .group_by(inner.c.customer_id)
                .subquery()
            )

        match q.sort:
            case CustomerSort.MRR:
                agg = converted(sp, [sp.c.positive, self._contains(t, scan=True)])
                return agg, zero, "money"
            case CustomerSort.TOTAL_PAID | CustomerSort.LTV:
                return self._cash_values(conn, q, plain), zero, "money"
            case CustomerSort.CREDIT_BALANCE:
                agg = sa.select(cr.c.customer_id, ops.dsum(cr.c).label("v")).where(
                    cr.c.currency == q.currency, cr.c.at <= t
                )
                return agg.group_by(cr.c.customer_id).subquery(), zero, "money"
            case CustomerSort.ACTIVE_SERVICES:
                st = s.states
                agg = sa.select(st.c.customer_id, sa.func.count().label("v")).where(
                    self._running(t), self._active_state(t)
                )
                return agg.group_by(st.c.customer_id).subquery(), sa.literal(0), "int"
            case CustomerSort.LAST_PAYMENT:
                agg = sa.select(tx.c.customer_id, sa.func.max(tx.c.at).label("v")).where(
                    tx.c.status == "succeeded", payment, tx.c.at <= t
                )
                never = sa.literal(ref.NEVER, Moment())
                return agg.group_by(tx.c.customer_id).subquery(), never, "moment"
        raise AssertionError(q.sort)

    def _mrr_scale(
        self, conn: Connection, rates: Mapping[str, Decimal]
    ) -> tuple[int, dict[str, int]] | None:
        """SQLite: whether the MRR sort can run on integers alone, and how.

        An MRR is ``sum(rate x amount)``. When every positive span's amount is below a
        billion (its limbs are the whole units ``l2`` and the fraction limbs ``l3..l6``,
        see :func:`revcrm.storage._codec.to_limbs`) and every rate is ``n / 10**d`` with
        a small ``n``, the MRR times ``10**(48 + d)`` is an exact integer that SQLite's
        own integer arithmetic computes without overflow, limb by limb (``_mrr_keys``):
        no Python aggregate per customer. Returns ``(d, n per currency)``, or None when
        a span or a rate needs the exact Python aggregates (``_sort_values``)."""
        if not rates:
            return None  # nothing stored in any currency: no factor to multiply by
        places = 0
        for rate in rates.values():
            exponent = rate.normalize(context=EXACT_CONTEXT).as_tuple().exponent
            if not isinstance(exponent, int):
                return None
            places = max(places, -exponent)
        scaled = {cur: rate.scaleb(places, context=EXACT_CONTEXT) for cur, rate in rates.items()}
        if any(n != n.to_integral_value() or not 0 <= n < _MAX_FACTOR for n in scaled.values()):
            return None
        sp = self._schema.spans
        outside = sa.or_(
            sp.c.amount_l0.is_(None),
            sp.c.amount_l0 != 0,
            sp.c.amount_l1 != 0,
            sp.c.amount_l2 < 0,
            sp.c.amount_l2 >= _MAX_UNITS,
            *(sp.c[f"amount_l{k}"] < 0 for k in _FRACTION_LIMBS),
        )
        found = conn.execute(sa.select(sa.literal(1)).where(sp.c.positive, outside).limit(1))
        if found.first() is not None:
            return None
        return places, {cur: int(n) for cur, n in scaled.items()}

    def _mrr_keys(self, t: datetime, factors: Mapping[str, int]) -> Any:
        """Per customer the key columns ``k2..k6`` with ``MRR x 10**(48 + d) =
        sum(k_j x 10**(12 x (6 - j)))`` and ``0 <= k_j < 10**12`` for j > 2 (see
        ``_mrr_scale``), from the limbs of the spans running at ``t``: per currency the
        limb sums with their carries, times the rate's ``n``; per customer the sums of
        those, with their carries again."""
        sp = self._schema.spans
        limb: ColumnElement[int] = sa.literal_column(str(_LIMB), sa.BigInteger())

        def carried(sums: list[ColumnElement[Any]]) -> list[ColumnElement[Any]]:
            # sums[0] whole units, then the fraction limbs: each limb below 10**12.
            out: list[ColumnElement[Any]] = []
            carry: ColumnElement[Any] | None = None
            for value in reversed(sums[1:]):
                total = value if carry is None else value + carry
                out.append(total % limb)
                carry = total // limb
            out.append(sums[0] if carry is None else sums[0] + carry)
            return out[::-1]

        names = ["amount_l2", *(f"amount_l{k}" for k in _FRACTION_LIMBS)]
        per_currency = (
            sa.select(
                sp.c.customer_id,
                sp.c.currency,
                *(sa.func.sum(sp.c[n]).label(f"s{j}") for j, n in enumerate(names)),
            )
            .where(sp.c.positive, self._contains(t, scan=True))
            .group_by(sp.c.customer_id, sp.c.currency)
            .subquery()
        )
        whens: list[tuple[ColumnElement[bool], ColumnElement[int]]] = [
            (per_currency.c.currency == cur, sa.literal_column(str(n), sa.BigInteger()))
            for cur, n in sorted(factors.items())
        ]
        factor = sa.case(*whens, else_=sa.literal_column("0", sa.BigInteger()))
        limbs = carried([per_currency.c[f"s{j}"] for j in range(len(names))])
        summed = (
            sa.select(
                per_currency.c.customer_id,
                *(sa.func.sum(x * factor).label(f"m{j}") for j, x in enumerate(limbs)),
            )
            .group_by(per_currency.c.customer_id)
            .subquery()
        )
        keys = carried([summed.c[f"m{j}"] for j in range(len(names))])
        return sa.select(
            summed.c.customer_id, *(k.label(f"k{j}") for j, k in enumerate(keys))
        ).subquery()

    def _filters(self, q: CustomerQuery) -> list[ColumnElement[bool]]:
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
            paying = (
                sa.select(sp.c.subscription_id)
                .where(sp.c.customer_id == c.c.id, sp.c.positive, self._contains(q.as_of))
                .exists()
            )
            conds.append(paying if q.paying else ~paying)
        if q.has_active_services is not None:
            live = self._states_at(q.as_of, self._active_state(q.as_of))
            conds.append(live if q.has_active_services else ~live)
        return conds

    def _customer_page(self, q: CustomerQuery) -> Page[CustomerRow]:
        after = q.after()

        def run(conn: Connection) -> Page[CustomerRow]:
            rates = ref.list_rates(
                self._currencies(conn), self._rates(conn), q.currency, q.as_of.date()
            )
            c = self._schema.customers
            conds = self._filters(q) + self._service_filters(conn, q)
            desc = q.direction is Direction.DESC
            plain = {
                CustomerSort.ID: (c.c.id, "str"),
                CustomerSort.NAME: (c.c.name_fold, "str"),
                CustomerSort.EMAIL: (c.c.email_fold, "str"),
                CustomerSort.CREATED: (c.c.registered_at, "moment"),
            }
            value: ColumnElement[Any]
            scale = None
            foreign = not set(rates) <= {q.currency}
            by_period = self._policy.fx_date is FxDateRule.SERVICE_PERIOD_START
            if q.sort is CustomerSort.MRR and foreign and by_period:
                return self._mrr_page_by_rule(conn, q, rates, conds)
            if self._sqlite and q.sort is CustomerSort.MRR:
                scale = self._mrr_scale(conn, rates)
            if scale is not None:
                done = self._mrr_page(conn, q, rates, conds, *scale)
                if done is not None:
                    return done
            if q.sort in plain:
                value, kind = plain[q.sort]
                base = sa.select(c.c.id.label("id"), value.label("v")).where(*conds).subquery()
            else:
                agg, missing, kind = self._sort_values(conn, q, rates)
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

    def _mrr_page_by_rule(
        self,
        conn: Connection,
        q: CustomerQuery,
        rates: Mapping[str, Decimal],
        conds: list[ColumnElement[bool]],
    ) -> Page[CustomerRow]:
        """The MRR sort under the service-period FX rule: each customer's MRR (grouped in
        SQL, converted per billing period here), ordered here over the filtered ids."""
        c = self._schema.customers
        ids = [str(r[0]) for r in conn.execute(sa.select(c.c.id).where(*conds))]
        mrrs = self._customer_mrrs(conn, q.as_of, q.currency)
        desc = q.direction is Direction.DESC
        decorated = sorted(((mrrs.get(i, _ZERO), i) for i in ids), reverse=desc)
        after = q.after()
        if after is not None:
            av, aid = after
            if not isinstance(av, Decimal):
                raise ValidationError("cursor", q.cursor, "not a cursor of this sort")
            if desc:
                decorated = [d for d in decorated if d < (av, aid)]
            else:
                decorated = [d for d in decorated if d > (av, aid)]
        chosen = [i for _, i in decorated[: q.limit]]
        rows = self._rows(conn, chosen, at=q.as_of, currency=q.currency, rates=rates)
        cursor = None
        if len(decorated) > q.limit and rows:
            cursor = q.next_cursor(ref.sort_value(rows[-1], q.sort), rows[-1].id)
        return Page(items=tuple(rows), next_cursor=cursor, as_of=q.as_of)

    def _mrr_page(
        self,
        conn: Connection,
        q: CustomerQuery,
        rates: Mapping[str, Decimal],
        conds: list[ColumnElement[bool]],
        places: int,
        factors: Mapping[str, int],
    ) -> Page[CustomerRow] | None:
        """The MRR sort on SQLite's integers (see ``_mrr_scale``): the same order and
        cursors as the exact aggregates, the rows' figures computed as for every sort."""
        c = self._schema.customers
        keys = self._mrr_keys(q.as_of, factors)
        zero: ColumnElement[int] = sa.literal_column("0", sa.BigInteger())
        width = 1 + len(_FRACTION_LIMBS)
        columns = [sa.func.coalesce(keys.c[f"k{j}"], zero).label(f"k{j}") for j in range(width)]
        base = (
            sa.select(c.c.id.label("id"), *columns)
            .select_from(c.outerjoin(keys, keys.c.customer_id == c.c.id))
            .where(*conds)
            .subquery()
        )
        cols = [*(base.c[f"k{j}"] for j in range(width)), base.c.id]
        desc = q.direction is Direction.DESC
        stmt = sa.select(base.c.id)
        after = q.after()
        if after is not None:
            av, aid = after
            if not isinstance(av, Decimal):
                raise ValidationError("cursor", q.cursor, "not a cursor of this sort")
            units = av.scaleb(48 + places, context=EXACT_CONTEXT)
            if units != units.to_integral_value():
                return None  # not a value of these spans and rates: the exact path
            rest, digits = int(units), []
            for _ in _FRACTION_LIMBS:
                rest, low = divmod(rest, _LIMB)
                digits.append(low)
            if not 0 <= rest < 2**63:
                return None
            literals = [sa.literal(v, sa.BigInteger()) for v in [rest, *digits[::-1]]]
            pair = sa.tuple_(*cols)
            other = sa.tuple_(*literals, sa.literal(aid, Key()))
            stmt = stmt.where(pair < other if desc else pair > other)
        order = [col.desc() for col in cols] if desc else cols
        ids = [r[0] for r in conn.execute(stmt.order_by(*order).limit(q.limit + 1))]
        more = len(ids) > q.limit
        rows = self._rows(conn, ids[: q.limit], at=q.as_of, currency=q.currency, rates=rates)
        cursor = None
        if more and rows:
            cursor = q.next_cursor(ref.sort_value(rows[-1], q.sort), rows[-1].id)
        return Page(items=tuple(rows), next_cursor=cursor, as_of=q.as_of)

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
        if not ids:
            return []
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
