"""Fixtures of the web tests: a small seeded demo database and a signed-in client."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from revcrm._facade import CRM
from revcrm.web import Staff
from revcrm.web._serve import build_demo_database, open_crm

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; httpx works the same here.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

__all__ = ["TestClient", "csrf_of"]

DEMO_CUSTOMERS = 60
ADMIN = Staff(id="staff-admin", name="Ada Admin", role="admin")
STAFF = Staff(id="staff-sam", name="Sam Staff", role="staff")
READER = Staff(id="staff-rita", name="Rita Reader", role="read-only")

_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _TOKEN.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


@pytest.fixture(scope="session")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("web") / "demo.sqlite"
    build_demo_database(path, customers=DEMO_CUSTOMERS)
    return path


@pytest.fixture
def crm(demo_db: Path) -> Iterator[CRM]:
    facade = open_crm(f"sqlite:///{demo_db}")
    yield facade
    facade.store.close()


class Who:
    """Who the host's ``authenticate`` says is signed in (None: nobody)."""

    def __init__(self) -> None:
        self.staff: Staff | None = STAFF
