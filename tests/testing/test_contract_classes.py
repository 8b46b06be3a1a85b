"""The contract suites stay runnable: a host's subclass that gives the factory is concrete.

pytest silently skips an abstract test class, so a test of a mixin that became abstract
(a stray ``@abc.abstractmethod``) would stop running on every backend without a failure.
"""

from __future__ import annotations

import inspect

import pytest

from revcrm.testing.contract import StoreContract
from revcrm.testing.crm_contract import CRMStoreContract


@pytest.mark.parametrize(
    ("suite", "factory"),
    [(StoreContract, "make_store"), (CRMStoreContract, "make_crm_store")],
)
def test_only_the_factory_is_abstract(suite: type, factory: str) -> None:
    assert inspect.isabstract(suite)
    assert getattr(suite, "__abstractmethods__") == frozenset({factory})  # noqa: B009

