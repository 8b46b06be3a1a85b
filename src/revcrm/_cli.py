"""The ``revcrm`` command line: ``revcrm demo`` and ``revcrm report``.

Each subcommand is one ``add_<name>(subparsers)`` function in :data:`SUBCOMMANDS` that
registers its parser and sets ``func`` (``args -> exit status``); a new subcommand is one
more entry (imported lazily, so ``revcrm --help`` needs no extra).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from revcrm._book import Book
from revcrm._money import Money, format_money
from revcrm.errors import RevcrmError

if TYPE_CHECKING:
    from revcrm._facade import CRM
    from revcrm.export import Report
    from revcrm.storage import SQLStore

__all__ = ["SUBCOMMANDS", "build_parser", "main"]

Subparsers = Any  # argparse's _SubParsersAction is private; its type is not public API


def _moment(text: str) -> datetime:
    """``--as-of``: an ISO date (midnight) or date-time; UTC unless it carries an offset."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        try:
            value = datetime.combine(date.fromisoformat(text), datetime.min.time())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not an ISO date or date-time (2026-11-20 or 2026-11-20T12:00)"
            ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _common(p: argparse.ArgumentParser, *, as_of_default: str) -> None:
    p.add_argument(
        "--as-of",
        type=_moment,
        default=None,
        metavar="DATE",
        help="the moment every figure is taken at: an ISO date or date-time, UTC unless it "
        f"has an offset (default: {as_of_default})",
    )
    p.add_argument(
        "--locale",
        default="en_US",
        help="how amounts, percentages and months are written, e.g. en_US, de_DE, fr-FR "
        "(default: en_US)",
    )
    p.add_argument(
        "--currency",
        default="USD",
        help="the reporting currency every amount is converted into (default: USD)",
    )


# -- demo -------------------------------------------------------------------------------------


def _add_demo(sub: Subparsers) -> None:
    p = sub.add_parser(
        "demo",
        help="build a seeded demo book, store it in SQLite, print its report and write it as HTML",
        description="Generate a seeded book of a small hosting business, write it into a "
        "SQLite database, read it back, print the report pages and write the HTML report "
        "next to the database.",
    )
    p.add_argument(
        "--customers",
        type=int,
        default=300,
        help="how many customers the demo business has (default: 300)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=7,
        help="random seed: the same seed gives the same book (default: 7)",
    )
    _common(p, as_of_default="the demo's date, 2026-11-20 12:00 UTC")
    p.add_argument(
        "--db",
        default=None,
        metavar="PATH",
        help="SQLite file to write the demo book into (replaced if it exists); default: "
        "revcrm-demo.sqlite in a new temporary folder; '-' keeps everything in memory "
        "and writes no report",
    )
    p.set_defaults(func=demo)


def demo(args: argparse.Namespace) -> int:
    from revcrm._demo import DEMO_AS_OF, demo_book
    from revcrm.export._report import build_report, render_html, render_text

    as_of: datetime = DEMO_AS_OF if args.as_of is None else args.as_of
    locale, cur = args.locale, args.currency
    out = sys.stdout
    if args.db is None:
        db = str(Path(tempfile.mkdtemp(prefix="revcrm-demo-")) / "revcrm-demo.sqlite")
    else:
        db = args.db
    generated = demo_book(args.customers, seed=args.seed, as_of=as_of)
    out.write(
        f"revcrm demo: a hosting business with {len(generated.customers)} customers, "
        f"{len(generated.subscriptions)} services, {len(generated.invoices)} invoices, "
        f"{len(generated.transactions)} transactions (seed {args.seed})\n"
    )
    book, stored, crm = _through_sqlite(generated, db, as_of=as_of, currency=cur)
    try:
        out.write(stored + "\n\n")
        report = build_report(crm, as_of=as_of, locale=locale, label=_demo_label(db, args))
        out.write(render_text(report) + "\n")
        _crm_pages(out, crm, book, report, as_of=as_of, locale=locale)
    finally:
        crm.store.close()
    if db != "-":
        path = _report_path(Path(db))
        path.write_text(render_html(report), encoding="utf-8")
        out.write(f"\nDatabase: {Path(db).resolve()}\nHTML report: {path.resolve()}\n")
        out.write(
            f"  (again: revcrm report --db {Path(db).resolve()} --as-of {as_of.isoformat()} "
            "--html PATH)\n"
        )
    return 0


def _demo_label(db: str, args: argparse.Namespace) -> str:
    where = "kept in memory" if db == "-" else f"SQLite file {Path(db).resolve()}"
    return f"revcrm demo book ({args.customers} customers, seed {args.seed}), {where}"


def _report_path(db: Path) -> Path:
    return db.with_name(f"{db.stem}-report.html")


def _through_sqlite(
    book: Book, db: str, *, as_of: datetime, currency: str
) -> tuple[Book, str, CRM]:
    """Write the book into a fresh SQLite file, read it back, and check the dashboard the
    database computes (pushed down to SQL) against the pure functions. Returns the book
    read back and a CRM facade over the file (CRM tables in the same database, one unit
    of work) holding the demo's CRM activity and leads; in memory with ``--db -``."""
    from revcrm._facade import CRM
    from revcrm.storage import InMemoryCRMStore, InMemoryStore

    def clock() -> datetime:
        return as_of

    def in_memory(note: str) -> tuple[Book, str, CRM]:
        memory = InMemoryStore()
        memory.import_book(book)
        crm = CRM(memory, InMemoryCRMStore(), reporting_currency=currency, clock=clock)
        _crm_activity(crm, book, as_of)
        return book, note, crm

    if db == "-":
        return in_memory("(kept in memory: --db -)")
    try:
        from revcrm.storage import SQLStore
        from revcrm.storage._crm_sql import SQLCRMStore
    except ImportError:  # pragma: no cover - the sql extra is missing
        return in_memory(
            "(SQLAlchemy missing: pip install 'revcrm[sql]' to store the book in SQLite)"
        )
    path = Path(db)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = SQLStore(f"sqlite:///{path}")
    try:
        store.create_schema()
        result = store.import_book(book)
        loaded = store.book()
        pushed = store.dashboard(as_of=as_of, currency=currency)
        crm_store = SQLCRMStore.alongside(store)
        crm_store.create_schema()
        crm = CRM(store, crm_store, reporting_currency=currency, clock=clock)
        _crm_activity(crm, loaded, as_of)
    except BaseException:
        store.close()
        raise
    from revcrm.metrics import mrr

    pure = mrr(loaded, at=as_of, currency=currency, policy=store.policy)
    check = "equal" if pushed.mrr == pure else f"DIFFERENT ({pushed.mrr} vs {pure})"
    return (
        loaded,
        (
            f"Stored in SQLite file {path.resolve()} ({result.inserted} records) and read "
            f"back; MRR computed in SQL and in Python: {check}"
        ),
        crm,
    )


def _crm_activity(crm: CRM, book: Book, as_of: datetime) -> None:
    """The demo's notes, tags, intake answers and leads, in one unit of work."""
    from revcrm._demo import demo_crm_activity, demo_leads

    with crm.store.transaction():
        demo_crm_activity(crm, book, as_of=as_of)
        for lead in demo_leads(book, as_of=as_of):
            crm.crm.leads.add(lead)


def _crm_pages(
    out: TextIO, crm: CRM, book: Book, report: Report, *, as_of: datetime, locale: str
) -> None:
    """The CRM pages the report has no room for, through the facade over the stored book:
    the check of the store's segment counts, the customers in no segment, the At Risk
    list, the top customer's profile and the intake breakdown."""
    from revcrm.crm import format_profile
    from revcrm.metrics import analyse
    from revcrm.segments import Segment, segmentation

    def fm(m: Money | None) -> str:
        return "-" if m is None else format_money(m, locale=locale)

    analysis = analyse(book, currency=report.currency, policy=crm.policy, horizon=as_of)
    pure = segmentation(book, as_of=as_of, currency=report.currency, analysis=analysis)
    check = "equal" if report.segments == pure.counts() else "DIFFERENT"
    out.write(f"\nSegment counts computed by the store, Python agrees: {check}\n")
    others = pure.customers_in(Segment.OTHER)
    out.write(f"Other: {len(others)} customers in none of the six segments\n")
    for cid in others[:3]:
        reason = (pure.other_reason(cid) or "").replace("\n", "; ")
        out.write(f"  {cid}: {reason}\n")
    at_risk = crm.customers.list(
        as_of=as_of, segment="at_risk", sort="mrr", direction="desc", limit=5
    )
    out.write("\nAt Risk customers with the most MRR\n")
    for r in at_risk:
        tags = ", ".join(sorted(r.tags)) or "none"
        paid = r.row.last_payment_at
        out.write(
            f"  {r.row.customer.name:<24}{fm(r.row.mrr):>12} MRR, last paid "
            f"{'never' if paid is None else f'{paid:%Y-%m-%d}'}, primary segment "
            f"{r.primary_segment.label if r.primary_segment else 'none'}, tags {tags}\n"
        )
    paying = analysis.customers_with_mrr(as_of)
    if paying:
        top = max(sorted(paying), key=lambda c: paying[c].amount)
        profile = crm.customers.profile(top, as_of=as_of)
        out.write("\nThe customer with the most MRR\n" + format_profile(profile, locale=locale))
        out.write("\n")
    breakdown = crm.intake.breakdown(as_of=as_of)
    rows = list(breakdown.rows_for("heard"))
    if rows:
        out.write("\nIntake: how did you hear about us?\n")
        out.write(f"  {'answer':<16}{'customers':>10}{'paying':>8}{'MRR':>13}{'ARPA':>11}\n")
        for row in rows:
            out.write(
                f"  {row.option or 'no answer':<16}{row.customers:>10}"
                f"{row.paying_customers or 0:>8}{fm(row.mrr):>13}{fm(row.arpa):>11}\n"
            )


# -- report -----------------------------------------------------------------------------------


def _add_report(sub: Subparsers) -> None:
    p = sub.add_parser(
        "report",
        help="write the revenue report of a database as HTML, JSON or CSV",
        description="Compute the revenue report (dashboard cards, 12-month trend, MRR "
        "waterfall, churn, cohorts, revenue breakdowns, segments, lead funnel) of a store "
        "and write it as one self-contained HTML page, as JSON, or as CSV tables.",
    )
    p.add_argument(
        "--html", metavar="PATH", help="write the report as one self-contained HTML page"
    )
    p.add_argument(
        "--json",
        metavar="PATH",
        help="write the report's figures as JSON (revcrm.export.to_jsonable)",
    )
    p.add_argument(
        "--csv", metavar="DIR", help="write the report's tables as CSV files, one per table"
    )
    p.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help="the store to report on: a SQLAlchemy URL (sqlite:///file.sqlite, "
        "postgresql+psycopg://user@host/db) or the path of an existing SQLite file; "
        "default: the demo book (300 customers, seed 7), in memory",
    )
    p.add_argument(
        "--prefix",
        default="revcrm_",
        help="table name prefix of the billing store; the CRM tables are read under the "
        "prefix followed by crm_ (default: revcrm_, so revcrm_crm_)",
    )
    _common(p, as_of_default="the demo's date without --db, otherwise now")
    p.set_defaults(func=report)


def report(args: argparse.Namespace) -> int:
    import json

    from revcrm._facade import CRM
    from revcrm.export import to_jsonable
    from revcrm.export._report import build_report, render_html, write_csv

    if not (args.html or args.json or args.csv):
        sys.stderr.write("revcrm report: nothing to write: give --html, --json or --csv\n")
        return 2
    source, label, as_of = _open_source(args)
    store = source.store if isinstance(source, CRM) else source
    try:
        result = build_report(
            source, as_of=as_of, locale=args.locale, currency=args.currency, label=label
        )
    finally:
        store.close()
    out = sys.stdout
    if args.html:
        Path(args.html).write_text(render_html(result), encoding="utf-8")
        out.write(f"HTML report: {Path(args.html).resolve()}\n")
    if args.json:
        text = json.dumps(to_jsonable(result), indent=2, ensure_ascii=False)
        Path(args.json).write_text(text + "\n", encoding="utf-8")
        out.write(f"JSON: {Path(args.json).resolve()}\n")
    if args.csv:
        paths = write_csv(result, args.csv)
        out.write(f"CSV: {len(paths)} tables in {Path(args.csv).resolve()}\n")
    return 0


def _open_source(args: argparse.Namespace) -> tuple[CRM | SQLStore, str, datetime]:
    """The store the report reads (a facade when the database has CRM tables, else the
    billing store), its label, and the report's moment."""
    from revcrm._demo import DEMO_AS_OF, demo_book

    if args.db is None:
        as_of = DEMO_AS_OF if args.as_of is None else args.as_of
        book = demo_book(300, seed=7, as_of=DEMO_AS_OF)
        _, _, crm = _through_sqlite(book, "-", as_of=as_of, currency=args.currency)
        return crm, "revcrm demo book (300 customers, seed 7), in memory", as_of
    # The command line is the boundary where "now" may be read; pure code never does.
    as_of = datetime.now(UTC) if args.as_of is None else args.as_of
    from revcrm._facade import CRM

    try:
        import sqlalchemy as sa

        from revcrm.storage import SQLStore
        from revcrm.storage._crm_sql import SQLCRMStore
    except ImportError as e:  # pragma: no cover - the sql extra is missing
        raise RevcrmError(
            "reading a database needs the sql extra: pip install 'revcrm[sql]'"
        ) from e
    url = args.db
    if "://" not in url:
        path = Path(url)
        if not path.is_file():
            raise RevcrmError(f"no SQLite file at {url} (or give a URL such as sqlite:///{url})")
        url = f"sqlite:///{path}"
    try:
        shown = sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError as e:
        raise RevcrmError(f"not a database URL: {args.db!r}") from e
    store = SQLStore(url, prefix=args.prefix)
    try:
        if store.schema_version() == 0:
            raise RevcrmError(f"no revcrm tables under prefix {args.prefix!r} in {shown}")
        crm_store = SQLCRMStore.alongside(store, prefix=f"{args.prefix}crm_")
        if crm_store.schema_version() == 0:
            # A billing store without CRM tables: everything but the lead funnel.
            return store, f"{shown} (no CRM tables)", as_of
        crm = CRM(store, crm_store, reporting_currency=args.currency, clock=lambda: as_of)
    except BaseException:
        store.close()
        raise
    return crm, shown, as_of


# -- entry point ------------------------------------------------------------------------------

def _add_serve(sub: Subparsers) -> None:
    try:
        from revcrm.web._serve import add_serve_parser
    except ImportError:  # revcrm.web names the web extra when it is used
        p = sub.add_parser(
            "serve",
            help="serve the CRM pages (needs the web extra: pip install 'revcrm[web]')",
            description="Serve the CRM pages; install the web extra first.",
        )
        p.set_defaults(func=_serve_missing)
        return
    add_serve_parser(sub)


def _serve_missing(args: argparse.Namespace) -> int:
    sys.stderr.write("revcrm serve: needs the web extra: pip install 'revcrm[web]'\n")
    return 2


#: The subcommands, in ``--help`` order: each registers its parser (see the module doc).
SUBCOMMANDS: dict[str, Callable[[Subparsers], None]] = {
    "demo": _add_demo,
    "report": _add_report,
    "serve": _add_serve,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="revcrm", description="Revenue-focused CRM toolkit.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except RevcrmError as e:
        sys.stderr.write(f"revcrm {args.command}: {e}\n")
        return 2
    except BrokenPipeError:
        # The reader went away (``revcrm demo | head``): stop quietly, as other tools do.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return result
