"""The ASGI application: ``create_app`` and the route table (the request machinery is
in ``_core``, the pages in ``_pages``, the actions in ``_actions``)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from revcrm.errors import ValidationError
from revcrm.segments import CustomSegment
from revcrm.web import _actions, _pages
from revcrm.web._auth import Role
from revcrm.web._core import (
    DEFAULT_MAX_BODY,
    Authenticate,
    Handler,
    TicketSource,
    Web,
    plain,
)
from revcrm.web._format import check_locale, check_timezone

if TYPE_CHECKING:
    from revcrm._facade import CRM

__all__ = ["create_app"]


def create_app(
    crm: CRM,
    *,
    authenticate: Authenticate,
    secret: bytes | str | None = None,
    locale: str = "en_US",
    timezone: str = "UTC",
    tickets: TicketSource | None = None,
    custom_segments: Sequence[CustomSegment] = (),
    page_size: int = 50,
    max_body: int = DEFAULT_MAX_BODY,
    cache_seconds: float = 300.0,
    secure_cookie: bool | None = None,
) -> Starlette:
    """The CRM pages as an ASGI application to mount under any prefix.

    ``authenticate(request)`` (sync or async) returns the signed-in :class:`Staff` or
    None. ``secret`` signs the session cookie and CSRF tokens and seals URL values: pass
    the same one to every process serving the pages (by default a random one per app,
    so sessions do not survive a restart). ``locale`` is the default for staff without
    their own; ``timezone`` is the business's reporting zone for dates. ``tickets`` gives
    a customer's helpdesk tickets. Book-wide figures (analytics, upcoming renewals) are
    cached ``cache_seconds``. ``secure_cookie`` forces the cookie's Secure flag (by
    default: when the request came over https).
    """
    from revcrm._facade import CRM

    if not isinstance(crm, CRM):
        raise ValidationError("crm", crm, "expected a revcrm.CRM")
    if not callable(authenticate):
        raise ValidationError("authenticate", authenticate, "expected a callable")
    if tickets is not None and not callable(tickets):
        raise ValidationError("tickets", tickets, "expected a callable or None")
    if secret is None:
        key = secrets.token_bytes(32)
    elif isinstance(secret, str | bytes) and len(secret) >= 16:
        key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    else:
        raise ValidationError("secret", "<hidden>", "bytes or str of at least 16 characters")
    for name, value, low, high in (
        ("page_size", page_size, 1, 500),
        ("max_body", max_body, 1024, 16 * 1024 * 1024),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValidationError(name, value, f"a whole number from {low} to {high}")
    if (
        isinstance(cache_seconds, bool)
        or not isinstance(cache_seconds, int | float)
        or not (0 <= cache_seconds <= 86400)
    ):
        raise ValidationError("cache_seconds", cache_seconds, "seconds from 0 to 86400")
    for seg in custom_segments:
        if not isinstance(seg, CustomSegment):
            raise ValidationError("custom_segments", seg, "expected CustomSegment values")
    web = Web(
        crm,
        authenticate=authenticate,
        secret=key,
        locale=check_locale(locale),
        tz=check_timezone(timezone),
        tickets=tickets,
        custom_segments=custom_segments,
        page_size=page_size,
        max_body=max_body,
        cache_seconds=float(cache_seconds),
        secure_cookie=secure_cookie,
    )
    read, edit, admin = Role.READ_ONLY, Role.STAFF, Role.ADMIN

    def get(path: str, handler: Handler) -> Route:
        return Route(path, web.guard(handler, post=False, role=read), methods=["GET", "HEAD"])

    def post(
        path: str, handler: Handler, role: Role = edit, clears: tuple[str, ...] | None = ()
    ) -> Route:
        endpoint = web.guard(handler, post=True, role=role, clears=clears)
        return Route(path, endpoint, methods=["POST"])

    # Notes and credits change no cached figure; tags change custom segments' counts,
    # leads the funnel; a merge or an erasure may change any of them.
    tagged, leads, everything = ("segments",), ("funnel",), None

    routes = [
        get("/", _pages.dashboard),
        get("/segments", _pages.segments),
        get("/customers", _pages.customers),
        # A search is posted (so the term never shows in a URL) and comes back sealed.
        post("/customers/search", _pages.search, read),
        get("/customers/{customer_id}", _pages.profile),
        post("/customers/{customer_id}/notes", _actions.add_note),
        post("/customers/{customer_id}/notes/{note_id}/edit", _actions.edit_note),
        post("/customers/{customer_id}/notes/{note_id}/pin", _actions.pin_note),
        post("/customers/{customer_id}/notes/{note_id}/unpin", _actions.unpin_note),
        post("/customers/{customer_id}/tags", _actions.add_tag, edit, tagged),
        post("/customers/{customer_id}/tags/remove", _actions.remove_tag, edit, tagged),
        post("/customers/{customer_id}/credits", _actions.adjust_credit),
        post("/customers/{customer_id}/merge", _actions.merge, admin, everything),
        post("/customers/{customer_id}/erase", _actions.erase, admin, everything),
        get("/leads", _pages.leads),
        post("/leads", _actions.add_lead, edit, leads),
        post("/leads/{lead_id}/move", _actions.move_lead, edit, leads),
        post("/leads/{lead_id}/lost", _actions.lose_lead, edit, leads),
        post("/leads/{lead_id}/convert", _actions.convert_lead, edit, leads),
        get("/analytics", _pages.analytics),
        get("/export/dashboard.json", _pages.export_dashboard),
        get("/customers/{customer_id}/export.json", _pages.export_profile),
        Route("/static/app.css", web.static_css, methods=["GET", "HEAD"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        # Unknown paths are refused like pages: 401 without staff, else 404 / 405.
        if await web._staff(request) is None:
            return web._secured(plain(401, "Sign-in required."))
        status = int(getattr(exc, "status_code", 404))
        return web._secured(plain(status, "No such page." if status == 404 else "Not allowed."))

    app = Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
    app.state.revcrm_web = web
    return app
