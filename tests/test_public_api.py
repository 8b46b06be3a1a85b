"""The public API: every name in each package's ``__all__`` resolves, nothing private leaks."""

from __future__ import annotations

import importlib

import pytest

PACKAGES = [
    "revcrm",
    "revcrm.errors",
    "revcrm.metrics",
    "revcrm.leads",
    "revcrm.segments",
    "revcrm.storage",
    "revcrm.crm",
    "revcrm.export",
    "revcrm.sync",
    "revcrm.io",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_names_resolve(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported, f"{name} exports nothing"
    assert len(set(exported)) == len(exported)
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names missing {attr!r}"
        assert not attr.startswith("_") or attr == "__version__"


def test_importing_revcrm_does_no_io(tmp_path: object) -> None:
    # Importing must not read the clock, the environment or files beyond modules: a fresh
    # interpreter with an empty environment imports everything.
    import subprocess
    import sys

    code = "import revcrm, revcrm.metrics, revcrm.leads, revcrm.segments, revcrm.storage"
    result = subprocess.run(
        [sys.executable, "-c", code], env={}, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("package", "names"),
    [
        ("revcrm", ["CreditAuthority", "HostCreditAdjuster"]),
        ("revcrm.leads", ["REGISTRATION_SKEW", "registration_moment"]),
        ("revcrm.testing.strategies", ["service_observations"]),
    ],
)
def test_integration_names_are_exported(package: str, names: list[str]) -> None:
    module = importlib.import_module(package)
    for name in names:
        assert name in module.__all__, f"{package}.{name}"
        assert hasattr(module, name), f"{package}.{name}"
