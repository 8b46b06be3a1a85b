"""The SQL store's schema changes: forward migrations and the derived tables they rebuild.

The spans (MRR pushdown), the states (each subscription's state history) and the ledger
tables are derived from the records; a migration or a policy change rebuilds them.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from revcrm._subscription import Subscription
from revcrm.errors import (
    StorageError,
    ValidationError,
)
from revcrm.storage._codec import (
    Row,
    encode_state,
    to_limbs,
)
from revcrm.storage._schema import (
    LATEST_VERSION,
    MIGRATIONS,
    drop_span_calendar,
)
from revcrm.storage._spans import policy_fingerprint, subscription_spans
from revcrm.storage._sql_base import (
    _POLICY_KEY,
)
from revcrm.storage._sql_db import _chunks
from revcrm.storage._sql_decimal import (
    _LIMB_COLUMNS,
)
from revcrm.storage._sql_ledger import Progress, SQLLedger

__all__ = ["SQLMigrations"]

_T = TypeVar("_T")


class SQLMigrations(SQLLedger):
    """Schema creation, forward migrations and the rebuild of the derived tables."""

    def create_schema(self, *, progress: Progress | None = None) -> int:
        """Create the tables (or bring them up to date); return the schema version."""
        return self.migrate(progress=progress)

    def migrate(self, *, to: int | None = None, progress: Progress | None = None) -> int:
        """Apply the forward migrations up to ``to`` (default: the latest); return the version.

        At the latest version it also rebuilds the MRR spans and the ledger if they were
        built under another policy. Runs in one transaction: a failing step leaves the
        schema as it was. ``progress(step, done, total)`` hears how far a rebuild of the
        ledger is (customers done of total).
        """
        target = LATEST_VERSION if to is None else to
        if (
            isinstance(target, bool)
            or not isinstance(target, int)
            or not 1 <= target <= LATEST_VERSION
        ):
            raise ValidationError("to", to, f"a schema version from 1 to {LATEST_VERSION}")
        path = self._engine.url.database if self._sqlite else None
        if path not in (None, "", ":memory:") and not path.startswith("file:"):
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise ValidationError("url", path, f"folder {folder!r} does not exist")
        self._db.enable_wal()

        # A database without revcrm tables has nothing derived to rebuild at each step: it
        # is built once, at the end (the step rebuilds cost most of a new store's setup).
        fresh = False

        def rebuild(
            conn: Connection,
            *,
            ledger_only: bool = False,
            services_only: bool = False,
            renewals_only: bool = False,
        ) -> None:
            if fresh:
                return
            # Built under another policy: everything is rebuilt, the ledger once.
            stale = self._setting(conn, _POLICY_KEY) != policy_fingerprint(self._policy)
            if services_only and not stale:
                self._ledger_rebuild_services(conn, progress)
                return
            if renewals_only and not stale:
                self._ledger_rebuild_renewals(conn, progress)
                return
            self._rebuild_derived(conn, ledger_only=ledger_only and not stale, progress=progress)

        def run(conn: Connection) -> int:
            self._db.migration_lock(conn, self.prefix, 0x5245_5643_0000)
            nonlocal fresh
            current = self._installed_version(conn)
            fresh = current == 0
            if current > LATEST_VERSION:
                raise StorageError(f"schema version {current} is newer than this revcrm")
            for version, description, step in MIGRATIONS:
                if current < version <= target:
                    step(conn, self._schema, rebuild)
                    conn.execute(
                        self._schema.schema_version.insert().values(
                            version=version,
                            description=description,
                            applied_at=datetime.now(UTC),
                        )
                    )
                    current = version
            fresh = False
            if current == LATEST_VERSION and self._setting(conn, _POLICY_KEY) != policy_fingerprint(
                self._policy
            ):
                rebuild(conn)
            return current

        current = self._db.admin(run)
        self._ready = False
        return current

    def drop_schema(self) -> None:
        """Drop every revcrm table under this prefix (the host's tables are untouched)."""
        self._db.admin(lambda conn: self._schema.meta.drop_all(conn, checkfirst=True))
        self._ready = False

    def _rebuild_derived(
        self, conn: Connection, *, ledger_only: bool = False, progress: Progress | None = None
    ) -> None:
        """Recompute every derived table from the records (migrations, policy changes)."""
        if not ledger_only:
            self._rebuild_records_derived(conn)
        # Migrations before version 7 rebuild without the ledger, which comes later.
        if self._ledger_ready(conn):
            self._ledger_rebuild_all(conn, progress)
        self._put_setting(conn, _POLICY_KEY, policy_fingerprint(self._policy))

    def _rebuild_records_derived(self, conn: Connection) -> None:
        s = self._schema
        # Spans written before version 9 have its calendar columns: the table is made
        # afresh (its rows are rebuilt here anyway).
        drop_span_calendar(conn, s, keep_rows=False)
        conn.execute(s.spans.delete())
        # Migrations before version 3 rebuild without the states table, which comes later.
        states = sa.inspect(conn).has_table(s.states.name)
        if states:
            conn.execute(s.states.delete())
        ids = [
            r[0]
            for r in conn.execute(sa.select(s.subscriptions.c.id).order_by(s.subscriptions.c.id))
        ]
        # Migrations before version 5 rebuild without the materialised current states.
        head = s.subscriptions
        current = "current_state" in {c["name"] for c in sa.inspect(conn).get_columns(head.name)}
        for chunk in _chunks(ids, 2000):
            subs = self._load(conn, "subscription", head.c.id.in_(chunk))
            rows = [row for sub in subs for row in self._span_rows(sub)]
            self._insert(conn, s.spans, rows)
            if states:
                self._insert(conn, s.states, [row for sub in subs for row in self._state_rows(sub)])
            if current:
                set_state = (
                    head.update()
                    .where(head.c.id == sa.bindparam("sub_id"))
                    .values(current_state=sa.bindparam("state"))
                )
                conn.execute(
                    set_state,
                    [{"sub_id": sub.id, "state": encode_state(sub.current)} for sub in subs],
                )

    def _span_rows(self, sub: Subscription) -> list[Row]:
        rows = []
        for sp in subscription_spans(sub, self._policy):
            row: Row = {
                "subscription_id": sub.id,
                "seq": sp.seq,
                "customer_id": sub.customer_id,
                "currency": sub.currency,
                "start_at": sp.start,
                "end_at": sp.end,
                "amount": sp.amount,
                "positive": sp.amount != 0,
                "status": sp.status,
            }
            if self._sqlite:
                row.update(zip(_LIMB_COLUMNS, to_limbs(sp.amount), strict=True))
            rows.append(row)
        return rows

    @staticmethod
    def _state_rows(sub: Subscription) -> list[Row]:
        rows: list[Row] = []
        history = sub.history
        for i, (change, state) in enumerate(sub.replay()):
            until = history[i + 1].at if i + 1 < len(history) else None
            if until == change.at:
                continue  # superseded at the moment it begins: never the state at a moment
            rows.append(
                {
                    "subscription_id": sub.id,
                    "seq": i,
                    "customer_id": sub.customer_id,
                    "from_at": change.at,
                    "to_at": until,
                    "status": state.status.value,
                    "plan_id": state.plan_id,
                    "product_id": state.product_id,
                    "ended_at": state.ended_at,
                    "cancel_at_period_end": state.cancel_at_period_end,
                    "anchor": state.billing_anchor,
                    "cycle_count": state.cycle.count,
                    "cycle_unit": state.cycle.unit.value,
                }
            )
        return rows

    # -- table lookup ------------------------------------------------------------------------
