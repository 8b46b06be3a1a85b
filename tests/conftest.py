"""Shared fixtures: hypothesis profiles, the PostgreSQL server URL, and the order in which
the slowest tests start."""

from __future__ import annotations

import os
from typing import Final

import pytest
from hypothesis import HealthCheck, settings

# The default profile is what the test command runs: 20 examples a property keeps the
# whole suite within its 8 minutes on 2 cores (25 took it to 9 min 37 s on a fresh clone
# once the ledger's invoice, trial and reach rows came in); "thorough" (500) is for a
# deeper run: HYPOTHESIS_PROFILE=thorough bash scripts/test.sh.
settings.register_profile(
    "default", max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("fast", max_examples=15, deadline=None)
settings.register_profile(
    "thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

#: The slowest tests (``--durations``; node ids, a parametrised test or a whole module
#: by its prefix), slowest first. They start before everything else: xdist hands tests
#: out in collection order, and these sit late in it (tests/storage, tests/sync,
#: tests/web), so one worker used to run the longest of them alone at the end while the
#: other had nothing left. A test missing from the list only starts in its usual place.
SLOW_FIRST: tuple[str, ...] = (
    "tests/storage/test_segment_pushdown.py::test_postgres_filters_equal_the_pure_functions",
    "tests/storage/test_segment_pushdown.py::test_sqlite_filters_equal_the_pure_functions",
    "tests/storage/test_pushdown.py::test_sqlite_aggregates_equal_the_pure_functions",
    "tests/test_api_reference.py",  # one mkdocs build for the module: kept together
    "tests/storage/test_segment_pushdown.py::test_memory_and_sqlite_segments_equal_the_cycle_aware_definition",
    "tests/sync/test_host_panel.py::test_host_panel_over_months",
    "tests/web/test_browser.py",
    "tests/reliability/test_fuzz.py::test_sqlite_crm_store_refuses_hostile_arguments",
    "tests/storage/test_pushdown.py::test_postgres_aggregates_equal_the_pure_functions",
    "tests/storage/test_contract.py::TestPostgresStore::test_aggregates_after_delete_equal_a_store_without_the_customer",
    "tests/reliability/test_crash.py::test_killed_imports_leave_before_or_after",
    "tests/test_docs.py::test_a_block_using_an_extra_it_does_not_name_fails",
    "tests/reliability/test_fuzz.py::test_sqlite_writes_refuse_hostile_arguments",
    "tests/web/test_routes.py::test_the_list_shows_the_facades_segments_and_a_merge_renews_the_baseline",
    "tests/storage/test_segment_pushdown.py::test_postgres_segments_equal_the_cycle_aware_definition",
    "tests/reliability/test_races.py::test_concurrent_spends_never_overdraw",
    "tests/test_docs.py::test_markdown_code_blocks_run",
    "tests/storage/test_contract.py::TestPostgresStore::test_generated_books_round_trip",
    "tests/segments/test_segment_properties.py::test_each_segment_matches_its_definition",
)


def _slow_rank(nodeid: str) -> int:
    for rank, prefix in enumerate(SLOW_FIRST):
        if nodeid == prefix or nodeid.startswith((prefix + "[", prefix + "::")):
            return rank
    return len(SLOW_FIRST)


#: Property tests comparing two implementations (SQL stores and the pure functions, the
#: engine and its Decimal oracle) over many generated books: the paths they run are the
#: ones the contract and example tests cover, at two to three times the cost under
#: coverage's tracer, so coverage pauses for them (pytest-cov's ``no_cover``).
NO_COVER: Final = (
    # The contract on the SQLite file and PostgreSQL runs the SQL store's code that the
    # in-memory SQLite class of the same contract already covers; traced, it costs twice.
    "tests/storage/test_contract.py::TestSQLiteFileStore",
    "tests/storage/test_contract.py::TestPostgresStore",
    # The SQL halves of the hostile-input fuzz: traced they cost twice, and the paths
    # they reach are the ones the in-memory halves and the SQLite in-memory contract's
    # bad-input tests already cover.
    "tests/reliability/test_fuzz.py::test_sqlite_writes_refuse_hostile_arguments",
    "tests/reliability/test_fuzz.py::test_postgres_reads_refuse_hostile_arguments",
    "tests/reliability/test_fuzz.py::test_postgres_writes_refuse_hostile_arguments",
    "tests/reliability/test_fuzz.py::test_sqlite_crm_store_refuses_hostile_arguments",
    "tests/reliability/test_fuzz.py::test_postgres_crm_store_refuses_hostile_arguments",
    "tests/storage/test_segment_pushdown.py",
    "tests/storage/test_pushdown.py::test_sqlite_aggregates_equal_the_pure_functions",
    "tests/storage/test_pushdown.py::test_postgres_aggregates_equal_the_pure_functions",
    "tests/storage/test_sql_ledger.py::test_sqlite_ledger_reads_equal_the_engine",
    "tests/storage/test_sql_ledger.py::test_postgres_ledger_reads_equal_the_engine",
    "tests/metrics/test_engine_properties.py",
    "tests/segments/test_segment_properties.py",
    "tests/ledger/test_differential.py",
    "tests/tz/test_properties.py",
    # Equalities across the stores: the contract and example tests cover the same paths.
    "tests/storage/test_one_definition.py",
    "tests/metrics/test_dashboard_stores.py",
    "tests/storage/test_sql_ledger.py",
    "tests/sync/test_host_panel.py",
    "tests/reliability/test_races.py",
    # Differential properties against a copied oracle: the figures' code they run is the
    # example tests' too; traced, their many examples cost about twice (the 8 minutes).
    "tests/metrics/test_ledger_figures.py",
    "tests/metrics/test_cash_entries.py",
    "tests/metrics/test_status_ledger.py",
    "tests/storage/test_ledger_status.py",
    "tests/metrics/test_ledger_invoices.py::test_invoice_figures_equal_the_decimal_oracle",
    "tests/metrics/test_renewals_ledger.py::test_renewals_due_is_the_per_subscription_definition",
    "tests/ledger/test_trial_rows.py::test_trial_conversion_is_the_per_subscription_definition",
    "tests/segments/test_rule_columns.py::test_the_columnar_rules_equal_the_per_customer_rules",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stable sort: the rest keep their order, so each xdist worker collects the same.
    items.sort(key=lambda item: _slow_rank(item.nodeid))
    for item in items:
        if item.nodeid.startswith(NO_COVER) or _on_postgres(item):
            item.add_marker(pytest.mark.no_cover)


def _on_postgres(item: pytest.Item) -> bool:
    """A test on the PostgreSQL server: coverage pauses for it. The SQL store's code it
    runs is the SQLite tests' but for the dialect's few branches (left uncovered, so the
    report shows them), and traced it costs about twice (the suite's 8 minutes)."""
    if item.get_closest_marker("postgres") is not None:
        return True
    if "postgres_url" in getattr(item, "fixturenames", ()):
        return True
    callspec = getattr(item, "callspec", None)  # a backend parameter named "postgres"
    return callspec is not None and "postgres" in str(callspec.id).split("-")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The throwaway server started by scripts/test.sh.

    Outside CI, without a server, PostgreSQL tests skip with one line saying why; with
    CI=true a missing server fails instead.
    """
    url = os.environ.get("REVCRM_TEST_POSTGRES_URL")
    if url:
        return url
    reason = os.environ.get(
        "REVCRM_TEST_POSTGRES_SKIP_REASON",
        "REVCRM_TEST_POSTGRES_URL is not set (scripts/test.sh starts a throwaway server)",
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL required in CI: {reason}")
    pytest.skip(f"PostgreSQL tests skipped: {reason}")
