"""Shared fixtures: hypothesis profiles and the PostgreSQL server URL."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("fast", max_examples=15, deadline=None)
settings.register_profile(
    "thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


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
