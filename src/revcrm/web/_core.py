"""The request machinery of the pages: the guard every request passes, the request
context handlers see, the cache of book-wide figures, and the responses.

Every request goes through :meth:`_Web.guard`: the host's ``authenticate`` (nobody: 401,
static files included), the signed session cookie, then for a POST the size bound, the
form parse, the CSRF token and the role; the page or action runs in a worker thread (the
facade is synchronous); revcrm errors become 400/404/409 pages with the message escaped;
every response carries the security headers.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, urlencode

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from revcrm.crm import TicketRef
from revcrm.errors import (
    ConflictError,
    DuplicateError,
    NotFoundError,
    RevcrmError,
    StorageError,
    TransitionNotAllowed,
    ValidationError,
)
from revcrm.segments import CustomSegment
from revcrm.web._auth import SESSION_COOKIE, Role, Sealer, SessionKeys, Staff
from revcrm.web._format import Formatter

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from revcrm._book import Book
    from revcrm._facade import CRM
    from revcrm.metrics import MrrAnalysis

__all__ = ["Authenticate", "Ctx", "Form", "Handler", "HttpError", "TicketSource", "Web", "plain"]

#: ``authenticate(request)``: the signed-in staff member, or None (then every page is 401).
Authenticate = Callable[[Request], "Staff | Awaitable[Staff | None] | None"]
#: ``tickets(customer_id)``: the host helpdesk's tickets of a customer, for the profile.
TicketSource = Callable[[str], Iterable[TicketRef]]

CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: Largest POST body (a note is at most 20,000 characters, four bytes each at worst).
DEFAULT_MAX_BODY: Final = 96 * 1024
MAX_FIELDS: Final = 40
_TEMPLATES: Final = resources.files("revcrm.web") / "templates"


class HttpError(Exception):
    """A refusal with its status and a message for the page (escaped when shown)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Form:
    """A parsed urlencoded form: the last value of each field, every value of a field."""

    def __init__(self, pairs: Sequence[tuple[str, str]]) -> None:
        self._pairs = pairs

    def get(self, name: str, default: str = "") -> str:
        found = [v for k, v in self._pairs if k == name]
        return found[-1] if found else default

    def text(self, name: str, *, limit: int, required: bool = True, label: str = "") -> str:
        value = self.get(name).strip()
        what = label or name
        if required and not value:
            raise HttpError(400, f"{what} is required.")
        if len(value) > limit:
            raise HttpError(400, f"{what} is too long: at most {limit:,} characters.")
        if "\x00" in value:
            raise HttpError(400, f"{what} contains a NUL character.")
        return value


class Ctx:
    """One request as a page or an action sees it."""

    def __init__(
        self, web: Web, request: Request, staff: Staff, sid: str, form: Form | None
    ) -> None:
        self.web = web
        self.request = request
        self.staff = staff
        self.sid = sid
        self.form = form or Form(())
        self.root = str(request.scope.get("root_path", "")).rstrip("/")
        self.fmt = Formatter(staff.locale or web.locale, web.tz)
        self.csrf = web.keys.csrf_token(sid, staff.id)

    @property
    def crm(self) -> CRM:
        return self.web.crm

    def url(self, path: str, query: Mapping[str, str | None] | None = None) -> str:
        """An app path under the mount point (``root_path``), with a query string."""
        qs = {k: v for k, v in (query or {}).items() if v not in (None, "")}
        return self.root + path + (f"?{urlencode(qs)}" if qs else "")

    def param(self, name: str, *, limit: int = 200) -> str | None:
        value = self.request.query_params.get(name)
        if value is None or value == "":
            return None
        if len(value) > limit:
            raise HttpError(400, f"Query parameter {name} is too long (at most {limit}).")
        return value

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        html = self.web.env.get_template(template).render(
            ctx=self,
            staff=self.staff,
            csrf=self.csrf,
            url=self.url,
            fmt=self.fmt,
            can_edit=self.staff.can(Role.STAFF),
            is_admin=self.staff.can(Role.ADMIN),
            **values,
        )
        return HTMLResponse(html, status_code=status)

    def redirect(self, path: str, query: Mapping[str, str | None] | None = None) -> Response:
        # 303: the browser follows with a GET (post / redirect / get).
        return RedirectResponse(self.url(path, query), status_code=303)


Handler = Callable[[Ctx], Response]


class _Cache:
    """Book-wide figures (segment counts, analytics, upcoming renewals, the funnel) kept
    for ``ttl`` seconds: computing them reads much or all of the book. The app's own
    writes clear it; a host's sync shows after at most ``ttl``.

    A value is built in a worker thread; a request waits for it at most ``wait`` seconds
    and otherwise gets None (the page then says the figures are being computed and
    refreshes itself), so a slow build on a large book never holds a page for long.
    """

    def __init__(self, ttl: float, wait: float = 3.0) -> None:
        self.ttl = ttl
        self.wait = wait
        self._lock = threading.Lock()
        self._values: dict[str, tuple[float, object]] = {}
        self._building: dict[str, threading.Event] = {}
        self._errors: dict[str, Exception] = {}
        self._generation = 0
        self._book_lock = threading.Lock()
        self._books: dict[str, tuple[float, tuple[Book, MrrAnalysis]]] = {}

    def get(
        self, key: str, build: Callable[[], object], *, wait: float | None = None
    ) -> object | None:
        with self._lock:
            hit = self._values.get(key)
            if hit is not None and time.monotonic() - hit[0] < self.ttl:
                return hit[1]
            done = self._building.get(key)
            if done is None:
                done = self._building[key] = threading.Event()
                generation = self._generation
                threading.Thread(
                    target=self._build, args=(key, build, done, generation), daemon=True
                ).start()
        done.wait(self.wait if wait is None else min(wait, self.wait))
        with self._lock:
            error = self._errors.pop(key, None)
            hit = self._values.get(key)
        if error is not None:
            raise error
        return None if hit is None else hit[1]

    def _build(
        self, key: str, build: Callable[[], object], done: threading.Event, generation: int
    ) -> None:
        error: Exception | None = None
        value: object = None
        try:
            value = build()
        except Exception as e:  # handed to the waiting request, which shows it
            error = e
        with self._lock:
            if error is not None:
                self._errors[key] = error
            elif generation == self._generation:
                # (A write cleared the cache meanwhile: this value may predate it.)
                self._values[key] = (time.monotonic(), value)
            self._building.pop(key, None)
        done.set()

    def clear(self, prefixes: Iterable[str] | None = None) -> None:
        """Forget the values whose keys start with one of ``prefixes`` (None: all)."""
        with self._lock:
            if prefixes is None:
                self._values.clear()
                self._books.clear()
            else:
                wanted = tuple(prefixes)
                for key in [k for k in self._values if k.startswith(wanted)]:
                    del self._values[key]
            self._generation += 1

    def book(self, crm: CRM) -> tuple[Book, MrrAnalysis]:
        """The stored book and its MRR analysis, read once for every book-wide figure
        (called from the build threads, which wait for each other here)."""
        from revcrm.metrics import analyse

        with self._book_lock:
            hit = self._books.get("book")
            if hit is not None and time.monotonic() - hit[0] < self.ttl:
                return hit[1]
            book = crm.store.book()
            value = (book, analyse(book, currency=crm.reporting_currency, policy=crm.policy))
            self._books["book"] = (time.monotonic(), value)
            return value


class Web:
    def __init__(
        self,
        crm: CRM,
        *,
        authenticate: Authenticate,
        secret: bytes,
        locale: str,
        tz: ZoneInfo,
        tickets: TicketSource | None,
        custom_segments: Sequence[CustomSegment],
        page_size: int,
        max_body: int,
        cache_seconds: float,
        secure_cookie: bool | None,
    ) -> None:
        self.crm = crm
        self.authenticate = authenticate
        self.keys = SessionKeys(secret)
        self.sealer = Sealer(secret)
        self.locale = locale
        self.tz = tz
        self.tickets = tickets
        self.custom_segments = tuple(custom_segments)
        self.page_size = page_size
        self.max_body = max_body
        self.cache = _Cache(cache_seconds)
        self.secure_cookie = secure_cookie
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
            autoescape=True,  # every value escaped, in every template
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.css = (resources.files("revcrm.web") / "static" / "app.css").read_bytes()

    async def _staff(self, request: Request) -> Staff | None:
        found = self.authenticate(request)
        if inspect.isawaitable(found):
            found = await found
        if found is None:
            return None
        if not isinstance(found, Staff):
            raise TypeError(
                f"authenticate() returned {type(found).__name__}; expected revcrm.web.Staff or None"
            )
        return found

    async def _form(self, request: Request) -> Form:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            raise HttpError(413, f"The form is too large (at most {self.max_body:,} bytes).")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise HttpError(400, "Expected a form (application/x-www-form-urlencoded).")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body:
                raise HttpError(413, f"The form is too large (at most {self.max_body:,} bytes).")
        try:
            pairs = parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=False,
                max_num_fields=MAX_FIELDS,
            )
        except UnicodeDecodeError:
            raise HttpError(400, "The form is not valid UTF-8.") from None
        except ValueError:
            raise HttpError(400, f"The form has too many fields (at most {MAX_FIELDS}).") from None
        return Form(pairs)

    def guard(
        self,
        handler: Handler,
        *,
        post: bool,
        role: Role,
        clears: tuple[str, ...] | None = (),
    ) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            cookie: str | None = None
            try:
                staff = await self._staff(request)
                if staff is None:
                    return self._secured(plain(401, "Sign-in required."))
                sid = self.keys.session_id(request.cookies.get(SESSION_COOKIE))
                if sid is None:
                    sid, cookie = self.keys.new_cookie()
                form = None
                if post:
                    form = await self._form(request)
                    # The token of the signed session, for this staff member: a form
                    # posted from another site has none, and a new session has none yet.
                    if cookie is not None or not self.keys.check_csrf(
                        sid, staff.id, form.get("csrf")
                    ):
                        raise HttpError(
                            403,
                            "The form's security token is missing or expired. "
                            "Reload the page and try again.",
                        )
                if not staff.can(role):
                    raise HttpError(403, f"Your role ({staff.role}) may not do this.")
                ctx = Ctx(self, request, staff, sid, form)
                response = await run_in_threadpool(self._run, handler, ctx, post, clears)
            except HttpError as e:
                response = plain(e.status, e.message)
            return self._secured(response, cookie, request)

        return endpoint

    def _run(
        self, handler: Handler, ctx: Ctx, post: bool, clears: tuple[str, ...] | None
    ) -> Response:
        try:
            response = handler(ctx)
        except HttpError as e:
            return _error_page(ctx, e.status, e.message)
        except NotFoundError as e:
            return _error_page(ctx, 404, str(e))
        except (ConflictError, DuplicateError, TransitionNotAllowed) as e:
            return _error_page(ctx, 409, str(e))
        except StorageError:
            # The database's own message may name tables and values: not for the page.
            return _error_page(ctx, 503, "The database is unavailable; try again shortly.")
        except (ValidationError, RevcrmError) as e:
            return _error_page(ctx, 400, str(e))
        if post and clears != ():
            # What the action may have changed among the cached book-wide figures.
            self.cache.clear(clears)
        return response

    def _secured(
        self, response: Response, cookie: str | None = None, request: Request | None = None
    ) -> Response:
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        if cookie is not None and request is not None:
            secure = (
                request.url.scheme == "https" if self.secure_cookie is None else self.secure_cookie
            )
            response.set_cookie(
                SESSION_COOKIE,
                cookie,
                httponly=True,
                samesite="strict",
                secure=secure,
                path=(str(request.scope.get("root_path", "")).rstrip("/") or "") + "/",
            )
        return response

    async def static_css(self, request: Request) -> Response:
        staff = await self._staff(request)
        if staff is None:
            return self._secured(plain(401, "Sign-in required."))
        response = Response(self.css, media_type="text/css")
        return self._secured(response)


def plain(status: int, message: str) -> Response:
    from html import escape

    body = (
        "<!doctype html><html lang=en><meta charset=utf-8><title>revcrm</title>"
        f"<p>{escape(message)}</p></html>"
    )
    return HTMLResponse(body, status_code=status)


def _error_page(ctx: Ctx, status: int, message: str) -> Response:
    return ctx.render("error.html", status=status, status_code=status, message=message)
