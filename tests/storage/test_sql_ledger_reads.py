"""The SQL store's public metric reads take the ledger tables when the ledger covers them.

``mrr``, ``mrr_series``, ``paying_customers``, ``customer_flow`` and ``cash_by_month`` read
:class:`~revcrm.storage._sql_ledger_queries.LedgerReads` when it covers the read (kept in
the asked currency, its horizon not before the latest moment asked, no customer in scope
lacking a rate); otherwise the stored records are loaded and the engine or the pure
functions answer (no SQL copy of a rule). Each test counts which path ran: the record
path's entry points and the ledger's aggregation are wrapped, and the path that must not
run raises.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from dateutil.relativedelta import relativedelta

from revcrm._money import FxRates
from revcrm.errors import MissingRateError
from revcrm.metrics import analyse
from revcrm.storage import InMemoryStore, SQLStore, Store
from revcrm.storage._sql_ledger_queries import LedgerReads
from revcrm.storage._sql_metrics import SQLMetrics
from revcrm.testing.contract import AS_OF, sample_book

_OLD = ("_engine_mrr", "_engine_series", "_engine_paying", "_engine_flow", "_engine_cash")
_LEDGER = ("_levels", "_paying_count", "_flow", "cash_sums")
_START = datetime(2024, 1, 1, tzinfo=UTC)
_END = datetime(2024, 9, 1, tzinfo=UTC)


@attrs.define
class Paths:
    """Calls of each path's entry points; ``forbid`` makes one path raise."""

    calls: Counter[str] = attrs.field(factory=Counter)
    forbidden: set[str] = attrs.field(factory=set)

    def forbid(self, *names: str) -> None:
        self.forbidden = set(names)


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> Paths:
    seen = Paths()

    def wrap(owner: type, name: str) -> None:
        real = getattr(owner, name)

        def spy(*args: Any, **kwargs: Any) -> Any:
            if name in seen.forbidden:
                raise AssertionError(f"{name} ran")
            seen.calls[name] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, spy)

    for name in _OLD:
        wrap(SQLMetrics, name)
    for name in _LEDGER:
        wrap(LedgerReads, name)
    return seen


def _store(fx: FxRates | None = None) -> Iterator[SQLStore]:
    store = SQLStore("sqlite://")
    store.create_schema()
    book = sample_book()
    store.import_book(book if fx is None else attrs.evolve(book, fx=fx))
    yield store
    store.close()


@pytest.fixture
def store() -> Iterator[SQLStore]:
    yield from _store()


@pytest.fixture
def lacking() -> Iterator[SQLStore]:
    """The sample book without its rates: c2's EUR subscription lacks one."""
    yield from _store(FxRates.empty())


def _reads(store: Store) -> list[Callable[[], Any]]:
    return [
        lambda: store.mrr(at=AS_OF, currency="USD"),
        lambda: store.mrr(at=AS_OF, currency="USD", customer_ids=["c1", "c3"]),
        lambda: store.mrr_series(start=_START, end=_END, currency="USD"),
        lambda: store.paying_customers(at=AS_OF),
        lambda: store.customer_flow(start=_START + timedelta(days=45), end=AS_OF),
        lambda: store.cash_by_month(start=_START, end=_END, currency="USD"),
    ]


def test_covered_reads_take_the_ledger_and_equal_the_old_path(
    store: SQLStore, paths: Paths
) -> None:
    reads = _reads(store)
    paths.forbid(*_LEDGER)  # force the record path: its answers are the reference
    with pytest.MonkeyPatch.context() as m:
        m.setattr(LedgerReads, "_kept", lambda *a: False)
        m.setattr(LedgerReads, "keeps", lambda *a: False)
        old = [read() for read in reads]
    assert all(paths.calls[n] for n in _OLD)
    paths.calls.clear()
    paths.forbid(*_OLD)
    assert [read() for read in reads] == old
    assert paths.calls == Counter(_levels=3, _paying_count=1, _flow=1, cash_sums=1)
    # The memory store (the engine) agrees too.
    memory = InMemoryStore()
    memory.import_book(sample_book())
    assert [read() for read in _reads(memory)] == old


def test_customers_lacking_a_rate_are_read_from_their_records(
    lacking: SQLStore, paths: Paths
) -> None:
    # The ledger answers for the customers it built; c2 (lacking a rate: no rows) is
    # added from its own subscriptions by the pure functions. The memory store agrees.
    memory = InMemoryStore()
    memory.import_book(attrs.evolve(sample_book(), fx=FxRates.empty()))
    before_eur = datetime(2024, 1, 15, tzinfo=UTC)  # c2's EUR subscription starts 2024-02-10
    for store in (lacking, memory):
        assert store.mrr(at=before_eur, currency="USD").amount > 0
        assert store.paying_customers(at=AS_OF) == 3
        flow = store.customer_flow(start=before_eur, end=AS_OF)
        assert (flow.at_start, flow.at_end, flow.retained, flow.gained) == (1, 3, 1, 2)
        # MRR at a moment raises only for the rates it needs (the pure function's); a
        # series is the engine's, which converts the whole history.
        with pytest.raises(MissingRateError):
            store.mrr(at=AS_OF, currency="USD")
        with pytest.raises(MissingRateError):
            store.mrr_series(start=_START, end=_START + timedelta(days=20), currency="USD")
    assert paths.calls == Counter(
        _levels=2, _engine_mrr=2, _paying_count=1, _engine_paying=1, _flow=1, _engine_flow=1
    )
    # Customers none of whom lacks a rate: the ledger alone answers.
    paths.calls.clear()
    paths.forbid(*_OLD)
    book = sample_book()
    engine = analyse(book, currency="USD", policy=lacking.policy, horizon=lacking.ledger_horizon())
    assert lacking.mrr(at=AS_OF, currency="USD", customer_ids=["c1", "c3"]) == engine.mrr(
        AS_OF, customer_ids=["c1", "c3"]
    )
    assert paths.calls == Counter(_levels=1)


def test_another_currency_or_past_the_horizon_falls_back(store: SQLStore, paths: Paths) -> None:
    paths.forbid(*_LEDGER)
    horizon = store.ledger_horizon()
    assert horizon is not None
    late = horizon + relativedelta(months=1)
    store.mrr(at=AS_OF, currency="EUR")
    store.mrr(at=late, currency="USD")
    store.mrr_series(start=_START, end=late, currency="USD")
    store.paying_customers(at=late)
    store.customer_flow(start=AS_OF, end=late)
    store.cash_by_month(start=_START, end=_END, currency="EUR")
    assert paths.calls == Counter(
        _engine_mrr=2, _engine_series=1, _engine_paying=1, _engine_flow=1, _engine_cash=1
    )


def test_cash_of_customers_lacking_a_rate_comes_from_their_transactions(
    lacking: SQLStore, paths: Paths
) -> None:
    memory = InMemoryStore()
    memory.import_book(attrs.evolve(sample_book(), fx=FxRates.empty()))

    def outcome(store: Store, end: datetime) -> Any:
        try:
            return store.cash_by_month(start=_START, end=end, currency="USD")
        except MissingRateError:
            return MissingRateError

    ends = [_START + relativedelta(months=n) for n in (1, 2, 4, 8)]
    found = [outcome(lacking, end) for end in ends]
    assert found == [outcome(memory, end) for end in ends]
    assert MissingRateError in found
    assert any(f is not MissingRateError for f in found)
    assert paths.calls["cash_sums"] == len(ends)
    assert paths.calls["_engine_cash"] == len(ends)
