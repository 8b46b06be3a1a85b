"""End to end in a real headless Chromium (Debian's chromium and chromium-driver, driven
by selenium): the pages served by uvicorn on a loopback port over a small demo database.

One browser session walks the main flows; screenshots go to artifacts/screenshots/.
Outside CI a missing browser skips with one line; with CI=true it is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from revcrm._facade import CRM
from revcrm.web import Staff, create_app

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = os.environ.get("REVCRM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("REVCRM_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
LOGIN_COOKIE = "host_login"
LOGIN_TOKEN = "browser-test-admin"


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).is_file() or shutil.which(path)):
            return f"{path} not found (scripts/chromium.sh installs chromium and chromium-driver)"
    return None


@pytest.fixture(scope="module")
def driver() -> Iterator[Any]:
    reason = _missing()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Chromium required in CI: {reason}")
        pytest.skip(f"browser tests skipped: {reason}")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1100",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    browser.implicitly_wait(0)
    try:
        yield browser
    finally:
        browser.quit()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, CRM]]:
    import uvicorn

    from revcrm.web._serve import build_demo_database, open_crm

    path = tmp_path_factory.mktemp("browser") / "demo.sqlite"
    build_demo_database(path, customers=40)
    crm = open_crm(f"sqlite:///{path}")
    admin = Staff(id="browser-admin", name="Browser Admin", role="admin")

    def authenticate(request: Any) -> Staff | None:
        # The host's own login, as a test stands in for it: a cookie the host set.
        return admin if request.cookies.get(LOGIN_COOKIE) == LOGIN_TOKEN else None

    app = create_app(crm, authenticate=authenticate, page_size=10, cache_seconds=60)
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", crm
    finally:
        uv.should_exit = True
        thread.join(10)
        crm.store.close()


def test_main_flows_in_chromium(driver: Any, server: tuple[str, CRM]) -> None:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.expected_conditions import staleness_of
    from selenium.webdriver.support.ui import WebDriverWait

    base, crm = server
    SHOTS.mkdir(parents=True, exist_ok=True)

    def shot(name: str, at: str | None = None) -> None:
        if at is not None:
            driver.execute_script("arguments[0].scrollIntoView();", css(at))
        driver.save_screenshot(str(SHOTS / f"{name}.png"))

    def css(selector: str) -> Any:
        return driver.find_element(By.CSS_SELECTOR, selector)

    def go(element: Any) -> None:
        """Click a link or submit button and wait for the next page to load."""
        page = css("html")
        try:
            element.click()
        except WebDriverException as e:
            # Chromium may report the click after the page it clicked has gone.
            if "does not belong to the document" not in str(e):
                raise
        WebDriverWait(driver, 15).until(staleness_of(page))

    def ids() -> list[str]:
        rows = driver.find_elements(By.CSS_SELECTOR, "table.customers tbody tr[data-id]")
        return [r.get_attribute("data-id") for r in rows]

    # Nobody signed in: refused, static files included.
    driver.get(base + "/")
    assert "Sign-in required." in css("body").text
    shot("00-refused-without-staff")
    driver.get(base + "/static/app.css")
    assert "Sign-in required." in css("body").text

    # The host's login (its cookie), then the dashboard.
    driver.add_cookie({"name": LOGIN_COOKIE, "value": LOGIN_TOKEN, "path": "/"})
    driver.get(base + "/")
    assert css("h1").text == "Revenue dashboard"
    mrr = css("#card-mrr .figure").text
    assert mrr.startswith("$")
    assert css("#card-renewals").text.startswith("Renewals, next 30 days")
    assert driver.find_elements(By.CSS_SELECTOR, "section.chart svg[role=img]")
    assert css(".cards").value_of_css_property("display") == "flex"  # the stylesheet loaded
    shot("01-dashboard")

    # A segment card opens the filtered list.
    go(css("nav a[href='/segments']"))
    card = css("#segment-active")
    members = int(card.find_element(By.CSS_SELECTOR, ".figure").text.replace(",", ""))
    shot("02-segments")
    go(card)
    assert "segment=active" in driver.current_url
    expected = [r.id for r in crm.customers.list(segment="active", limit=10)]
    assert ids() == expected
    assert len(expected) == min(members, 10)
    shot("03-segment-active")

    # Search (posted; the term never shows in the address bar).
    name = crm.store.customers.get("cus_000005").name
    driver.get(base + "/customers")
    box = css("input[name=q]")
    box.send_keys(name.split()[0])
    go(css("form.filters button[type=submit]"))
    assert name.split()[0] not in driver.current_url
    found = ids()
    assert found == [r.id for r in crm.customers.list(search=name.split()[0], limit=10)]
    assert "cus_000005" in found or len(found) == 10
    shot("04-search")

    # Sort by MRR, twice for descending.
    driver.get(base + "/customers")
    go(css("a.sort[data-sort=mrr]"))
    go(css("a.sort[data-sort=mrr]"))
    assert css("th[aria-sort]").get_attribute("aria-sort") == "descending"
    assert ids() == [r.id for r in crm.customers.list(sort="mrr", direction="desc", limit=10)]
    shot("05-sorted-by-mrr")

    # Page through with the keyset cursor.
    first = ids()
    go(css("#next-page"))
    second = ids()
    assert second
    assert not set(first) & set(second)
    whole = [r.id for r in crm.customers.list(sort="mrr", direction="desc", limit=20)]
    assert first + second == whole
    shot("06-page-2")

    # Open a profile.
    target = next(
        r.id
        for r in crm.customers.list(sort="mrr", direction="desc", limit=40)
        if crm.crm.leads.lead_for_customer(r.id) is None
    )
    driver.get(base + "/customers?sort=mrr&dir=desc")
    link = next(
        a
        for a in driver.find_elements(By.CSS_SELECTOR, "a.customer")
        if a.get_attribute("href").endswith("/customers/" + target)
    )
    go(link)
    assert css("#customer-name").text == (crm.store.customers.get(target).name or target)
    shot("07-profile")

    # Add a note, then pin it.
    css("#note-body").send_keys("Called: wants a bigger plan")
    go(css("#add-note"))
    assert css(".notice").text == "Note added."
    note = next(
        li
        for li in driver.find_elements(By.CSS_SELECTOR, "li.note")
        if "Called: wants a bigger plan" in li.text
    )
    note_id = note.get_attribute("data-note")
    go(note.find_element(By.CSS_SELECTOR, "button.pin-toggle"))
    assert css(".notice").text == "Note pinned."
    pinned = css(f"li.note[data-note='{note_id}']")
    assert "Pinned" in pinned.text
    assert "pinned" in pinned.get_attribute("class")
    assert crm.crm.notes.get(note_id).pinned

    # Tag the customer.
    css("#tag-name").send_keys("Browser VIP")
    go(css("#add-tag"))
    assert css(".notice").text == "Tag added."
    assert "Browser VIP" in css("ul.tags").text

    # Adjust credit with a reason.
    currency = css("select[name=currency]").get_attribute("value")
    before = crm.credits.balance(target, currency)
    css("#credit-amount").send_keys("15")
    css("#credit-reason").send_keys("browser test goodwill")
    go(css("#adjust-credit"))
    assert css(".notice").text == "Credit adjusted."
    after = crm.credits.balance(target, currency)
    assert after.amount - before.amount == 15
    assert "15.00" in css("#credit-balance").text
    shot("08-profile-after-edits", "#notes")

    # Leads: add one, move it, convert it to the customer above.
    driver.get(base + "/leads")
    css("#add-lead summary").click()
    css("#add-lead input[name=email]").send_keys("browser.lead@example.org")
    css("#add-lead input[name=name]").send_keys("Bea Browser")
    go(css("#add-lead button[type=submit]"))
    assert css(".notice").text == "Lead added."
    lead = crm.crm.leads.open_lead_for("browser.lead@example.org")
    assert lead is not None
    card = css(f"#stage-new li[data-lead='{lead.id}']")
    go(card.find_element(By.CSS_SELECTOR, "button.move[data-to=contacted]"))
    assert css(".notice").text == "Lead moved."
    card = css(f"#stage-contacted li[data-lead='{lead.id}']")
    assert "Bea Browser" in card.text
    shot("09-leads")
    card.find_elements(By.TAG_NAME, "summary")[1].click()
    card.find_element(By.CSS_SELECTOR, "input[name=customer_id]").send_keys(target)
    go(card.find_element(By.CSS_SELECTOR, "button.convert"))
    assert css(".notice").text == "Lead converted."
    assert driver.current_url.split("?")[0].endswith("/customers/" + target)
    assert crm.leads.get(lead.id).customer_id == target
    shot("10-lead-converted")

    # Analytics render too.
    driver.get(base + "/analytics")
    assert css("h1").text == "Analytics"
    assert len(driver.find_elements(By.CSS_SELECTOR, ".charts svg")) >= 3
    shot("11-analytics")

    # Signed out again: refused.
    driver.delete_cookie(LOGIN_COOKIE)
    driver.get(base + "/customers/" + target)
    assert "Sign-in required." in css("body").text
