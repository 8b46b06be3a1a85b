"""The SQL store's segment queries and the customer-list filters they share.

Status, product and segment membership at a moment as SQL conditions over the ledger
tables; segment counts, members and the LTV baseline. The segment facts are read as
columns (one grouped query per ledger table, moments as SQLite's stored microseconds,
money as exact integer units) and judged by the columnar rule,
``revcrm.segments._rules.rule_masks``: no per-customer facts object.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import attrs
import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from revcrm._book import Book
from revcrm._cycles import BillingCycle, CycleUnit
from revcrm._ledger._cash import cash_columns, moment_us
from revcrm._ledger._fixed import Units, norm
from revcrm._ledger._services import OPEN, service_columns
from revcrm._money import Money, check_currency
from revcrm._records import Plan, Transaction
from revcrm._subscription import Subscription
from revcrm._time import as_of_moment
from revcrm.crm._services import CustomerStatus
from revcrm.errors import (
    NotFoundError,
)
from revcrm.segments._baseline import decimal_units, places_of
from revcrm.segments._config import DEFAULT_CONFIG, Segment, SegmentConfig
from revcrm.segments._rules import (
    RuleColumns,
    ServiceRuleColumns,
    primary_of,
    rule_masks,
    segment_sets,
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
from revcrm.storage._schema import LIMBS, Moment
from revcrm.storage._sql_base import (
    _as_moment,
    _literal_ids,
)
from revcrm.storage._sql_db import _chunks
from revcrm.storage._sql_decimal import _ZERO, _dec
from revcrm.storage._sql_ledger import NO_HORIZON, SQLLedger
from revcrm.storage._sql_ledger_build import units_decimal

__all__ = ["SQLSegments"]


def _us(value: object) -> int:
    """A raw moment result (SQLite's microseconds, else a datetime) in microseconds,
    :data:`OPEN` for None."""
    if value is None:
        return OPEN
    if isinstance(value, int):
        return value
    return moment_us(_as_moment(value))


class _Sums:
    """Exact per-customer sums of money, as integer units of one common ``10 ** -digits``:
    SQLite's limb sums as integer columns (combined in numpy, no Decimal per customer);
    anything else (PostgreSQL's NUMERIC, an amount without limbs, a record's amount) as
    Decimals."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.limbs: list[tuple[npt.NDArray[np.int64], list[npt.NDArray[np.int64]]]] = []
        self.exact: list[tuple[int, Decimal]] = []

    def add_limbs(self, at: npt.NDArray[np.int64], limbs: list[npt.NDArray[np.int64]]) -> None:
        """Per row (customer index ``at``) the sums of each of the seven limbs."""
        self.limbs.append((at, limbs))

    def add(self, i: int, value: Decimal) -> None:
        self.exact.append((i, value))

    def columns(self) -> tuple[Units, int]:
        """The sums (zero where none) and their digits."""
        used = [k for k in range(LIMBS) if any(bool(ls[k].any()) for _, ls in self.limbs)]
        # Limb k counts 10 ** (24 - 12k) units: the last limb used sets the digits.
        limb_digits = max(0, 12 * (max(used) - 2)) if used else 0
        digits = max([limb_digits, *(places_of(v) for _, v in self.exact)])
        out: npt.NDArray[Any] = np.zeros(self.n, dtype=object)
        out[:] = 0
        for at, ls in self.limbs:
            value: npt.NDArray[Any] = np.zeros(len(at), dtype=object)
            value[:] = 0
            for k in used:
                value = value + ls[k].astype(object) * 10 ** (24 - 12 * k + digits)
            np.add.at(out, at, value)
        if self.exact:
            idx = np.array([i for i, _ in self.exact], dtype=np.int64)
            vals = np.array([decimal_units(v, digits) for _, v in self.exact], dtype=object)
            np.add.at(out, idx, vals)
        return norm(out), digits


class _Index:
    """The customers registered by a moment, sorted by id (code point order, as Python
    and the ``Key`` columns compare), located by binary search in numpy: no dictionary
    lookup per result row."""

    def __init__(self, ids: Sequence[str]) -> None:
        self.ids = tuple(sorted(ids))
        self._keys = np.array(self.ids, dtype=str) if self.ids else np.zeros(0, dtype="<U1")

    def __len__(self) -> int:
        return len(self.ids)

    def locate(self, keys: Sequence[Any]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Each key's index, and whether it is one of the customers."""
        if not keys or not self.ids:
            return np.zeros(len(keys), dtype=np.int64), np.zeros(len(keys), dtype=bool)
        k = np.array([str(x) for x in keys], dtype=str)
        pos = np.minimum(np.searchsorted(self._keys, k), len(self.ids) - 1).astype(np.int64)
        return pos, self._keys[pos] == k

    def rows(
        self, conn: Connection, stmt: Any
    ) -> tuple[npt.NDArray[np.int64], list[npt.NDArray[Any]]]:
        """The rows of ``stmt`` (customer id first) of these customers: their indexes and
        the other columns (object arrays)."""
        rows = conn.execute(stmt).all()
        width = len(stmt.selected_columns)
        if not rows:
            return np.zeros(0, dtype=np.int64), [np.zeros(0, dtype=object)] * (width - 1)
        columns = list(zip(*rows, strict=True))
        pos, found = self.locate(columns[0])
        rest = []
        for col in columns[1:]:
            a = np.empty(len(col), dtype=object)
            a[:] = col
            rest.append(a[found])
        return pos[found], rest


def _ints(values: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Integer results (None: zero, an empty sum) as int64."""
    return np.array([0 if v is None else v for v in values.tolist()], dtype=np.int64)


def _moments(values: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """Raw moment results (:func:`_us`) as microseconds, :data:`OPEN` for None."""
    return np.array([_us(v) for v in values.tolist()], dtype=np.int64)


@attrs.frozen(kw_only=True, eq=False)
class _SegmentFacts:
    """The customers registered by a moment (id order), what the rules read of them, and
    the LTV baseline."""

    ids: tuple[str, ...]
    columns: RuleColumns
    baseline: LtvBaseline


class SQLSegments(SQLLedger):
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

    def _raw(self, expr: Any) -> Any:
        """A moment expression as its stored value: SQLite's microseconds as they are (no
        datetime per row); PostgreSQL's timestamps (read by :func:`_us`)."""
        return sa.type_coerce(expr, sa.BigInteger()) if self._sqlite else expr

    def _cash_columns(
        self,
        conn: Connection,
        t: datetime,
        currency: str,
        index: _Index,
        ids: Sequence[str] | None = None,
    ) -> tuple[Units, int, npt.NDArray[np.int64]]:
        """Per customer of ``index`` (of ``ids``): the net payments up to ``t`` (LTV, each
        payment and refund converted at its own date; exact units and their digits) and
        the last payment (microseconds, :data:`OPEN`: none), from the ledger's cash
        entries when it keeps them in ``currency``; the customers lacking a rate there
        (or every customer, in another currency) from their transactions by the cash
        entries' one definition (``cash_columns``), which raises MissingRateError for a
        payment by ``t`` without a rate as the pure functions do."""
        n = len(index)
        sums = _Sums(n)
        low = np.iinfo(np.int64).min
        last = np.full(n, low, dtype=np.int64)
        lacking: list[str] | None = None  # None: every customer (of ids) from records
        if self._ledger_ready_cached(conn) and self._ledger_currency(conn) == currency:
            lc, lm, ops = self._schema.ledger_cash, self._schema.ledger_cash_missing, self._ops
            lacking = []
            parts: list[list[str] | None] = (
                [None] if ids is None else [list(chunk) for chunk in _chunks(ids)]
            )
            if self._sqlite:
                # The limb sums as integer columns (``ops.dsum`` packs them into a text
                # to parse per row); amounts without limbs through the exact aggregate.
                limbs = [lc.c[f"reporting_l{k}"] for k in range(LIMBS)]
                money: list[Any] = [sa.func.sum(limb) for limb in limbs]
                money.append(sa.func.rc_dsum(lc.c.reporting).filter(limbs[0].is_(None)))
            else:
                money = [ops.dsum(lc.c, "reporting")]
            for part in parts:
                missing = sa.select(lm.c.customer_id)
                # Grouped by kind: SQLite sums each kind's limbs faster than signed ones.
                stmt = (
                    sa.select(lc.c.customer_id, lc.c.kind, self._raw(sa.func.max(lc.c.at)), *money)
                    .where(lc.c.kind.in_(("payment", "refund")), lc.c.at <= t)
                    .group_by(lc.c.customer_id, lc.c.kind)
                )
                if part is not None:
                    missing = missing.where(lm.c.customer_id.in_(part))
                    stmt = stmt.where(lc.c.customer_id.in_(part))
                lacking.extend(str(r[0]) for r in conn.execute(missing))
                at, (kind, latest, *values) = index.rows(conn, stmt)
                payment = kind == "payment"
                sign = np.where(payment, 1, -1).astype(np.int64)
                if self._sqlite:
                    sums.add_limbs(at, [_ints(col) * sign for col in values[:LIMBS]])
                    rest = values[LIMBS]
                else:
                    rest = values[0]
                for k in np.flatnonzero(rest != None).tolist():  # noqa: E711
                    value = _dec(rest[k])
                    if value:
                        sums.add(int(at[k]), value if payment[k] else -value)
                paid_at = at[payment]
                np.maximum.at(last, paid_at, _moments(latest[payment]))
        if lacking is None or lacking:
            chosen = ids if lacking is None else lacking
            rows = self._cash_from_records(conn, t, currency, chosen)
            pos, found = index.locate([r[0] for r in rows])
            for k, (_, payment, value, moment) in enumerate(rows):
                if found[k]:
                    i = int(pos[k])
                    sums.add(i, value if payment else -value)
                    if payment:
                        last[i] = max(last[i], moment_us(moment))
        ltv, digits = sums.columns()
        last[last == low] = OPEN
        return ltv, digits, last

    def _cash_from_records(
        self, conn: Connection, t: datetime, currency: str, ids: Sequence[str] | None
    ) -> list[tuple[str, bool, Decimal, datetime]]:
        """The payments and refunds (``True``: a payment) up to ``t`` of the customers of
        ``ids`` (None: every one) from their transactions, converted by the cash entries'
        one definition."""
        tx = self._schema.transactions
        txs: list[Transaction] = []
        if ids is None:
            txs = self._load(conn, "transaction")
        else:
            for chunk in _chunks(sorted(set(ids))):
                txs.extend(self._load(conn, "transaction", tx.c.customer_id.in_(chunk)))
        owners = tuple(sorted({x.customer_id for x in txs}))
        if not owners:
            return []
        book = Book(transactions=tuple(txs), fx=self._rates(conn))
        cols = cash_columns(
            book, currency, customer_ids=owners, through=moment_us(t), credits=False
        )
        out: list[tuple[str, bool, Decimal, datetime]] = []
        for e in cols.rows():
            if e.amount_reporting is None or e.kind not in ("payment", "refund"):
                continue
            value = units_decimal(e.amount_reporting, e.digits)
            out.append((e.customer_id, e.kind == "payment", value, moment_from_value(e.at)))
        return out

    def _service_rule_columns(
        self, conn: Connection, t: datetime, index: _Index, ids: Sequence[str] | None
    ) -> ServiceRuleColumns:
        """The facts the cycle-aware Active rule reads of each service active at ``t`` (its
        service-state row holding ``t``): its cycle and how far its invoices reach then
        (its ``ledger_reach`` step holding ``t``): rows the rules computed at write time,
        read here and judged by ``revcrm.segments._rules.rule_masks``. (The service
        period itself is not read: the rule does not need it.)"""
        s = self._schema
        sv, lr = s.ledger_services, s.ledger_reach
        reach = (
            sa.select(
                lr.c.subscription_id,
                self._raw(lr.c.billed_through).label("billed"),
                self._raw(lr.c.paid_through).label("paid"),
            )
            .where(lr.c.start_at <= t, sa.or_(lr.c.end_at.is_(None), lr.c.end_at > t))
            .subquery()
        )
        stmt = (
            sa.select(
                sv.c.customer_id,
                sv.c.cycle_count,
                sv.c.cycle_unit,
                reach.c.billed,
                reach.c.paid,
            )
            .select_from(sv.outerjoin(reach, reach.c.subscription_id == sv.c.subscription_id))
            .where(sv.c.start_at <= t, sa.or_(sv.c.end_at.is_(None), sv.c.end_at > t), sv.c.active)
        )
        if ids is not None:
            stmt = stmt.where(sv.c.customer_id.in_(list(ids)))
        at, (count, unit, billed, paid) = index.rows(conn, stmt)
        keys: dict[tuple[int, str], int] = {}
        cycle = [
            keys.setdefault((int(k), str(u)), len(keys))
            for k, u in zip(count.tolist(), unit.tolist(), strict=True)
        ]
        billed_us = _moments(billed)
        return ServiceRuleColumns(
            customer=at,
            cycles=tuple(BillingCycle(k, CycleUnit(u)) for k, u in keys),
            cycle=np.array(cycle, dtype=np.int64),
            billed_through=billed_us,
            # No step holding t: neither reach (paid_through is None with billed_through).
            paid_through=np.where(billed_us == OPEN, OPEN, _moments(paid)),
        )

    def _service_filters(self, conn: Connection, q: CustomerQuery) -> list[ColumnElement[bool]]:
        conds: list[ColumnElement[bool]] = []
        if q.status is not None:
            conds.append(self._status_cond(q.as_of, q.status))
        if q.product_id is not None:
            conds.append(self._product_cond(q.as_of, q.product_id))
        if q.segment is not None:
            found = self._segment_facts(conn, q.as_of, q.currency)
            mask = rule_masks(found.columns, q.segment_config, found.baseline)[q.segment]
            c = self._schema.customers
            if 2 * int(mask.sum()) <= len(mask):
                members = [found.ids[i] for i in np.flatnonzero(mask).tolist()]
                conds.append(c.c.id.in_(_literal_ids(members)) if members else sa.false())
            else:
                # Most customers are members: the statement names the others (the members
                # are the customers registered by as_of but those).
                others = [found.ids[i] for i in np.flatnonzero(~mask).tolist()]
                registered = c.c.registered_at <= q.as_of
                conds.append(
                    sa.and_(registered, c.c.id.not_in(_literal_ids(others)))
                    if others
                    else registered
                )
        return conds

    def _segment_facts(
        self,
        conn: Connection,
        t: datetime,
        currency: str,
        ids: Sequence[str] | None = None,
        baseline: LtvBaseline | None = None,
    ) -> _SegmentFacts:
        """The facts the built-in rules read of every customer registered by ``t`` (of
        ``ids``), as columns, and the LTV baseline (``baseline`` when given, else the
        whole book's): one grouped pass over each table, the services from the ledger's
        service-state rows (while ``t`` is within the ledger's horizon; past it from the
        subscriptions by the same rows' one definition), the cash from its cash entries.
        Membership is decided by ``revcrm.segments._rules.rule_masks`` (the one
        definition) alone."""
        s = self._schema
        c = s.customers

        def only(stmt: Any, column: Any) -> Any:
            return stmt if ids is None else stmt.where(column.in_(list(ids)))

        registered = conn.execute(
            only(
                sa.select(c.c.id, self._raw(c.c.registered_at))
                .where(c.c.registered_at <= t)
                .order_by(c.c.id),
                c.c.id,
            )
        ).all()
        index = _Index([str(r[0]) for r in registered])
        n = len(index)
        moment_of = {str(r[0]): r[1] for r in registered}

        active, troubled, ends, started = self._service_counts(conn, t, index, ids)
        services = self._service_rule_columns(conn, t, index, ids)
        od = s.ledger_overdue
        overdue = np.zeros(n, dtype=np.int64)
        at, (count,) = index.rows(
            conn,
            only(
                sa.select(od.c.customer_id, sa.func.count())
                .where(od.c.start_at <= t, sa.or_(od.c.end_at.is_(None), od.c.end_at > t))
                .group_by(od.c.customer_id),
                od.c.customer_id,
            ),
        )
        overdue[at] = count.astype(np.int64)
        li = s.ledger_invoiced
        invoiced = np.zeros(n, dtype=bool)
        at, _ = index.rows(
            conn, only(sa.select(li.c.customer_id).where(li.c.first_at <= t), li.c.customer_id)
        )
        invoiced[at] = True
        if baseline is None and ids is not None:
            baseline = self._ledger_baseline(conn, t, currency)
        if baseline is None and ids is not None:
            # The whole book's (which also raises for a missing rate as the pure
            # segmentation does).
            baseline = self._segment_facts(conn, t, currency).baseline
        ltv, digits, last = self._cash_columns(conn, t, currency, index, ids)
        since = np.full(n, OPEN, dtype=np.int64)
        subscribed = self._subscribed(conn, t, ids)
        pos, found = index.locate(list(subscribed))
        since[pos[found]] = np.array(list(subscribed.values()), dtype=np.int64)[found]
        if baseline is None:
            baseline = LtvBaseline.of_units(ltv, last != OPEN, digits, currency)
        columns = RuleColumns(
            as_of=t,
            currency=currency,
            digits=digits,
            registered_at=np.array([_us(moment_of[c]) for c in index.ids], dtype=np.int64),
            ltv=ltv,
            last_payment_at=last,
            active_services=active,
            troubled_services=troubled,
            overdue_invoices=overdue,
            next_cancellation_at=ends,
            subscriber_since=since,
            ordered=started | invoiced | (last != OPEN),
            services=services,
        )
        return _SegmentFacts(ids=index.ids, columns=columns, baseline=baseline)

    def _subscribed(
        self, conn: Connection, t: datetime, ids: Sequence[str] | None
    ) -> dict[str, int]:
        """Per customer (of ``ids``) who first had MRR by ``t``, that moment
        (microseconds): the ledger's first-paid rows (the engine's ``first_paid``, built
        with the MRR rows up to the ledger's horizon). Past the horizon, and for a customer
        whose MRR rows could not be built (a rate missing), the first span with MRR above
        zero by ``t``."""
        s = self._schema
        fp, lcu, sp = s.ledger_first_paid, s.ledger_customers, s.spans
        horizon = self._ledger_horizon(conn)
        from_spans: list[str] | None = None  # None: every customer (of ids)
        out: dict[str, int] = {}
        if horizon == NO_HORIZON or t <= horizon:
            stmt = sa.select(fp.c.customer_id, self._raw(fp.c.at)).where(fp.c.at <= t)
            lacking = sa.select(lcu.c.customer_id).where(lcu.c.missing.is_not(None))
            if ids is not None:
                stmt = stmt.where(fp.c.customer_id.in_(list(ids)))
                lacking = lacking.where(lcu.c.customer_id.in_(list(ids)))
            out = {str(cid): _us(at) for cid, at in conn.execute(stmt)}
            from_spans = [str(r[0]) for r in conn.execute(lacking)]
            if not from_spans:
                return out
        stmt = (
            sa.select(sp.c.customer_id, self._raw(sa.func.min(sp.c.start_at)))
            .where(sp.c.positive, sp.c.start_at <= t)
            .group_by(sp.c.customer_id)
        )
        chosen = ids if from_spans is None else from_spans
        if chosen is not None:
            stmt = stmt.where(sp.c.customer_id.in_(list(chosen)))
        out.update((str(cid), _us(since)) for cid, since in conn.execute(stmt))
        return out

    def _services_stmt(self, t: datetime, ids: Sequence[str] | None) -> Any:
        """Per customer with a service started by ``t``: services active and troubled at
        ``t`` and the earliest cancellation pending then (raw moment), from the ledger's
        service-state rows holding ``t``."""
        sv = self._schema.ledger_services
        holds = sa.and_(sv.c.start_at <= t, sa.or_(sv.c.end_at.is_(None), sv.c.end_at > t))
        one = sa.literal(1)
        stmt = sa.select(
            sv.c.customer_id,
            sa.func.sum(sa.case((sa.and_(holds, sv.c.active), one), else_=0)),
            sa.func.sum(sa.case((sa.and_(holds, sv.c.troubled), one), else_=0)),
            self._raw(
                sa.func.min(
                    sa.case((sa.and_(holds, sv.c.cancellation_at > t), sv.c.cancellation_at))
                )
            ),
        ).where(sv.c.start_at <= t)
        if ids is not None:
            stmt = stmt.where(sv.c.customer_id.in_(list(ids)))
        return stmt.group_by(sv.c.customer_id)

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
        return {
            str(cid): (int(a or 0), int(tr or 0), None if e is None else _as_moment(e), True)
            for cid, a, tr, e in conn.execute(self._services_stmt(t, ids))
        }

    def _service_counts(
        self, conn: Connection, t: datetime, index: _Index, ids: Sequence[str] | None
    ) -> tuple[
        npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.bool_]
    ]:
        """:meth:`_services_at` as columns over ``index``: active, troubled, the next
        cancellation (microseconds, :data:`OPEN`: none), started."""
        n = len(index)
        active = np.zeros(n, dtype=np.int64)
        troubled = np.zeros(n, dtype=np.int64)
        ends = np.full(n, OPEN, dtype=np.int64)
        started = np.zeros(n, dtype=bool)
        horizon = self._ledger_horizon(conn)
        if horizon != NO_HORIZON and t > horizon:
            past = self._services_from_records(conn, t, ids)
            pos, found = index.locate(list(past))
            for k, (n_active, n_troubled, end, _) in enumerate(past.values()):
                if found[k]:
                    i = int(pos[k])
                    active[i], troubled[i], ends[i] = n_active, n_troubled, _us(end)
                    started[i] = True
            return active, troubled, ends, started
        at, (a_col, tr_col, e_col) = index.rows(conn, self._services_stmt(t, ids))
        active[at] = _ints(a_col)
        troubled[at] = _ints(tr_col)
        ends[at] = _moments(e_col)
        started[at] = True
        return active, troubled, ends, started

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
            return self._segment_facts(conn, t, currency).baseline

        return self._run(False, run)

    def segment_counts(
        self, *, as_of: date | datetime, currency: str, config: SegmentConfig = DEFAULT_CONFIG
    ) -> SegmentCounts:
        t = as_of_moment(as_of, "as_of")
        check_currency(currency)
        _check_config(config)

        def run(conn: Connection) -> SegmentCounts:
            found = self._segment_facts(conn, t, currency)
            masks = rule_masks(found.columns, config, found.baseline)
            precedence = config.precedence
            primary = np.bincount(primary_of(masks, precedence), minlength=len(precedence))
            return SegmentCounts(
                customers=len(found.ids),
                members=MappingProxyType({seg: int(masks[seg].sum()) for seg in Segment}),
                primary=MappingProxyType(
                    {seg: int(primary[precedence.index(seg)]) for seg in Segment}
                ),
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
            baseline = ltv_baseline
            if baseline is None and unique:
                # Once for every chunk: the ledger's, else the whole book's.
                baseline = self._ledger_baseline(conn, t, currency)
                if baseline is None:
                    baseline = self._segment_facts(conn, t, currency).baseline
            for chunk in _chunks(unique):
                part = self._segment_facts(conn, t, currency, chunk, baseline)
                sets = segment_sets(rule_masks(part.columns, config, part.baseline))
                found.update(zip(part.ids, sets, strict=True))
            return {cid: found.get(cid, frozenset()) for cid in wanted}

        return self._run(False, run)
