"""The pages through an ASGI test client: access, roles, CSRF, escaping, headers, the
list's keyset pages, sorts and filters, and every action."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount

from revcrm import Customer, Money
from revcrm._facade import CRM
from revcrm.errors import ValidationError
from revcrm.leads import Lead, LeadStage
from revcrm.web import Role, Staff, create_app, wsgi_app
from revcrm.web._auth import Sealer, SessionKeys
from tests.web.conftest import ADMIN, READER, STAFF, TestClient, Who, csrf_of

PAGES = ("/", "/segments", "/customers", "/customers/cus_000003", "/leads", "/analytics")
EXPORTS = ("/export/dashboard.json", "/customers/cus_000003/export.json")
SCRIPT = "<script>alert(1)</script>"
SQL = "'; DROP TABLE customers; --"
_ROW = re.compile(r'<tr data-id="([^"]+)">')


def _client(crm: CRM, who: Who, **options: object) -> TestClient:
    def authenticate(_request: Request) -> Staff | None:
        return who.staff

    # Each test builds its own app, so cached book-wide figures never outlive a test.
    options.setdefault("cache_seconds", 60)
    app = create_app(crm, authenticate=authenticate, **options)  # type: ignore[arg-type]
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def who() -> Who:
    return Who()


@pytest.fixture
def client(crm: CRM, who: Who) -> TestClient:
    return _client(crm, who)


def _post(client: TestClient, page: str, action: str, data: dict[str, str]) -> httpx.Response:
    token = csrf_of(client.get(page).text)
    response: httpx.Response = client.post(action, data={**data, "csrf": token})
    return response


def _ids(html: str) -> list[str]:
    return _ROW.findall(html)


# -- access ------------------------------------------------------------------------------------


def test_every_page_is_shown_to_staff_with_the_security_headers(client: TestClient) -> None:
    for path in (*PAGES, "/static/app.css"):
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        # Works without JavaScript; nothing is loaded from another origin.
        assert "<script" not in r.text
        assert not re.search(r'(src|href|action)="(https?:)?//', r.text)
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'self'" in csp
        assert "unsafe-inline" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    for path in EXPORTS:
        r = client.get(path)
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        assert "attachment" in r.headers["content-disposition"]
    assert client.get(EXPORTS[1]).json()["overview"]["customer_id"] == "cus_000003"


def test_nobody_signed_in_gets_401_everywhere(client: TestClient, who: Who) -> None:
    who.staff = None
    for path in (
        *PAGES,
        *EXPORTS,
        "/static/app.css",
        "/no-such-page",
        "/customers/cus_000003/notes",
    ):
        r = client.get(path)
        assert r.status_code == 401, path
        assert "content-security-policy" in r.headers
    r = client.post("/customers/cus_000003/notes", data={"body": "x"})
    assert r.status_code == 401


def test_read_only_staff_see_but_cannot_change(client: TestClient, who: Who, crm: CRM) -> None:
    who.staff = READER
    for path in PAGES:
        assert client.get(path).status_code == 200
    page = client.get("/customers/cus_000004").text
    assert 'id="add-note"' not in page  # no forms offered
    before = len(crm.notes.list("cus_000004"))
    # (A token from the one form a reader has: the search.)
    r = _post(client, "/customers", "/customers/cus_000004/notes", {"body": "hi"})
    assert r.status_code == 403
    assert len(crm.notes.list("cus_000004")) == before
    # A read-only user may still search (a POST that changes nothing).
    r = _post(client, "/customers", "/customers/search", {"q": "ada"})
    assert r.status_code == 303


def test_merge_and_erase_are_for_admins_only(client: TestClient, who: Who, crm: CRM) -> None:
    page = "/customers/cus_000010"
    data = {"secondary_id": "cus_000011", "confirm": "1"}
    r = _post(client, page, "/customers/cus_000010/merge", data)
    assert r.status_code == 403
    assert crm.store.customers.find("cus_000011") is not None
    who.staff = ADMIN
    assert "/customers/cus_000010/merge" in client.get(page).text
    r = _post(client, page, "/customers/cus_000010/merge", data)
    assert r.status_code == 303
    assert crm.store.customers.find("cus_000011") is None
    r = _post(client, page, "/customers/cus_000010/erase", {"mode": "anonymise", "confirm": "1"})
    assert r.status_code == 303
    assert crm.store.customers.get("cus_000010").email is None


# -- CSRF and the acting staff id ----------------------------------------------------------------


def test_a_post_without_a_valid_csrf_token_is_refused(client: TestClient, crm: CRM) -> None:
    path = "/customers/cus_000005/notes"
    before = len(crm.notes.list("cus_000005"))
    client.get("/customers/cus_000005")  # the session cookie
    assert client.post(path, data={"body": "no token"}).status_code == 403
    assert client.post(path, data={"body": "bad", "csrf": "x" * 43}).status_code == 403
    # A token of another session (another browser, or another staff member) fails too.
    other = _client(crm, Who())
    token = csrf_of(other.get("/customers/cus_000005").text)
    assert client.post(path, data={"body": "stolen", "csrf": token}).status_code == 403
    # A fresh client without any session cookie cannot post with a token either.
    fresh = _client(crm, Who())
    assert fresh.post(path, data={"body": "new", "csrf": token}).status_code == 403
    # A forged cookie (not signed with the app's secret) is not a session.
    client.cookies.set("revcrm_session", "forged.AAAA")
    assert client.post(path, data={"body": "forged", "csrf": token}).status_code == 403
    assert len(crm.notes.list("cus_000005")) == before


def test_the_author_comes_from_authenticate_never_from_the_form(
    client: TestClient, crm: CRM
) -> None:
    data = {"body": "Called about renewal", "author_id": "mallory", "staff_id": "mallory"}
    r = _post(client, "/customers/cus_000006", "/customers/cus_000006/notes", data)
    assert r.status_code == 303
    note = next(n for n in crm.notes.list("cus_000006") if n.body == "Called about renewal")
    assert note.author_id == STAFF.id


def test_session_keys_and_sealed_values_need_the_secret() -> None:
    keys, other = SessionKeys(b"k" * 32), SessionKeys(b"j" * 32)
    sid, cookie = keys.new_cookie()
    assert keys.session_id(cookie) == sid
    assert other.session_id(cookie) is None
    assert keys.session_id(cookie + "x") is None
    assert keys.session_id(None) is None
    token = keys.csrf_token(sid, "s1")
    assert keys.check_csrf(sid, "s1", token)
    assert not keys.check_csrf(sid, "s2", token)
    assert not other.check_csrf(sid, "s1", token)
    sealer = Sealer(b"k" * 32)
    sealed = sealer.seal("search", "ada@example.com")
    assert "ada" not in sealed
    assert sealer.unseal("search", sealed) == "ada@example.com"
    assert sealer.unseal("cursor", sealed) is None  # bound to its purpose
    assert Sealer(b"j" * 32).unseal("search", sealed) is None
    assert sealer.unseal("search", sealed[:-2] + "AA") is None
    assert sealer.unseal("search", "!!") is None


# -- escaping ------------------------------------------------------------------------------------


def test_hostile_text_is_shown_escaped_everywhere(client: TestClient, crm: CRM) -> None:
    at = datetime(2026, 1, 2, tzinfo=UTC)
    crm.store.customers.upsert(
        Customer(
            id="evil1",
            name=SCRIPT,
            email="evil@example.com",
            registered_at=at,
            company=SQL,
            referral_source=SQL,
        )
    )
    crm.store.customers.upsert(Customer(id="evil2", name=SQL, registered_at=at))
    page = "/customers/evil1"
    for action, data in (
        ("/customers/evil1/notes", {"body": f"{SCRIPT} {SQL}"}),
        ("/customers/evil1/tags", {"tag": SCRIPT[:40]}),
        ("/customers/evil1/tags", {"tag": SQL}),
        ("/customers/evil1/credits", {"amount": "5", "currency": "USD", "reason": SCRIPT}),
    ):
        assert _post(client, page, action, data).status_code == 303
    shown = [client.get(page).text, client.get("/customers", params={"sort": "created"}).text]
    r = _post(client, "/customers", "/customers/search", {"q": SCRIPT})
    location = r.headers["location"]
    shown.append(client.get(location).text)
    r = _post(client, "/customers", "/customers/search", {"q": SQL})
    results = client.get(r.headers["location"]).text
    assert _ids(results) == ["evil2"]  # the search is a value, not SQL
    shown.append(results)
    shown.append(client.get("/analytics").text)
    for html in shown:
        assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown[0]
    assert "&#39;; DROP TABLE customers; --" in shown[0]
    assert crm.store.customers.count() > 2  # the table is still there


# -- the customer list ---------------------------------------------------------------------------


def test_keyset_pages_walk_every_customer_once_without_personal_data_in_urls(
    crm: CRM, who: Who
) -> None:
    client = _client(crm, who, page_size=7)
    seen: list[str] = []
    url: str | None = "/customers?sort=email"
    pages = 0
    while url is not None:
        html = client.get(url).text
        seen += _ids(html)
        pages += 1
        found = re.search(r'id="next-page" rel="next" href="([^"]+)"', html)
        url = None if found is None else found.group(1).replace("&amp;", "&")
        if url is not None:
            assert "@" not in url
            assert "example" not in url
    every = crm.customers.list(sort="email", limit=1000)
    assert seen == [r.id for r in every]
    assert pages == -(-len(seen) // 7)


def test_sort_by_any_column_matches_the_facade(client: TestClient, crm: CRM) -> None:
    for sort, direction in (
        ("mrr", "desc"),
        ("mrr", "asc"),
        ("ltv", "desc"),
        ("created", "desc"),
        ("last_payment", "asc"),
    ):
        html = client.get("/customers", params={"sort": sort, "dir": direction}).text
        expected = crm.customers.list(sort=sort, direction=direction, limit=50)
        assert _ids(html) == [r.id for r in expected], (sort, direction)
    html = client.get("/customers", params={"sort": "mrr", "dir": "asc"}).text
    assert 'aria-sort="ascending"' in html
    assert client.get("/customers", params={"sort": "shoe_size"}).status_code == 400


def test_filters_match_the_facade(client: TestClient, crm: CRM) -> None:
    crm.tags.ensure("VIP")
    crm.tags.assign("cus_000001", "VIP", staff_id="t")
    for params, kwargs in (
        ({"segment": "at_risk"}, {"segment": "at_risk"}),
        ({"segment": "new"}, {"segment": "new"}),
        ({"status": "cancelled"}, {"status": "cancelled"}),
        ({"product": "vps"}, {"product_id": "vps"}),
        ({"source": "search"}, {"referral_source": "search"}),
        ({"tag": "VIP"}, {"tag": "VIP"}),
    ):
        html = client.get("/customers", params=params).text
        expected = [r.id for r in crm.customers.list(limit=50, **kwargs)]  # type: ignore[arg-type]
        assert _ids(html) == expected, params
        assert expected or "No customers match." in html
    assert client.get("/customers", params={"segment": "nope"}).status_code == 400


def test_search_is_posted_and_comes_back_sealed(client: TestClient, crm: CRM) -> None:
    name = crm.store.customers.get("cus_000007").name
    r = _post(client, "/customers", "/customers/search", {"q": name, "segment": "", "sort": "mrr"})
    location = r.headers["location"]
    assert name.split()[0] not in location
    query = parse_qs(urlsplit(location).query)
    assert query["sort"] == ["mrr"]
    assert "s" in query
    html = client.get(location).text
    assert _ids(html) == [r.id for r in crm.customers.list(search=name, sort="mrr", limit=50)]
    assert f'value="{name}"' in html  # the form shows the term again
    tampered = location.replace(query["s"][0], query["s"][0][:-3] + "xyz")
    assert client.get(tampered).status_code == 400


def test_segment_cards_open_the_filtered_list(client: TestClient, crm: CRM) -> None:
    html = client.get("/segments").text
    counts = crm.segments.counts()
    for segment, members in counts.members.items():
        assert f'href="/customers?segment={segment.value}"' in html
        assert f'id="segment-{segment.value}"' in html
        assert str(members) in html


# -- actions -------------------------------------------------------------------------------------


def test_add_edit_and_pin_a_note(client: TestClient, crm: CRM) -> None:
    page = "/customers/cus_000008"
    r = _post(client, page, "/customers/cus_000008/notes", {"body": "Wants a VPS"})
    assert r.headers["location"] == "/customers/cus_000008?done=note"
    note = next(n for n in crm.notes.list("cus_000008") if n.body == "Wants a VPS")
    assert not note.pinned
    _post(client, page, f"/customers/cus_000008/notes/{note.id}/pin", {})
    assert crm.crm.notes.get(note.id).pinned
    html = client.get(page + "?done=pinned").text
    assert "Note pinned." in html
    assert html.index("Wants a VPS") < html.index('id="tags-credits"')
    _post(client, page, f"/customers/cus_000008/notes/{note.id}/edit", {"body": "Wants 2 VPS"})
    assert crm.crm.notes.get(note.id).body == "Wants 2 VPS"
    _post(client, page, f"/customers/cus_000008/notes/{note.id}/unpin", {})
    assert not crm.crm.notes.get(note.id).pinned
    # A note id of another customer under this customer's URL is refused.
    r = _post(client, page, f"/customers/cus_000009/notes/{note.id}/pin", {})
    assert r.status_code == 404


def test_add_and_remove_a_tag(client: TestClient, crm: CRM) -> None:
    page = "/customers/cus_000012"
    _post(client, page, "/customers/cus_000012/tags", {"tag": "Reseller"})
    assert "Reseller" in crm.customers.profile("cus_000012").tags
    _post(client, page, "/customers/cus_000012/tags/remove", {"tag": "reseller"})
    assert "Reseller" not in crm.customers.profile("cus_000012").tags
    r = _post(client, page, "/customers/cus_000012/tags/remove", {"tag": "Reseller"})
    assert r.status_code == 404


def test_adjust_credit_with_a_reason(client: TestClient, crm: CRM) -> None:
    page = "/customers/cus_000013"
    before = crm.credits.balance("cus_000013", "USD")
    data = {"amount": "12.50", "currency": "USD", "reason": "outage"}
    assert _post(client, page, "/customers/cus_000013/credits", data).status_code == 303
    assert crm.credits.balance("cus_000013", "USD") == before + Money("12.50", "USD")
    entry = [e for e in crm.store.credits.for_customer("cus_000013") if e.reason == "outage"]
    assert entry[0].staff_id == STAFF.id
    history = client.get(page).text.split('id="credit-history"')[1].split("</table>")[0]
    assert "outage" in history
    assert STAFF.id in history
    for bad in ({**data, "reason": ""}, {**data, "amount": "lots"}, {**data, "amount": "0"}):
        r = _post(client, page, "/customers/cus_000013/credits", bad)
        assert r.status_code == 400
    # Below zero is the facade's ValidationError, shown as a 400 page naming the amount.
    r = _post(client, page, "/customers/cus_000013/credits", {**data, "amount": "-100000"})
    assert r.status_code == 400
    assert "negative balances" in r.text


def test_leads_add_move_lose_and_convert(client: TestClient, crm: CRM) -> None:
    r = _post(
        client,
        "/leads",
        "/leads",
        {
            "email": "new.lead@example.org",
            "name": "Nia",
            "source": "campaign:spring",
            "expected_value": "25",
        },
    )
    assert r.status_code == 303
    lead = crm.crm.leads.open_lead_for("new.lead@example.org")
    assert lead is not None
    assert lead.owner_id == STAFF.id
    assert lead.expected_value == Money(Decimal(25), "USD")
    _post(client, "/leads", f"/leads/{lead.id}/move", {"to": "contacted"})
    assert crm.leads.get(lead.id).stage is LeadStage.CONTACTED
    r = _post(client, "/leads", f"/leads/{lead.id}/move", {"to": "converted"})
    assert r.status_code == 400
    r = _post(client, "/leads", f"/leads/{lead.id}/convert", {"customer_id": "cus_000014"})
    assert r.headers["location"].startswith("/customers/cus_000014")
    converted = crm.leads.get(lead.id)
    assert converted.stage is LeadStage.CONVERTED
    assert converted.customer_id == "cus_000014"
    r = _post(client, "/leads", f"/leads/{lead.id}/convert", {"customer_id": "cus_000014"})
    assert r.status_code == 409
    other = Lead(id="lead-web-lost", email="gone@example.org", created_at=crm.now())
    crm.leads.add(other)
    assert _post(client, "/leads", "/leads/lead-web-lost/lost", {"reason": ""}).status_code == 400
    _post(client, "/leads", "/leads/lead-web-lost/lost", {"reason": "too expensive"})
    assert crm.leads.get("lead-web-lost").stage is LeadStage.LOST
    html = client.get("/leads").text
    assert 'id="stage-new"' in html
    assert 'id="funnel-converted"' in html


# -- bounds and errors ---------------------------------------------------------------------------


def test_input_sizes_are_bounded(crm: CRM, who: Who) -> None:
    client = _client(crm, who, max_body=64 * 1024)
    page = "/customers/cus_000015"
    token = csrf_of(client.get(page).text)
    r = client.post("/customers/cus_000015/notes", data={"body": "x" * 20_001, "csrf": token})
    assert r.status_code == 400
    assert "at most 20,000 characters" in r.text
    r = client.post("/customers/cus_000015/notes", data={"body": "x" * 70_000, "csrf": token})
    assert r.status_code == 413
    assert "too large" in r.text
    many = {f"f{i}": "1" for i in range(60)}
    r = client.post("/customers/cus_000015/notes", data={**many, "csrf": token})
    assert r.status_code == 400
    assert "too many fields" in r.text
    r = client.post(
        "/customers/cus_000015/notes", content=b"{}", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert client.get("/customers/" + "x" * 300).status_code == 400
    assert client.get("/customers/nobody").status_code == 404
    assert client.get("/customers", params={"tag": "t" * 300}).status_code == 400


def test_create_app_checks_its_arguments(crm: CRM) -> None:
    def auth(_r: Request) -> None:
        return None

    for bad in (
        {"crm": object()},
        {"authenticate": 3},
        {"secret": "short"},
        {"locale": "xx_NOPE"},
        {"timezone": "Mars/Base"},
        {"page_size": 0},
        {"cache_seconds": -1},
        {"tickets": 1},
    ):
        args: dict[str, object] = {"crm": crm, "authenticate": auth, **bad}
        with pytest.raises(ValidationError):
            create_app(**args)  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Staff(id="", name="x")
    with pytest.raises(ValidationError):
        Staff(id="a", name="b", role="owner")
    assert Staff(id="a", name="b", role="admin").can(Role.STAFF)
    assert not Staff(id="a", name="b", role="read-only").can(Role.STAFF)


def test_an_authenticate_that_returns_something_else_is_a_clear_error(crm: CRM) -> None:
    app = create_app(crm, authenticate=lambda _r: "sam")  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match=r"expected revcrm\.web\.Staff"):
        TestClient(app).get("/")


def test_async_authenticate_locale_timezone_and_tickets(crm: CRM) -> None:
    from revcrm.crm import TicketRef

    async def auth(_request: Request) -> Staff:
        return Staff(id="s-de", name="Dora", role="staff", locale="de_DE")

    def tickets(customer_id: str) -> list[TicketRef]:
        return [
            TicketRef(
                id="t1",
                subject=f"Ticket {SCRIPT}",
                status="open",
                updated_at=datetime(2026, 11, 1, tzinfo=UTC),
                url="https://help.example.com/t/1",
            )
        ]

    client = TestClient(create_app(crm, authenticate=auth, timezone="Asia/Tokyo", tickets=tickets))
    html = client.get("/customers/cus_000003").text
    assert "Ticket &lt;script&gt;" in html
    assert 'href="https://help.example.com/t/1"' in html
    assert "20.11.2026" in html  # de_DE dates, in the business's zone (Tokyo)
    dash = client.get("/").text
    assert "€" not in dash
    assert "$" in dash
    assert "," in dash


# -- mounting ------------------------------------------------------------------------------------


def test_mounts_under_a_prefix(crm: CRM, who: Who) -> None:
    inner = create_app(crm, authenticate=lambda _r: who.staff, cache_seconds=0)
    host = Starlette(routes=[Mount("/admin/crm", app=inner)])
    client = TestClient(host, follow_redirects=False)
    r = client.get("/admin/crm/customers")
    assert r.status_code == 200
    assert 'href="/admin/crm/customers/' in r.text
    assert 'href="/admin/crm/static/app.css"' in r.text
    assert "Path=/admin/crm/" in r.headers["set-cookie"]
    token = csrf_of(client.get("/admin/crm/customers/cus_000016").text)
    r = client.post(
        "/admin/crm/customers/cus_000016/notes", data={"body": "mounted", "csrf": token}
    )
    assert r.status_code == 303
    assert r.headers["location"] == "/admin/crm/customers/cus_000016?done=note"
    assert client.get("/admin/crm/static/app.css").status_code == 200


def test_the_wsgi_bridge_serves_the_pages_under_script_name(crm: CRM, who: Who) -> None:
    import io

    app = wsgi_app(create_app(crm, authenticate=lambda _r: who.staff, cache_seconds=0))
    seen: dict[str, object] = {}

    def status() -> object:
        return seen["status"]

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    def call(method: str, path: str, body: bytes = b"", cookie: str = "") -> str:
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "/crm",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "test",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
            "HTTP_COOKIE": cookie,
        }
        return b"".join(app(environ, start_response)).decode()

    html = call("GET", "/customers/cus_000017")
    assert status() == "200 OK"
    assert 'href="/crm/customers' in html
    cookie = str(seen["headers"]["set-cookie"]).split(";")[0]  # type: ignore[index]
    body = f"body=via+wsgi&csrf={csrf_of(html)}".encode()
    call("POST", "/customers/cus_000017/notes", body, cookie)
    assert status() == "303 See Other"
    assert any(n.body == "via wsgi" for n in crm.notes.list("cus_000017"))
    who.staff = None
    call("GET", "/")
    assert status() == "401 Unauthorized"


def test_serve_parser_and_demo_login(monkeypatch: pytest.MonkeyPatch, demo_db: object) -> None:
    import argparse

    import uvicorn

    from revcrm.web import _serve

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    parser = argparse.ArgumentParser()
    _serve.add_serve_parser(parser.add_subparsers())
    args = parser.parse_args(["serve", "--db", f"sqlite:///{demo_db}", "--port", "8123"])
    assert args.func(args) == 0
    assert calls[0]["port"] == 8123
    assert calls[0]["host"] == "127.0.0.1"
    page = TestClient(calls[0]["app"]).get("/")  # type: ignore[arg-type]
    assert page.status_code == 200
    assert "Demo admin" in page.text


def test_a_slow_book_wide_page_says_it_is_being_computed(crm: CRM, who: Who) -> None:
    import time

    client = _client(crm, who, cache_seconds=60)
    web = client.app.state.revcrm_web  # type: ignore[attr-defined]
    web.cache.wait = 0.0
    r = client.get("/analytics")
    assert r.status_code == 200
    assert 'http-equiv="refresh"' in r.text  # reloads itself, no script
    assert "being computed" in r.text
    web.cache.wait = 30.0
    deadline = time.monotonic() + 30
    while "being computed" in (page := client.get("/analytics").text):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert "Net cash by product" in page
    client.get("/leads")
    client.get("/customers/cus_000018")
    cached = set(web.cache._values)
    assert {"analytics:en_US", "funnel", "ltv_baseline"} <= cached
    # A note changes no cached figure; a lead changes the funnel; a merge, anything.
    _post(client, "/customers/cus_000018", "/customers/cus_000018/notes", {"body": "x"})
    assert set(web.cache._values) == cached
    _post(client, "/leads", "/leads", {"email": "cache.test@example.org"})
    assert set(web.cache._values) == cached - {"funnel"}
    who.staff = ADMIN
    data = {"secondary_id": "cus_000019", "confirm": "1"}
    _post(client, "/customers/cus_000018", "/customers/cus_000018/merge", data)
    assert web.cache._values == {}


def test_the_profile_page_shows_the_facades_profile(client: TestClient, crm: CRM) -> None:
    # The page reads the book-wide LTV baseline once (cached); the figures must be the
    # facade's own, segments included.
    from revcrm.export import to_jsonable

    for customer_id in ("cus_000002", "cus_000020", "cus_000033"):
        shown = client.get(f"/customers/{customer_id}/export.json").json()
        expected = to_jsonable(crm.customers.profile(customer_id), locale="en_US")
        assert shown == expected


def test_custom_segments_have_cards_and_filter_the_list(crm: CRM, who: Who) -> None:
    from revcrm.segments import CustomSegment, referral_source

    searchers = CustomSegment(
        name="Found us by search", predicate=referral_source("search"), description="SEO"
    )
    client = _client(crm, who, custom_segments=[searchers])
    html = client.get("/segments").text
    assert "Found us by search" in html
    assert "SEO" in html
    r = client.get("/customers", params={"segment": "custom:Found us by search"})
    expected = [row.id for row in crm.customers.list(segment=searchers, limit=50)]
    assert _ids(r.text) == expected
    assert expected
    assert client.get("/customers", params={"segment": "custom:Nope"}).status_code == 400


def test_dashboard_cards_are_the_metrics_figures(crm: CRM, who: Who) -> None:
    import time

    from revcrm.metrics import dashboard

    client = _client(crm, who, cache_seconds=60)
    deadline = time.monotonic() + 30
    while "MRR renewing" not in (html := client.get("/").text):  # built in the background
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pure = dashboard(crm.store.book(), as_of=crm.now(), currency="USD", policy=crm.policy)
    store = crm.metrics.dashboard()
    card = html.split('id="card-renewals"')[1].split("</div>")[0]
    assert f'<p class="figure">{pure.renewals_count}</p>' in card
    churn = html.split('id="card-churn"')[1].split("</div>")[0]
    assert f"{pure.churn.churned} of {pure.churn.denominator} customers" in churn
    mrr = html.split('id="card-mrr"')[1].split("</div>")[0]
    assert f"${store.mrr.amount:,.2f}" in mrr


def test_ids_are_quoted_in_links(client: TestClient, crm: CRM) -> None:
    at = datetime(2026, 1, 2, tzinfo=UTC)
    crm.store.customers.upsert(Customer(id="odd id?#1", name="Odd Id", registered_at=at))
    r = _post(client, "/customers", "/customers/search", {"q": "Odd Id"})
    html = client.get(r.headers["location"]).text
    assert 'href="/customers/odd%20id%3F%231"' in html
    page = client.get("/customers/odd%20id%3F%231")
    assert page.status_code == 200
    assert "Odd Id" in page.text
    r = _post(
        client, "/customers/odd%20id%3F%231", "/customers/odd%20id%3F%231/notes", {"body": "q"}
    )
    assert r.headers["location"] == "/customers/odd%20id%3F%231?done=note"


def test_a_storage_failure_is_a_503_without_the_drivers_message(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from revcrm.errors import TransientError
    from revcrm.web import _pages

    def fail(*_a: object) -> object:
        raise TransientError("database is locked: SELECT secret FROM customers")

    monkeypatch.setattr(_pages, "_profile_of", fail)
    r = client.get("/customers/cus_000003")
    assert r.status_code == 503
    assert "secret" not in r.text
    assert "unavailable" in r.text


def test_the_list_shows_the_facades_segments_and_a_merge_renews_the_baseline(
    crm: CRM, who: Who
) -> None:
    # The list's rows compare with the cached book-wide LTV baseline; their segments must
    # be the facade's own, and a write that changes the baseline (a merge of two paying
    # customers: one payer fewer) must not leave the old one in use.
    client = _client(crm, who, cache_seconds=3600)
    web = client.app.state.revcrm_web  # type: ignore[attr-defined]
    html = client.get("/customers?sort=mrr&dir=desc").text
    expected = crm.customers.list(sort="mrr", direction="desc", limit=web.page_size)
    assert _ids(html) == [r.id for r in expected.items]
    shown = re.findall(r'<tr data-id="[^"]+">.*?</tr>', html, re.S)
    for row, r in zip(shown, expected.items, strict=True):
        label = r.primary_segment.value.replace("_", " ") if r.primary_segment else "–"
        assert f"<td>{label}</td>" in row, r.id
    before = web.cache._values["ltv_baseline"][1]
    assert before == crm.segments.ltv_baseline()
    payers = [
        r.id
        for r in crm.customers.list(sort="total_paid", direction="desc", limit=60)
        if r.row.total_paid.amount > 0 and int(r.id.removeprefix("cus_")) > 40
    ]
    primary, secondary = payers[:2]
    who.staff = ADMIN
    data = {"secondary_id": secondary, "confirm": "1"}
    _post(client, f"/customers/{primary}", f"/customers/{primary}/merge", data)
    assert "ltv_baseline" not in web.cache._values
    client.get("/customers")
    after = web.cache._values["ltv_baseline"][1]
    assert after == crm.segments.ltv_baseline()
    assert after.paying_customers == before.paying_customers - 1
