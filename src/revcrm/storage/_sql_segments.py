"""The SQL store's segment queries and the customer-list filters they share.

Status, product and segment membership at a moment as SQL conditions over the states,
spans and payments tables; segment counts, members and the LTV baseline.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, TypeVar

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from revcrm._book import Book
from revcrm._cycles import BillingCycle, CycleUnit
from revcrm._ledger._cash import cash_columns, moment_us
from revcrm._ledger._services import OPEN, service_columns
from revcrm._money import Money, check_currency
from revcrm._records import Plan, Transaction
from revcrm._subscription import Subscription
from revcrm._time import as_of_moment
from revcrm.crm._services import CustomerStatus
from revcrm.errors import (
    NotFoundError,
)
from revcrm.segments._config import DEFAULT_CONFIG, Segment, SegmentConfig
from revcrm.segments._rules import (
    SegmentInputs,
    ServiceFacts,
    ServiceReach,
    memberships,
    service_facts_of,
)
from revcrm.segments._segments import LtvBaseline, SegmentCounts
from revcrm.storage._codec import moment_from_value
from revcrm.storage._memory import (
    _check_baseline,
    _check_config,
    _id_list,
)
from revcrm.storage._query import (
    CustomerQuery,
)
from revcrm.storage._schema import (
    Moment,
)
from revcrm.storage._sql_base import (
    _as_moment,
    _literal_ids,
)
from revcrm.storage._sql_db import _chunks
from revcrm.storage._sql_decimal import (
    _ZERO,
    _dec,
)
from revcrm.storage._sql_ledger import NO_HORIZON
from revcrm.storage._sql_ledger_build import units_decimal
from revcrm.storage._sql_service_upkeep import SQLServiceUpkeep

__all__ = ["SQLSegments"]

_T = TypeVar("_T")


@attrs.define
class _CashFacts:
    """Per customer: net payments (LTV) and, for those who paid, the last payment."""

    ltv: dict[str, Decimal] = attrs.field(factory=dict)
    last_payment: dict[str, datetime] = attrs.field(factory=dict)

    def add(self, customer_id: str, payment: bool, amount: Decimal, at: datetime) -> None:
        """A sum of payments (``payment``) or refunds, the latest of them ``at``."""
        held = self.ltv.get(customer_id, _ZERO)
        self.ltv[customer_id] = held + amount if payment else held - amount
        if payment:
            last = self.last_payment.get(customer_id)
            if last is None or at > last:
                self.last_payment[customer_id] = at

    def baseline(self, registered: Iterable[str], currency: str) -> LtvBaseline:
        """The High Value baseline: net payments of the registered customers who paid."""
        payers = [self.ltv[cid] for cid in registered if cid in self.last_payment]
        return LtvBaseline(total=Money(sum(payers, _ZERO), currency), paying_customers=len(payers))

    def above(self, baseline: LtvBaseline, currency: str) -> list[str]:
        """The customers with cash whose LTV exceeds ``baseline`` (``exceeded_by``)."""
        return sorted(c for c, v in self.ltv.items() if baseline.exceeded_by(Money(v, currency)))


class SQLSegments(SQLServiceUpkeep):
    """Status, product and segment conditions at a moment; segment counts and members."""

    def _contains(self, t: datetime, *, scan: bool = False) -> ColumnElement[bool]:
        """Spans running at ``t``. With ``scan`` (aggregates over every customer) SQLite is
        kept off the start/end indexes: most spans start before any recent ``t``, and one
        sequential pass beats a lookup per index entry several times over."""
        start, end = self._span_moment("start_at", scan), self._span_moment("end_at", scan)
        return sa.and_(start <= t, sa.or_(end.is_(None), end > t))

    def _span_moment(self, name: str, scan: bool) -> Any:
        sp = self._schema.spans
        if scan and self._sqlite:
            # ``+col`` is SQLite's documented way to disqualify a column from index use.
            return sa.type_coerce(sa.literal_column(f"+{sp.name}.{name}"), Moment())
        return sp.c[name]

    def _owners(
        self, table: sa.Table, *conds: ColumnElement[bool], ids: Sequence[str] | None = None
    ) -> ColumnElement[bool]:
        """Whether the customer (of the enclosing query) owns a row of ``table`` matching
        ``conds``. Uncorrelated: the database finds the owners once (PostgreSQL hashes
        them, SQLite builds an ephemeral index) instead of probing per customer, which
        an OR of several conditions would otherwise force. ``ids`` narrows the search to
        those customers (the rows of one page)."""
        owners = sa.select(table.c.customer_id).where(*conds)
        if ids is not None:
            owners = owners.where(table.c.customer_id.in_(list(ids)))
        return self._schema.customers.c.id.in_(owners)

    def _ledger_holds(
        self, table: sa.Table, t: datetime, *conds: ColumnElement[bool]
    ) -> ColumnElement[bool]:
        """Whether the customer has a row of the ledger table ``table`` (an interval
        ``[start_at, end_at)``) containing ``t`` and matching ``conds``."""
        running = sa.and_(
            table.c.start_at <= t, sa.or_(table.c.end_at.is_(None), table.c.end_at > t)
        )
        return self._owners(table, running, *conds)

    def _status_cond(self, t: datetime, status: CustomerStatus) -> ColumnElement[bool]:
        """``customer_status(...) is status`` at ``t``: a lookup of the status intervals
        the rule computed at write time (``lead`` wherever none holds)."""
        ls = self._schema.ledger_status
        if status is CustomerStatus.LEAD:
            return ~self._ledger_holds(ls, t)
        return self._ledger_holds(ls, t, ls.c.status == status.value)

    def _product_cond(self, t: datetime, product_id: str) -> ColumnElement[bool]:
        """An active service of the product at ``t`` (the service-state rows: their
        product is the service's own, else its plan's)."""
        sv = self._schema.ledger_services
        return self._ledger_holds(sv, t, sv.c.active, sv.c.product_id == product_id)

    def _cash_facts(
        self, conn: Connection, t: datetime, currency: str, ids: Sequence[str] | None = None
    ) -> _CashFacts:
        """Per customer (of ``ids``), the net payments up to ``t`` (LTV, each payment and
        refund converted at its own date) and the last payment, from the ledger's cash
        entries when it keeps them in ``currency``; the customers lacking a rate there
        (or every customer, in another currency) from their transactions by the cash
        entries' one definition (``cash_columns``), which raises MissingRateError for a
        payment by ``t`` without a rate as the pure functions do."""
        out = _CashFacts()
        lacking: list[str] | None = None  # None: every customer (of ids) from records
        if self._ledger_ready_cached(conn) and self._ledger_currency(conn) == currency:
            lc, lm, ops = self._schema.ledger_cash, self._schema.ledger_cash_missing, self._ops
            lacking = []
            parts: list[list[str] | None] = (
                [None] if ids is None else [list(chunk) for chunk in _chunks(ids)]
            )
            for part in parts:
                missing = sa.select(lm.c.customer_id)
                stmt = (
                    sa.select(
                        lc.c.customer_id,
                        lc.c.kind,
                        ops.dsum(lc.c, "reporting"),
                        sa.func.max(lc.c.at),
                    )
                    .where(lc.c.kind.in_(("payment", "refund")), lc.c.at <= t)
                    .group_by(lc.c.customer_id, lc.c.kind)
                )
                if part is not None:
                    missing = missing.where(lm.c.customer_id.in_(part))
                    stmt = stmt.where(lc.c.customer_id.in_(part))
                lacking.extend(str(r[0]) for r in conn.execute(missing))
                for cid, kind, value, latest in conn.execute(stmt):
                    out.add(str(cid), kind == "payment", _dec(value), _as_moment(latest))
        if lacking is None or lacking:
            self._cash_from_records(conn, t, currency, ids if lacking is None else lacking, out)
        return out

    def _cash_from_records(
        self,
        conn: Connection,
        t: datetime,
        currency: str,
        ids: Sequence[str] | None,
        out: _CashFacts,
    ) -> None:
        tx = self._schema.transactions
        txs: list[Transaction] = []
        if ids is None:
            txs = self._load(conn, "transaction")
        else:
            for chunk in _chunks(sorted(set(ids))):
                txs.extend(self._load(conn, "transaction", tx.c.customer_id.in_(chunk)))
        owners = tuple(sorted({x.customer_id for x in txs}))
        if not owners:
            return
        book = Book(transactions=tuple(txs), fx=self._rates(conn))
        cols = cash_columns(
            book, currency, customer_ids=owners, through=moment_us(t), credits=False
        )
        for e in cols.rows():
            if e.amount_reporting is None or e.kind not in ("payment", "refund"):
                continue
            value = units_decimal(e.amount_reporting, e.digits)
            out.add(e.customer_id, e.kind == "payment", value, moment_from_value(e.at))

    def _service_facts(
        self, conn: Connection, t: datetime, ids: Sequence[str] | None
    ) -> dict[str, list[ServiceFacts]]:
        """The facts the cycle-aware Active rule reads, per customer: for each service
        active at ``t`` (its service-state row holding ``t``, with its billing calendar)
        how far its invoices reach then (its ``ledger_reach`` step holding ``t``): rows
        the rules computed at write time, read here; the facts are made of them by
        ``revcrm.segments._rules.service_facts_of`` and judged by ``service_paid_up``."""
        s = self._schema
        sv, lr = s.ledger_services, s.ledger_reach
        reach = (
            sa.select(lr.c.subscription_id, lr.c.billed_through, lr.c.paid_through)
            .where(lr.c.start_at <= t, sa.or_(lr.c.end_at.is_(None), lr.c.end_at > t))
            .subquery()
        )
        stmt = (
            sa.select(
                sv.c.customer_id,
                sv.c.subscription_id,
                sv.c.anchor,
                sv.c.cycle_count,
                sv.c.cycle_unit,
                reach.c.billed_through,
                reach.c.paid_through,
            )
            .select_from(sv.outerjoin(reach, reach.c.subscription_id == sv.c.subscription_id))
            .where(sv.c.start_at <= t, sa.or_(sv.c.end_at.is_(None), sv.c.end_at > t), sv.c.active)
        )
        if ids is not None:
            stmt = stmt.where(sv.c.customer_id.in_(list(ids)))
        cycles: dict[tuple[int, str], BillingCycle] = {}
        out: dict[str, list[ServiceFacts]] = defaultdict(list)
        rows = sorted(conn.execute(stmt), key=lambda r: (str(r[0]), str(r[1])))
        for cid, sub_id, anchor, count, unit, billed, paid in rows:
            key = (int(count), str(unit))
            cycle = cycles.get(key)
            if cycle is None:
                cycle = cycles[key] = BillingCycle(key[0], CycleUnit(key[1]))
            step = (
                None
                if billed is None
                else ServiceReach(
                    start=t,
                    billed_through=_as_moment(billed),
                    paid_through=None if paid is None else _as_moment(paid),
                )
            )
            out[str(cid)].append(service_facts_of(str(sub_id), cycle, _as_moment(anchor), t, step))
        return out

    def _service_filters(self, conn: Connection, q: CustomerQuery) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = []
        if q.status is not None:
            conds.append(self._status_cond(q.as_of, q.status))
        if q.product_id is not None:
            conds.append(self._product_cond(q.as_of, q.product_id))
        if q.segment is not None:
            facts, baseline = self._segment_inputs(conn, q.as_of, q.currency)
            members = [
                cid
                for cid, f in facts.items()
                if q.segment in memberships(f, q.segment_config, baseline)
            ]
            c = self._schema.customers
            conds.append(c.c.id.in_(_literal_ids(members)) if members else sa.false())
        return conds

    def _segment_inputs(
        self,
        conn: Connection,
        t: datetime,
        currency: str,
        ids: Sequence[str] | None = None,
        baseline: LtvBaseline | None = None,
    ) -> tuple[dict[str, SegmentInputs], LtvBaseline]:
        """The facts the built-in rules read of every customer registered by ``t`` (of
        ``ids``), and the LTV baseline (``baseline`` when given, else the whole book's):
        one grouped pass over each table, the services from the ledger's service-state
        rows (while ``t`` is within the ledger's horizon; past it from the subscriptions
        by the same rows' one definition), the cash from its cash entries. Membership is
        decided by ``revcrm.segments._rules.memberships`` (the one definition) alone."""
        s = self._schema
        c = s.customers

        def only(stmt: Any, column: Any) -> Any:
            return stmt if ids is None else stmt.where(column.in_(list(ids)))

        def flag(cond: ColumnElement[bool]) -> ColumnElement[Any]:
            return sa.func.max(sa.case((cond, 1), else_=0))

        services = self._services_at(conn, t, ids)
        service_facts = self._service_facts(conn, t, ids)
        od = s.ledger_overdue
        overdue = {
            str(cid): int(n)
            for cid, n in conn.execute(
                only(
                    sa.select(od.c.customer_id, sa.func.count())
                    .where(od.c.start_at <= t, sa.or_(od.c.end_at.is_(None), od.c.end_at > t))
                    .group_by(od.c.customer_id),
                    od.c.customer_id,
                )
            )
        }
        li = s.ledger_invoiced
        invoiced = {
            str(cid)
            for (cid,) in conn.execute(
                only(sa.select(li.c.customer_id).where(li.c.first_at <= t), li.c.customer_id)
            )
        }
        if baseline is None and ids is not None:
            baseline = self._ledger_baseline(conn, t, currency)
        # The LTVs of the customers asked, or of every customer for the baseline (which
        # also raises for a missing rate as the pure segmentation does).
        cash = self._cash_facts(conn, t, currency, ids if baseline is not None else None)
        subscribed = self._subscribed(conn, t, ids)
        registered = {
            cid: _as_moment(at)
            for cid, at in conn.execute(
                only(sa.select(c.c.id, c.c.registered_at).where(c.c.registered_at <= t), c.c.id)
            )
        }
        if baseline is None:
            baseline = (
                cash.baseline(registered, currency)
                if ids is None
                else self._baseline(conn, t, currency, cash)
            )
        out: dict[str, SegmentInputs] = {}
        for cid, registered_at in registered.items():
            active, troubled, ends, started = services.get(cid, (0, 0, None, False))
            last = cash.last_payment.get(cid)
            out[cid] = SegmentInputs(
                as_of=t,
                registered_at=registered_at,
                ltv=Money(cash.ltv.get(cid, _ZERO), currency),
                last_payment_at=last,
                active_services=active,
                troubled_services=troubled,
                overdue_invoices=overdue.get(cid, 0),
                next_cancellation_at=ends,
                subscriber_since=subscribed.get(cid),
                ordered=bool(started or cid in invoiced or last is not None),
                services=tuple(service_facts.get(cid, ())),
            )
        return out, baseline

    def _subscribed(
        self, conn: Connection, t: datetime, ids: Sequence[str] | None
    ) -> dict[str, datetime]:
        """Per customer (of ``ids``) who first had MRR by ``t``, that moment: the ledger's
        first-paid rows (the engine's ``first_paid``, built with the MRR rows up to the
        ledger's horizon). Past the horizon, and for a customer whose MRR rows could not be
        built (a rate missing), the first span with MRR above zero by ``t``."""
        s = self._schema
        fp, lcu, sp = s.ledger_first_paid, s.ledger_customers, s.spans
        horizon = self._ledger_horizon(conn)
        from_spans: list[str] | None = None  # None: every customer (of ids)
        out: dict[str, datetime] = {}
        if horizon == NO_HORIZON or t <= horizon:
            stmt = sa.select(fp.c.customer_id, fp.c.at).where(fp.c.at <= t)
            lacking = sa.select(lcu.c.customer_id).where(lcu.c.missing.is_not(None))
            if ids is not None:
                stmt = stmt.where(fp.c.customer_id.in_(list(ids)))
                lacking = lacking.where(lcu.c.customer_id.in_(list(ids)))
            out = {str(cid): _as_moment(at) for cid, at in conn.execute(stmt)}
            from_spans = [str(r[0]) for r in conn.execute(lacking)]
            if not from_spans:
                return out
        stmt = (
            sa.select(sp.c.customer_id, sa.func.min(sp.c.start_at))
            .where(sp.c.positive, sp.c.start_at <= t)
            .group_by(sp.c.customer_id)
        )
        chosen = ids if from_spans is None else from_spans
        if chosen is not None:
            stmt = stmt.where(sp.c.customer_id.in_(list(chosen)))
        out.update((str(cid), _as_moment(since)) for cid, since in conn.execute(stmt))
        return out

    def _services_at(
        self, conn: Connection, t: datetime, ids: Sequence[str] | None
    ) -> dict[str, tuple[int, int, datetime | None, bool]]:
        """Per customer at ``t``: services active, services troubled, the earliest
        pending cancellation, and whether a service had started: aggregates of the
        ledger's service-state rows holding ``t`` (the rules' answers, stored). Their
        scheduled cancellations are cut up to the ledger's horizon: past it, the same
        rows are built from the subscriptions for ``t`` (``service_columns``)."""
        horizon = self._ledger_horizon(conn)
        if horizon != NO_HORIZON and t > horizon:
            return self._services_from_records(conn, t, ids)
        sv = self._schema.ledger_services
        holds = sa.and_(sv.c.start_at <= t, sa.or_(sv.c.end_at.is_(None), sv.c.end_at > t))
        one = sa.literal(1)
        stmt = sa.select(
            sv.c.customer_id,
            sa.func.sum(sa.case((sa.and_(holds, sv.c.active), one), else_=0)),
            sa.func.sum(sa.case((sa.and_(holds, sv.c.troubled), one), else_=0)),
            sa.func.min(sa.case((sa.and_(holds, sv.c.cancellation_at > t), sv.c.cancellation_at))),
        ).where(sv.c.start_at <= t)
        if ids is not None:
            stmt = stmt.where(sv.c.customer_id.in_(list(ids)))
        return {
            str(cid): (int(a or 0), int(tr or 0), None if e is None else _as_moment(e), True)
            for cid, a, tr, e in conn.execute(stmt.group_by(sv.c.customer_id))
        }

    def _services_from_records(
        self, conn: Connection, t: datetime, ids: Sequence[str] | None
    ) -> dict[str, tuple[int, int, datetime | None, bool]]:
        subs_t = self._schema.subscriptions
        subs: list[Subscription] = []
        if ids is None:
            subs = self._load(conn, "subscription")
        else:
            for chunk in _chunks(sorted(set(ids))):
                subs.extend(self._load(conn, "subscription", subs_t.c.customer_id.in_(chunk)))
        named = sorted({st.plan_id for sub in subs for st in sub.states if st.plan_id})
        plans: list[Plan] = []
        for chunk in _chunks(named):
            plans.extend(self._load(conn, "plan", self._schema.plans.c.id.in_(chunk)))
        owners = tuple(sorted({sub.customer_id for sub in subs}))
        book = Book(plans=tuple(plans), subscriptions=tuple(subs))
        cols = service_columns(book, customer_ids=owners, horizon=t)
        now = cols.at(moment_us(t))
        out: dict[str, tuple[int, int, datetime | None, bool]] = {}
        for i, cid in enumerate(owners):
            if not now.started[i]:
                continue
            nxt = int(now.next_cancellation[i])
            out[cid] = (
                int(now.active[i]),
                int(now.troubled[i]),
                None if nxt == OPEN else moment_from_value(nxt),
                True,
            )
        return out

    def _all_segments(
        self, conn: Connection, t: datetime, currency: str, config: SegmentConfig
    ) -> Iterator[frozenset[Segment]]:
        """The segments of every customer registered by ``t``."""
        facts, baseline = self._segment_inputs(conn, t, currency)
        for f in facts.values():
            yield memberships(f, config, baseline)

    def _baseline(
        self, conn: Connection, t: datetime, currency: str, cash: _CashFacts
    ) -> LtvBaseline:
        """The LTV baseline from every customer's cash facts (``_cash_facts``)."""
        c = self._schema.customers
        registered = {
            str(r[0]) for r in conn.execute(sa.select(c.c.id).where(c.c.registered_at <= t))
        }
        return cash.baseline(registered, currency)

    def _ledger_baseline(self, conn: Connection, t: datetime, currency: str) -> LtvBaseline | None:
        """The LTV baseline from the ledger's cash entries (each converted at its own
        date when built): the net payments up to ``t`` of the customers registered by
        ``t`` with a payment by ``t``, and their count; None when the ledger does not
        hold it (another currency, or a customer lacking a rate: the other path raises
        as the pure function does)."""
        s = self._schema
        lc, c, ops = s.ledger_cash, s.customers, self._ops
        if not self._ledger_ready_cached(conn) or self._ledger_currency(conn) != currency:
            return None
        if not self._empty(conn, s.ledger_cash_missing):
            return None
        payers = (
            sa.select(lc.c.customer_id)
            .join(c, c.c.id == lc.c.customer_id)
            .where(lc.c.kind == "payment", lc.c.at <= t, c.c.registered_at <= t)
            .distinct()
        )
        n = int(
            conn.execute(sa.select(sa.func.count()).select_from(payers.subquery())).scalar() or 0
        )
        if n == 0:
            return LtvBaseline(total=Money.zero(currency), paying_customers=0)
        stmt = (
            sa.select(lc.c.kind, ops.dsum(lc.c, "reporting"))
            .where(
                lc.c.kind.in_(("payment", "refund")),
                lc.c.at <= t,
                lc.c.customer_id.in_(payers),
            )
            .group_by(lc.c.kind)
        )
        total = _ZERO
        for kind, value in conn.execute(stmt):
            total += _dec(value) if kind == "payment" else -_dec(value)
        return LtvBaseline(total=Money(total, currency), paying_customers=n)

    def ltv_baseline(self, *, as_of: date | datetime, currency: str) -> LtvBaseline:
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)

        def run(conn: Connection) -> LtvBaseline:
            from_ledger = self._ledger_baseline(conn, t, currency)
            if from_ledger is not None:
                return from_ledger
            return self._baseline(conn, t, currency, self._cash_facts(conn, t, currency))

        return self._run(False, run)

    def segment_counts(
        self, *, as_of: date | datetime, currency: str, config: SegmentConfig = DEFAULT_CONFIG
    ) -> SegmentCounts:
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)
        _check_config(config)

        def run(conn: Connection) -> SegmentCounts:
            members: Counter[Segment] = Counter()
            primary: Counter[Segment] = Counter()
            customers = 0
            for segs, n in Counter(self._all_segments(conn, t, currency, config)).items():
                for seg in segs:
                    members[seg] += n
                primary[next(p for p in config.precedence if p in segs)] += n
                customers += n
            return SegmentCounts(
                customers=customers,
                members=MappingProxyType({seg: members[seg] for seg in Segment}),
                primary=MappingProxyType({seg: primary[seg] for seg in Segment}),
                custom=MappingProxyType({}),
            )

        return self._run(False, run)

    def segments_of(
        self,
        customer_ids: Iterable[str],
        *,
        as_of: date | datetime,
        currency: str,
        config: SegmentConfig = DEFAULT_CONFIG,
        ltv_baseline: LtvBaseline | None = None,
    ) -> dict[str, frozenset[Segment]]:
        wanted = _id_list(customer_ids)
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)
        _check_config(config)
        _check_baseline(ltv_baseline, currency)

        def run(conn: Connection) -> dict[str, frozenset[Segment]]:
            unique = sorted(set(wanted))
            known = self._existing_ids(conn, "customer", unique)
            for cid in wanted:
                if cid not in known:
                    raise NotFoundError("customer", cid)
            found: dict[str, frozenset[Segment]] = {}
            for chunk in _chunks(unique):
                facts, baseline = self._segment_inputs(conn, t, currency, chunk, ltv_baseline)
                for cid, f in facts.items():
                    found[cid] = memberships(f, config, baseline)
            return {cid: found.get(cid, frozenset()) for cid in wanted}

        return self._run(False, run)
