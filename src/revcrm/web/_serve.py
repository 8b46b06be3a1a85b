"""``revcrm serve``: the pages over a demo database, with a demo-only login.

Also the demo database builder the browser tests and ``benchmarks/bench_web.py`` share.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from revcrm._facade import CRM

__all__ = ["add_serve_parser", "build_demo_database", "open_crm", "serve"]


def build_demo_database(path: str | Path, *, customers: int = 300, seed: int = 7) -> None:
    """Write the seeded demo book (billing records, leads, tags, notes, intake answers)
    into a fresh SQLite file at ``path`` (billing and CRM tables in one database)."""
    from revcrm._demo import DEMO_AS_OF, demo_book, demo_crm_activity, demo_leads
    from revcrm.storage import SQLStore
    from revcrm.storage._crm_sql import SQLCRMStore

    file = Path(path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{file}{suffix}").unlink(missing_ok=True)
    book = demo_book(customers, seed=seed, as_of=DEMO_AS_OF)
    store = SQLStore(f"sqlite:///{file}")
    try:
        store.create_schema()
        store.import_book(book)
        crm_store = SQLCRMStore.alongside(store)
        crm_store.create_schema()
        crm = _facade(store, crm_store, lambda: DEMO_AS_OF)
        with store.transaction():
            demo_crm_activity(crm, book, as_of=DEMO_AS_OF)
            for lead in demo_leads(book, as_of=DEMO_AS_OF):
                crm_store.leads.add(lead)
    finally:
        store.close()


def _facade(store: Any, crm_store: Any, clock: Callable[[], datetime]) -> CRM:
    from revcrm._facade import CRM

    return CRM(store, crm_store, reporting_currency="USD", clock=clock)


def open_crm(db: str, *, clock: Callable[[], datetime] | None = None) -> CRM:
    """A facade over an existing database URL (``sqlite:///file``, ``postgresql+psycopg://``);
    the clock defaults to the demo's moment, so the demo book looks as it was generated."""
    from revcrm._demo import DEMO_AS_OF
    from revcrm.storage import SQLStore
    from revcrm.storage._crm_sql import SQLCRMStore

    store = SQLStore(db)
    crm_store = SQLCRMStore.alongside(store)
    return _facade(store, crm_store, clock or (lambda: DEMO_AS_OF))


#: The demo's only staff member: an admin, for a look at the pages on one's own machine.
DEMO_STAFF_ID = "demo-admin"
_WARNING = (
    "revcrm serve: DEMO LOGIN - every request is signed in as the admin {name!r}.\n"
    "  This is for a look at the demo database on your own machine only. A host mounts\n"
    "  revcrm.web.create_app(crm, authenticate=...) behind its own login (docs/web.md)."
)


def demo_app(crm: CRM) -> Any:
    """The pages over ``crm`` with the demo-only login (everyone is the demo admin)."""
    from revcrm.web._app import create_app
    from revcrm.web._auth import Staff

    staff = Staff(id=DEMO_STAFF_ID, name="Demo admin", role="admin")
    return create_app(crm, authenticate=lambda _request: staff)


def serve(db: str | None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the pages with uvicorn over ``db`` (a database URL), or, without one, over
    a fresh demo database (300 customers) written to ``revcrm-demo-web.sqlite``."""
    import uvicorn

    if db is None:
        path = Path("revcrm-demo-web.sqlite")
        print(f"revcrm serve: building the demo database {path} ...", file=sys.stderr)
        build_demo_database(path)
        db = f"sqlite:///{path}"
    crm = open_crm(db)
    print(_WARNING.format(name=DEMO_STAFF_ID), file=sys.stderr)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"revcrm serve: WARNING: listening on {host}: anyone who can reach it is admin.",
            file=sys.stderr,
        )
    uvicorn.run(demo_app(crm), host=host, port=port, log_level="info")


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve [--db URL] [--host 127.0.0.1] [--port 8000]`` to a CLI's subparsers;
    the parsed arguments' ``func`` runs it and returns the exit status."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve the CRM pages over the demo database (demo-only login)",
        description="Serve revcrm's web pages (dashboard, segments, customers, profiles, "
        "leads, analytics) for a look, signed in as a demo admin: never expose this port.",
    )
    p.add_argument("--db", default=None, help="database URL (default: build a demo SQLite file)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on")

    def run(args: argparse.Namespace) -> int:
        serve(args.db, args.host, args.port)
        return 0

    p.set_defaults(func=run)
    return p
