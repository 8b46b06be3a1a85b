"""Tables, column types and forward migrations of the SQL store (SQLAlchemy Core 2).

Money is exact on every backend: ``NUMERIC`` on PostgreSQL, decimal text on SQLite (whose
``NUMERIC`` goes through binary floats). Moments are ``TIMESTAMP WITH TIME ZONE`` on
PostgreSQL and integer microseconds since 1970-01-01 UTC on SQLite. Every table name
starts with the store's prefix so revcrm can live inside a host application's database.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, Protocol

import attrs
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from revcrm.errors import ValidationError
from revcrm.storage._codec import moment_from_value, moment_value

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "Exact",
    "Key",
    "Moment",
    "Schema",
    "check_prefix",
    "drop_span_calendar",
]

_PREFIX: Final = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,29}$")

#: Exact integer limbs of a summed amount on SQLite: ``amount = sum(l_k * 10**(24 - 12k))``
#: for k = 0..6, each limb below 10**12 in size and carrying the amount's sign. Amounts
#: with more than 48 decimal places or of 10**36 or more have no limbs (NULL) and are
#: summed by the exact Python aggregate instead; integer SUMs are exact and fast.
LIMBS: Final = 7
LIMB_BASE: Final = 10**12
LIMB_SCALE: Final = 48


def check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise ValidationError(
            "prefix", prefix, "1-30 letters, digits or underscores, starting with a letter"
        )
    return prefix


class Exact(TypeDecorator[Decimal]):
    """An exact Decimal: NUMERIC on PostgreSQL, decimal text on SQLite."""

    impl = sa.Numeric
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Text())
        return dialect.type_descriptor(sa.Numeric(asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal) or isinstance(value, bool):
            value = Decimal(value)
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


class Moment(TypeDecorator[datetime]):
    """An aware UTC instant: TIMESTAMPTZ on PostgreSQL; on SQLite whole microseconds since
    1970-01-01 UTC in an INTEGER, which sorts in time order and converts fast."""

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return moment_value(value)
        if value.tzinfo is None:
            raise ValidationError("moment", value, "naive datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, int):
            return moment_from_value(value)
        moment: datetime = value
        return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Key(TypeDecorator[str]):
    """Text compared by code point, as Python compares strings (collation "C" on PostgreSQL)."""

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.Text(collation="C"))
        return dialect.type_descriptor(sa.Text())


def _versioned(
    name: str, meta: sa.MetaData, *cols: sa.Column[Any] | sa.Index | sa.ForeignKeyConstraint
) -> sa.Table:
    return sa.Table(
        name,
        meta,
        sa.Column("id", Key(), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        *cols,
    )


@attrs.frozen
class Schema:
    """Every table of one store (one prefix)."""

    prefix: str
    meta: sa.MetaData
    schema_version: sa.Table
    settings: sa.Table
    customers: sa.Table
    products: sa.Table
    plans: sa.Table
    subscriptions: sa.Table
    changes: sa.Table
    invoices: sa.Table
    lines: sa.Table
    transactions: sa.Table
    credits: sa.Table
    fx_rates: sa.Table
    spans: sa.Table
    states: sa.Table
    #: Version 7: the ledger of issue 14 (see ``_sql_ledger``), derived per customer.
    ledger_customers: sa.Table
    ledger_steps: sa.Table
    ledger_intervals: sa.Table
    ledger_cash: sa.Table
    ledger_cash_missing: sa.Table
    #: Version 8: service states and customer-status intervals (``_sql_ledger_build``).
    ledger_services: sa.Table
    ledger_reach: sa.Table
    ledger_invoiced: sa.Table
    ledger_first_paid: sa.Table
    ledger_status: sa.Table
    ledger_renewals: sa.Table
    ledger_overdue: sa.Table

    #: Whether summed money also has exact integer limbs (SQLite, see ``LIMBS``).
    limbs: bool

    @classmethod
    def build(cls, prefix: str, *, limbs: bool = False) -> Schema:
        """The tables under ``prefix``; ``limbs`` adds the integer limbs SQLite sums."""
        p = check_prefix(prefix)
        m = sa.MetaData()

        def money_limbs(column: str) -> list[sa.Column[Any]]:
            if not limbs:
                return []
            return [sa.Column(f"{column}_l{k}", sa.BigInteger) for k in range(LIMBS)]

        def fk(table: str, ondelete: str | None = None) -> sa.ForeignKey:
            return sa.ForeignKey(f"{p}{table}.id", ondelete=ondelete)

        schema_version = sa.Table(
            f"{p}schema_version",
            m,
            sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("description", sa.Text, nullable=False),
            sa.Column("applied_at", Moment(), nullable=False),
        )
        settings = sa.Table(
            f"{p}settings",
            m,
            sa.Column("key", Key(), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
        customers = _versioned(
            f"{p}customers",
            m,
            sa.Column("external_id", Key(), unique=True),
            sa.Column("registered_at", Moment(), nullable=False),
            sa.Column("email", sa.Text),
            sa.Column("username", sa.Text),
            sa.Column("name", sa.Text, nullable=False),
            sa.Column("company", sa.Text),
            sa.Column("phone", sa.Text),
            sa.Column("role", sa.Text),
            sa.Column("website", sa.Text),
            sa.Column("location", sa.Text),
            sa.Column("owner_id", Key()),
            sa.Column("last_login_at", Moment()),
            sa.Column("referral_source", Key()),
            sa.Column("referrer_id", Key()),
            sa.Column("custom_attributes", sa.Text, nullable=False),
            sa.Column("name_fold", Key(), nullable=False),
            sa.Column("email_fold", Key(), nullable=False),
            sa.Column("username_fold", Key(), nullable=False),
            sa.Index(f"{p}cus_name", "name_fold", "id"),
            sa.Index(f"{p}cus_email", "email_fold", "id"),
            sa.Index(f"{p}cus_created", "registered_at", "id"),
            sa.Index(f"{p}cus_owner", "owner_id"),
            sa.Index(f"{p}cus_source", "referral_source"),
        )
        products = _versioned(
            f"{p}products",
            m,
            sa.Column("external_id", Key(), unique=True),
            sa.Column("name", sa.Text, nullable=False),
        )
        plans = _versioned(
            f"{p}plans",
            m,
            sa.Column("external_id", Key(), unique=True),
            sa.Column("product_id", Key(), fk("products"), nullable=False),
            sa.Column("name", sa.Text, nullable=False),
            sa.Column("price", Exact(), nullable=False),
            sa.Column("currency", sa.String(3), nullable=False),
            sa.Column("cycle_count", sa.Integer),
            sa.Column("cycle_unit", sa.String(8)),
            sa.Column("setup_fee", Exact()),
            sa.Index(f"{p}plan_product", "product_id"),
        )
        subscriptions = _versioned(
            f"{p}subscriptions",
            m,
            sa.Column("external_id", Key(), unique=True),
            sa.Column("customer_id", Key(), fk("customers"), nullable=False),
            sa.Column("currency", sa.String(3), nullable=False),
            sa.Column("started_at", Moment(), nullable=False),
            sa.Column("details", sa.Text, nullable=False),
            sa.Column("change_count", sa.Integer, nullable=False),
            # Version 5: the current state (``Subscription.current``, see
            # ``_codec.encode_state``), written with every history: read without a replay.
            sa.Column("current_state", sa.Text),
            sa.Index(f"{p}sub_customer", "customer_id", "started_at"),
            sa.Index(f"{p}sub_started", "started_at", "id"),
            sa.Index(f"{p}sub_currency", "currency"),
        )
        changes = sa.Table(
            f"{p}subscription_changes",
            m,
            sa.Column("subscription_id", Key(), fk("subscriptions", "CASCADE"), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("kind", sa.String(32), nullable=False),
            sa.Column("at", Moment(), nullable=False),
            sa.Column("price", Exact()),
            sa.Column("price_currency", sa.String(3)),
            sa.Column("cycle_count", sa.Integer),
            sa.Column("cycle_unit", sa.String(8)),
            sa.Column("quantity", sa.Integer),
            sa.Column("product_id", Key()),
            sa.Column("plan_id", Key(), fk("plans")),
            sa.Column("discount_percent", Exact()),
            sa.Column("discount_amount", Exact()),
            sa.Column("discount_currency", sa.String(3)),
            sa.Column("discount_duration", sa.String(16)),
            sa.Column("discount_ends_at", Moment()),
            sa.Column("status", sa.String(16)),
            sa.Column("trial_end", Moment()),
            sa.Column("billing_anchor", Moment()),
            sa.Column("ends_at", Moment()),
            sa.Column("note", sa.Text, nullable=False),
        )
        invoices = _versioned(
            f"{p}invoices",
            m,
            sa.Column("external_id", Key(), unique=True),
            sa.Column("customer_id", Key(), fk("customers"), nullable=False),
            sa.Column("currency", sa.String(3), nullable=False),
            sa.Column("issued_at", Moment(), nullable=False),
            sa.Column("due_date", sa.Date, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("number", sa.Text),
            sa.Column("paid_at", Moment()),
            sa.Index(f"{p}inv_customer", "customer_id", "issued_at"),
            sa.Index(f"{p}inv_issued", "issued_at", "id"),
            # Version 3: unpaid invoices (open, or paid later than a moment) for "overdue".
            sa.Index(f"{p}inv_unpaid", "status", "paid_at"),
        )
        lines = sa.Table(
            f"{p}invoice_lines",
            m,
            sa.Column("invoice_id", Key(), fk("invoices", "CASCADE"), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("amount", Exact(), nullable=False),
            sa.Column("description", sa.Text, nullable=False),
            sa.Column("quantity", sa.Integer, nullable=False),
            sa.Column("discount", Exact()),
            sa.Column("tax", Exact()),
            sa.Column("period_start", Moment()),
            sa.Column("period_end", Moment()),
            sa.Column("subscription_id", Key(), fk("subscriptions")),
            sa.Column("product_id", Key()),
            # Version 6: how far each service is invoiced (the Active segment's facts for
            # one page of the list), without a pass over every invoice line.
            sa.Index(f"{p}line_subscription", "subscription_id", "period_start"),
        )
        transactions = _versioned(
            f"{p}transactions",
            m,
            sa.Column("external_id", Key(), unique=True),
            sa.Column("customer_id", Key(), fk("customers"), nullable=False),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("amount", Exact(), nullable=False),
            *money_limbs("amount"),
            sa.Column("currency", sa.String(3), nullable=False),
            sa.Column("method", sa.Text, nullable=False),
            sa.Column("at", Moment(), nullable=False),
            # The UTC day of ``at`` (days since 1970-01-01), for grouping cash by day:
            sa.Column("at_day", sa.Integer, nullable=False),
            sa.Column("invoice_id", Key(), fk("invoices")),
            sa.Column("subscription_id", Key(), fk("subscriptions")),
            sa.Index(f"{p}txn_customer", "customer_id", "at"),
            sa.Index(f"{p}txn_at", "at", "id"),
            sa.Index(f"{p}txn_currency", "currency"),
        )
        # Version 3: the refunds (few), for the segments' LTV baseline. Partial, so that
        # no lookup of one customer's payments ever walks it instead of txn_customer.
        refund = sa.text("kind = 'refund'")
        sa.Index(
            f"{p}txn_refund",
            transactions.c.at,
            sqlite_where=refund,
            postgresql_where=refund,
        )
        credits = _versioned(
            f"{p}credits",
            m,
            sa.Column("customer_id", Key(), fk("customers"), nullable=False),
            sa.Column("amount", Exact(), nullable=False),
            *money_limbs("amount"),
            sa.Column("currency", sa.String(3), nullable=False),
            sa.Column("reason", sa.Text, nullable=False),
            sa.Column("at", Moment(), nullable=False),
            sa.Column("staff_id", Key()),
            sa.Column("invoice_id", Key(), fk("invoices")),
            sa.Index(f"{p}crd_customer", "customer_id", "currency", "at"),
            sa.Index(f"{p}crd_at", "at", "id"),
        )
        fx_rates = sa.Table(
            f"{p}fx_rates",
            m,
            sa.Column("source", sa.String(3), primary_key=True),
            sa.Column("target", sa.String(3), primary_key=True),
            sa.Column("day", sa.Date, primary_key=True),
            sa.Column("rate", Exact(), nullable=False),
        )
        spans = sa.Table(
            f"{p}subscription_spans",
            m,
            sa.Column("subscription_id", Key(), fk("subscriptions", "CASCADE"), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("customer_id", Key(), nullable=False),
            sa.Column("currency", sa.String(3), nullable=False),
            sa.Column("start_at", Moment(), nullable=False),
            sa.Column("end_at", Moment()),
            sa.Column("amount", Exact(), nullable=False),
            *money_limbs("amount"),
            sa.Column("positive", sa.Boolean, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            # Version 9: the billing calendar (anchor, cycle and their integer forms) and
            # the month indexes are gone (no read used them: the ledger tables serve the
            # renewals and the service facts).
            sa.Index(f"{p}span_start", "start_at"),
            sa.Index(f"{p}span_end", "end_at"),
            sa.Index(f"{p}span_customer", "customer_id", "start_at"),
        )
        states = sa.Table(
            f"{p}service_states",
            m,
            # A subscription's state between two changes, ``[from_at, to_at)``: what the
            # service rules of the customer list and the segments read at a moment
            # (status, plan, when a cancelled service ends, a scheduled cancellation and
            # the billing calendar it ends with). States superseded at the moment they
            # begin (several changes at one moment) are left out.
            sa.Column("subscription_id", Key(), fk("subscriptions", "CASCADE"), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("customer_id", Key(), nullable=False),
            sa.Column("from_at", Moment(), nullable=False),
            sa.Column("to_at", Moment()),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("plan_id", Key()),
            sa.Column("ended_at", Moment()),
            sa.Column("cancel_at_period_end", sa.Boolean, nullable=False),
            sa.Column("anchor", Moment(), nullable=False),
            sa.Column("cycle_count", sa.Integer, nullable=False),
            sa.Column("cycle_unit", sa.String(8), nullable=False),
            # Version 4: the service's own product (``Subscription.product_id``), which the
            # product filter matches as well as the plan's product.
            sa.Column("product_id", Key()),
            sa.Index(f"{p}state_customer", "customer_id", "from_at"),
            sa.Index(f"{p}state_plan", "plan_id"),
        )
        ledger_customers = sa.Table(
            f"{p}ledger_customers",
            m,
            # Every customer with ledger rows (or whose rows could not be built): ``missing``
            # names the exchange rate the classifier lacked ("EUR USD 2024-01-31"), so a
            # read over this customer raises MissingRateError as the engine would.
            sa.Column("customer_id", Key(), fk("customers", "CASCADE"), primary_key=True),
            sa.Column("missing", sa.Text),
        )
        ledger_steps = sa.Table(
            f"{p}ledger_steps",
            m,
            # Each stream's MRR over ``[start_at, end_at)`` (the engine's steps): in the
            # reporting currency, or native when ``measured`` (foreign MRR converted at
            # the measured moment's rate, under the transaction-date FX rule). No index
            # by moment: every read sums most rows, and SQLite's plan through such an
            # index (a row lookup each) was ten times slower than its scan.
            sa.Column("customer_id", Key(), fk("customers", "CASCADE"), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("stream_id", Key(), nullable=False),
            sa.Column("currency", sa.String(3), nullable=False),
            sa.Column("measured", sa.Boolean, nullable=False),
            sa.Column("start_at", Moment(), nullable=False),
            sa.Column("end_at", Moment()),
            sa.Column("amount", Exact(), nullable=False),
            *money_limbs("amount"),
        )
        ledger_intervals = sa.Table(
            f"{p}ledger_intervals",
            m,
            # The customer's MRR between two of its events (the engine's events): ``mrr``
            # after the event at ``start_at`` and ``before`` it, both at the event's date's
            # rate; ``kind`` and ``amount``: the movement the event opens under the
            # natural grouping (no period bounds); ``joins_next_at``: the next event, when
            # it is within the grouping window (a period bound between them may split the
            # group, so the reads reclassify that customer with the engine's classifier).
            sa.Column("customer_id", Key(), fk("customers", "CASCADE"), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("start_at", Moment(), nullable=False),
            sa.Column("end_at", Moment()),
            sa.Column("before", Exact(), nullable=False),
            sa.Column("mrr", Exact(), nullable=False),
            *money_limbs("mrr"),
            sa.Column("counted", sa.Boolean, nullable=False),
            sa.Column("free_after", sa.Boolean, nullable=False),
            sa.Column("kind", sa.String(16)),
            sa.Column("amount", Exact()),
            *money_limbs("amount"),
            sa.Column("joins_next_at", Moment()),
        )
        ledger_cash = sa.Table(
            f"{p}ledger_cash",
            m,
            # The ledger's cash entries (``revcrm._ledger._cash``): successful payments and
            # refunds, and credit entries, native and converted at their own date
            # (``reporting`` NULL only for a credit without a rate on its day).
            sa.Column("customer_id", Key(), fk("customers", "CASCADE"), primary_key=True),
            sa.Column("kind", sa.String(16), primary_key=True),
            sa.Column("entry_id", Key(), primary_key=True),
            sa.Column("at", Moment(), nullable=False),
            sa.Column("currency", sa.String(3), nullable=False),
            sa.Column("amount", Exact(), nullable=False),
            sa.Column("reporting", Exact()),
            *money_limbs("reporting"),
            sa.Column("invoice_id", Key()),
            # Cash of a period (the dashboard's months) reads its range, not every entry.
            sa.Index(f"{p}ledger_cash_at", "at"),
        )
        ledger_cash_missing = sa.Table(
            f"{p}ledger_cash_missing",
            m,
            # Customers whose payments or refunds lack a rate (``ledger_customers.missing``).
            sa.Column("customer_id", Key(), fk("customers", "CASCADE"), primary_key=True),
            sa.Column("missing", sa.Text, nullable=False),
        )
        ledger_services = sa.Table(
            f"{p}ledger_services",
            m,
            # The ledger's service-state rows (``revcrm._ledger._services``): a
            # subscription's service over ``[start_at, end_at)``, cut where the service
            # rules can change their answer; ``active``, ``troubled`` and
            # ``cancellation_at`` are the rules' answers throughout the row, ``product_id``
            # the service's product (its own, else its plan's).
            sa.Column("customer_id", Key(), fk("customers", "CASCADE"), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("subscription_id", Key(), nullable=False),
            sa.Column("start_at", Moment(), nullable=False),
            sa.Column("end_at", Moment()),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("active", sa.Boolean, nullable=False),
            sa.Column("troubled", sa.Boolean, nullable=False),
            sa.Column("cancellation_at", Moment()),
            sa.Column("product_id", Key()),
            # The state's billing calendar (``billing_anchor``, ``cycle``): the service
            # period at a moment of the row (``segments._rules.service_facts_of``).
            sa.Column("anchor", Moment(), nullable=False),
            sa.Column("cycle_count", sa.Integer, nullable=False),
            sa.Column("cycle_unit", sa.String(8), nullable=False),
        )
        ledger_reach = sa.Table(
            f"{p}ledger_reach",
            m,
            # How far a service's invoices reach over ``[start_at, end_at)``: the steps of
            # ``segments._rules.service_reach`` (``billed_through`` / ``paid_through`` of
            # the Active rule's facts), computed by the rule at write time.
            sa.Column("customer_id", Key(), fk("customers", "CASCADE"), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("subscription_id", Key(), nullable=False),
            sa.Column("start_at", Moment(), nullable=False),
            sa.Column("end_at", Moment()),
            sa.Column("billed_through", Moment()),
            sa.Column("paid_through", Moment()),
            sa.Index(f"{p}ledger_reach_sub", "subscription_id", "start_at"),
        )
        ledger_invoiced = sa.Table(
            f"{p}ledger_invoiced",
            m,
            # When the customer first ordered by invoice (``_ledger._services.
            # first_invoiced_at``: the first issue of an invoice neither draft nor void).
            sa.Column("customer_id", Key(), fk("customers", "CASCADE"), primary_key=True),
            sa.Column("first_at", Moment(), nullable=False),
        )
        ledger_first_paid = sa.Table(
            f"{p}ledger_first_paid",
            m,
            # When the customer first had MRR (the engine's ``MrrAnalysis.first_paid``, up
            # to the ledger's horizon): built with its MRR rows, not its service rows.
            sa.Column("customer_id", Key(), fk("customers", "CASCADE"), primary_key=True),
            sa.Column("at", Moment(), nullable=False),
        )
        ledger_status = sa.Table(
            f"{p}ledger_status",
            m,
            # The customer's status (``customer_status``) over ``[start_at, end_at)``,
            # computed by the rule at write time (``revcrm._ledger._status``); ``lead``
            # wherever no row holds.
            sa.Column("customer_id", Key(), fk("customers", "CASCADE"), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("start_at", Moment(), nullable=False),
            sa.Column("end_at", Moment()),
            sa.Column("status", sa.String(16), nullable=False),
        )
        ledger_renewals = sa.Table(
            f"{p}ledger_renewals",
            m,
            # A subscription's state over ``[start_at, end_at)`` while it may renew (active
            # or past due, no cancellation scheduled: the states the renewals card reads),
            # cut where its stream's MRR step changes. Version 9: the state's billing
            # calendar (``anchor_us``, and the cycle as ``_ledger._renewals.cycle_code``),
            # from which the card computes each next renewal with the one calendar rule,
            # and the step's MRR over the row (``measured``: native, as ``ledger_steps``;
            # ``amount`` NULL: none), instead of the encoded state.
            sa.Column("customer_id", Key(), fk("customers", "CASCADE"), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("subscription_id", Key(), nullable=False),
            sa.Column("start_at", Moment(), nullable=False),
            sa.Column("end_at", Moment()),
            sa.Column("anchor_us", sa.BigInteger, nullable=False),  # microseconds since 1970
            sa.Column("months", sa.Integer, nullable=False),
            sa.Column("length_us", sa.BigInteger, nullable=False),
            sa.Column("measured", sa.Boolean, nullable=False),
            sa.Column("currency", sa.String(3), nullable=False),
            sa.Column("amount", Exact()),
        )
        ledger_overdue = sa.Table(
            f"{p}ledger_overdue",
            m,
            # Where an invoice is overdue (``invoice_overdue``), ``[start_at, end_at)``,
            # computed by the rule at write time (``revcrm._ledger._status``).
            sa.Column("customer_id", Key(), fk("customers", "CASCADE"), primary_key=True),
            sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("invoice_id", Key(), nullable=False),
            sa.Column("start_at", Moment(), nullable=False),
            sa.Column("end_at", Moment()),
        )
        return cls(
            ledger_overdue=ledger_overdue,
            ledger_renewals=ledger_renewals,
            ledger_services=ledger_services,
            ledger_reach=ledger_reach,
            ledger_invoiced=ledger_invoiced,
            ledger_first_paid=ledger_first_paid,
            ledger_status=ledger_status,
            ledger_cash=ledger_cash,
            ledger_cash_missing=ledger_cash_missing,
            ledger_customers=ledger_customers,
            ledger_steps=ledger_steps,
            ledger_intervals=ledger_intervals,
            states=states,
            limbs=limbs,
            prefix=p,
            meta=m,
            schema_version=schema_version,
            settings=settings,
            customers=customers,
            products=products,
            plans=plans,
            subscriptions=subscriptions,
            changes=changes,
            invoices=invoices,
            lines=lines,
            transactions=transactions,
            credits=credits,
            fx_rates=fx_rates,
            spans=spans,
        )

    @property
    def record_tables(self) -> list[sa.Table]:
        """Version 1: the records and the bookkeeping tables, in creation order."""
        return [
            self.schema_version,
            self.settings,
            self.customers,
            self.products,
            self.plans,
            self.subscriptions,
            self.changes,
            self.invoices,
            self.lines,
            self.transactions,
            self.credits,
            self.fx_rates,
        ]

    @property
    def derived_tables(self) -> list[sa.Table]:
        """Version 2: what the store derives from the records (rebuilt on demand); the
        daily cash totals it also created are gone since version 9."""
        return [self.spans]

    @property
    def state_tables(self) -> list[sa.Table]:
        """Version 3: subscription states by interval (derived, rebuilt on demand)."""
        return [self.states]

    @property
    def ledger_v7_tables(self) -> list[sa.Table]:
        """Version 7: the ledger, per customer (derived, rebuilt on demand)."""
        return [
            self.ledger_customers,
            self.ledger_steps,
            self.ledger_intervals,
            self.ledger_cash,
            self.ledger_cash_missing,
        ]

    @property
    def service_tables(self) -> list[sa.Table]:
        """Version 8: the ledger's service states and status intervals, per customer."""
        return [
            self.ledger_services,
            self.ledger_reach,
            self.ledger_invoiced,
            self.ledger_first_paid,
            self.ledger_status,
            self.ledger_renewals,
            self.ledger_overdue,
        ]

    @property
    def ledger_tables(self) -> list[sa.Table]:
        """Every ledger table (versions 7 and 8)."""
        return [*self.ledger_v7_tables, *self.service_tables]

    @property
    def all_tables(self) -> list[sa.Table]:
        return [*self.record_tables, *self.derived_tables, *self.state_tables, *self.ledger_tables]


class Rebuild(Protocol):
    """The store's rebuild of its derived tables under its policy (it owns that logic);
    ``ledger_only``: only the ledger (version 7), not the spans and states;
    ``services_only``: only the ledger's service and status rows (version 8);
    ``renewals_only``: only its renewing states (version 9)."""

    def __call__(
        self,
        conn: Connection,
        *,
        ledger_only: bool = False,
        services_only: bool = False,
        renewals_only: bool = False,
    ) -> None: ...


# A migration takes the connection, the schema and the store's rebuild callback.
Migration = Callable[[Connection, Schema, Rebuild], None]


def _v1(conn: Connection, s: Schema, _rebuild: Rebuild) -> None:
    for t in s.record_tables:
        t.create(conn)


def _v2(conn: Connection, s: Schema, rebuild: Rebuild) -> None:
    for t in s.derived_tables:
        t.create(conn)
    rebuild(conn)  # backfill from the records already stored


def _v3(conn: Connection, s: Schema, rebuild: Rebuild) -> None:
    for t in s.state_tables:
        t.create(conn)
    # Indexes this version added to record tables (a database created at version 1 by
    # this revcrm has them already).
    for index in (*s.invoices.indexes, *s.transactions.indexes):
        if index.name in (f"{s.prefix}inv_unpaid", f"{s.prefix}txn_refund"):
            index.create(conn, checkfirst=True)
    rebuild(conn)  # backfill from the subscriptions already stored


def _v4(conn: Connection, s: Schema, rebuild: Rebuild) -> None:
    # A database created at version 3 by this revcrm has the column already.
    columns = {c["name"] for c in sa.inspect(conn).get_columns(s.states.name)}
    if "product_id" not in columns:
        q = conn.dialect.identifier_preparer.quote
        kind = s.states.c.product_id.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {q(s.states.name)} ADD COLUMN product_id {kind}")
    rebuild(conn)  # backfill the products of the states already stored


def _v5(conn: Connection, s: Schema, rebuild: Rebuild) -> None:
    # A database created at version 4 by this revcrm has the column already.
    columns = {c["name"] for c in sa.inspect(conn).get_columns(s.subscriptions.name)}
    if "current_state" not in columns:
        q = conn.dialect.identifier_preparer.quote
        conn.exec_driver_sql(f"ALTER TABLE {q(s.subscriptions.name)} ADD COLUMN current_state TEXT")
    rebuild(conn)  # backfill the current states of the subscriptions already stored


def _v6(conn: Connection, s: Schema, _rebuild: Rebuild) -> None:
    # A database created at version 5 or earlier by this revcrm lacks it; one created at
    # version 1 by this revcrm has it already.
    for index in s.lines.indexes:
        if index.name == f"{s.prefix}line_subscription":
            index.create(conn, checkfirst=True)


def _v7(conn: Connection, s: Schema, rebuild: Rebuild) -> None:
    for t in s.ledger_v7_tables:
        t.create(conn, checkfirst=True)
    rebuild(conn, ledger_only=True)  # every customer's ledger from the stored records


def _v8(conn: Connection, s: Schema, rebuild: Rebuild) -> None:
    for t in s.service_tables:
        t.create(conn, checkfirst=True)
    for index in s.ledger_cash.indexes:  # a ledger built at version 7 lacks it
        index.create(conn, checkfirst=True)
    rebuild(conn, services_only=True)  # the service and status rows of every customer


#: The spans' columns and indexes up to version 8: the billing calendar, read by no query.
_SPAN_CALENDAR: Final = (
    "anchor",
    "cycle_count",
    "cycle_unit",
    "start_day",
    "start_month",
    "end_month",
    "anchor_us",
    "anchor_month",
    "anchor_day",
    "anchor_tod",
    "cycle_months",
    "cycle_us",
)
_SPAN_CALENDAR_INDEXES: Final = ("span_start_month", "span_end_month")


def drop_span_calendar(conn: Connection, s: Schema, *, keep_rows: bool = True) -> None:
    """Bring a spans table of version 8 or earlier to version 9's shape (nothing when it
    has it already); ``keep_rows=False``: its rows are about to be rebuilt, so the table
    is created afresh instead of copied."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns(s.spans.name)}
    if not columns & set(_SPAN_CALENDAR):
        return
    q = conn.dialect.identifier_preparer.quote
    table = q(s.spans.name)
    for name in _SPAN_CALENDAR_INDEXES:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS {q(s.prefix + name)}")
    if not keep_rows:
        conn.exec_driver_sql(f"DROP TABLE {table}")
        s.spans.create(conn)
    elif conn.dialect.name == "postgresql":  # a catalog change, no rewrite
        drops = ", ".join(f"DROP COLUMN {q(c)}" for c in _SPAN_CALENDAR if c in columns)
        conn.exec_driver_sql(f"ALTER TABLE {table} {drops}")
    else:
        # SQLite rewrites the table for each dropped column: one copy instead.
        old = q(f"{s.spans.name}_v8")
        conn.exec_driver_sql(f"ALTER TABLE {table} RENAME TO {old}")
        for index in s.spans.indexes:  # they moved with the table, under their names
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {q(str(index.name))}")
        s.spans.create(conn)
        kept = ", ".join(q(c.name) for c in s.spans.columns)
        conn.exec_driver_sql(f"INSERT INTO {table} ({kept}) SELECT {kept} FROM {old}")
        conn.exec_driver_sql(f"DROP TABLE {old}")


def _v9(conn: Connection, s: Schema, rebuild: Rebuild) -> None:
    # The daily cash totals and the spans' billing calendar were maintained on every
    # write and read by nothing (cash comes from the ledger's cash entries); the renewing
    # states carry their billing calendar instead of an encoded state.
    q = conn.dialect.identifier_preparer.quote
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {q(s.prefix + 'cash_daily')}")
    drop_span_calendar(conn, s)
    # Renewing rows of version 8 (encoded states) are rebuilt; those version 8 built in
    # this same migration (from version 7 or earlier) have this version's shape already.
    columns = {c["name"] for c in sa.inspect(conn).get_columns(s.ledger_renewals.name)}
    if "anchor_us" not in columns:
        s.ledger_renewals.drop(conn)
        s.ledger_renewals.create(conn)
        rebuild(conn, renewals_only=True)


#: (version, description, step), applied in order; never edit a released step, add one.
MIGRATIONS: Final[tuple[tuple[int, str, Migration], ...]] = (
    (
        1,
        "records: customers, catalogue, subscriptions with history, invoices, payments, credit, fx",
        _v1,
    ),
    (2, "derived MRR and status spans of subscriptions, daily cash totals (backfilled)", _v2),
    (3, "derived subscription states for status, product and segment filters (backfilled)", _v3),
    (4, "the service's own product on its derived states, for the product filter", _v4),
    (5, "each subscription's current state, materialised with its history", _v5),
    (6, "an index of invoice lines by subscription, for the Active segment's facts", _v6),
    (
        7,
        "the ledger per customer: MRR steps, intervals with movement kinds, cash (backfilled)",
        _v7,
    ),
    (
        8,
        "the ledger's service states, status and overdue intervals, renewing states"
        " (backfilled); cash entries indexed by moment",
        _v8,
    ),
    (
        9,
        "no daily cash totals nor billing calendar on the spans (unread); the renewing"
        " states' billing calendar and MRR (backfilled)",
        _v9,
    ),
)
LATEST_VERSION: Final = MIGRATIONS[-1][0]
