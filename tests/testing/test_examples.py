"""The shipped contract suites run as many examples as the active hypothesis profile says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import settings

from revcrm.testing._examples import BASE_EXAMPLES, examples
from revcrm.testing.contract import StoreContract
from revcrm.testing.crm_contract import CRMStoreContract


@pytest.fixture
def profile() -> Iterator[None]:
    """Restore the active profile after a test that loads another."""
    name = settings.get_current_profile_name()
    yield
    settings.load_profile(name)


@pytest.mark.parametrize(
    ("max_examples", "n", "expected"),
    [(100, 10, 10), (60, 10, 6), (15, 10, 1), (15, 60, 9), (500, 8, 40), (1, 8, 1), (15, 1, 1)],
)
def test_counts_scale_with_the_profile(
    profile: None, max_examples: int, n: int, expected: int
) -> None:
    settings.register_profile("revcrm-test-examples", max_examples=max_examples)
    settings.load_profile("revcrm-test-examples")
    assert examples(n) == expected


@pytest.mark.parametrize(
    ("test", "n"),
    [
        (StoreContract.test_generated_books_round_trip, 10),
        (StoreContract.test_aggregates_after_delete_equal_a_store_without_the_customer, 8),
        (CRMStoreContract.test_current_tags_replay_the_log, 15),
        (CRMStoreContract.test_stored_answers_replay_like_the_log, 15),
    ],
)
def test_contract_properties_follow_the_active_profile(test: object, n: int) -> None:
    # The decorators ran when the contracts were imported, under the profile conftest loaded.
    used = getattr(test, "_hypothesis_internal_use_settings")  # noqa: B009
    assert used.max_examples == max(1, n * settings().max_examples // BASE_EXAMPLES)
