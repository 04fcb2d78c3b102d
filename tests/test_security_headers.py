"""Security headers on every answer, trusted Host names, /health's details for operators only.

The browser test shows the Content-Security-Policy costs nothing: crm's pages, htmx's swaps and
the live stream work under it without a single violation.
"""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect
from starlette.requests import Request
from starlette.routing import Route
from starlette.testclient import TestClient

from crm.web.headers import CONTENT_SECURITY_POLICY
from crm.web.limits import MAX_BODY_BYTES
from harness.browser import add_inline, new_context, open_contact, sign_up
from harness.processes import App
from tests.web_support import LOCAL, app_client
from tests.web_support import sign_up as sign_up_over_http

TOKEN = "t" * 16 + "0123456789abcdef0123"  # at least 32 characters
EVERYWHERE = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}
DETAILS = {"database", "head_position", "projector", "parked_count", "morning_email"}


def assert_secured(response: httpx.Response, cached: bool = False) -> None:
    for name, value in EVERYWHERE.items():
        assert response.headers.get(name) == value, (response.request.url, name)
    if not cached:
        assert response.headers.get("cache-control") == "no-store", response.request.url


def test_the_policy_allows_only_crms_own_scripts_and_styles() -> None:
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["script-src"] == directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == directives["object-src"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


def test_every_kind_of_answer_carries_the_headers(db_url: str, tmp_path: Path) -> None:
    with app_client(db_url, tmp_path) as client:
        assert_secured(client.get("/signup"))  # a page
        assert_secured(client.get("/"))  # a redirect
        assert_secured(client.get("/contacts"))  # to the log-in
        assert_secured(client.get("/nowhere"))  # an error page
        assert_secured(client.get("/health"))
        too_large = client.post("/login", headers={"content-length": str(MAX_BODY_BYTES + 1)})
        assert too_large.status_code == 413
        assert_secured(too_large)
        static = client.get("/static/crm.css")
        assert static.status_code == 200 and "no-store" not in static.headers.get(
            "cache-control", ""
        )
        assert_secured(static, cached=True)  # a style sheet names no one: it may be cached
        sign_up_over_http(client, "alice@example.com")
        fragment = client.get("/contacts?section=list", headers={"HX-Request": "true"})
        assert fragment.status_code == 200 and "<html" not in fragment.text
        assert_secured(fragment)


def test_a_crash_is_answered_with_the_headers_too(db_url: str, tmp_path: Path) -> None:
    async def crash(request: Request) -> None:
        raise RuntimeError("a bug")

    with app_client(db_url, tmp_path) as client:
        client.app.router.routes.append(Route("/crash", crash))  # type: ignore[attr-defined]
        crashing = TestClient(client.app, raise_server_exceptions=False, client=LOCAL)
        crashing.portal = client.portal
        response = crashing.get("/crash", headers={"host": "127.0.0.1"})
        assert response.status_code == 500
        assert "a bug" not in response.text
        assert_secured(response)


def test_only_the_allowed_host_names_are_answered(db_url: str, tmp_path: Path) -> None:
    environ = {"CRM_ALLOWED_HOSTS": "crm.example.com"}
    with app_client(db_url, tmp_path, environ, base_url="http://crm.example.com") as client:
        assert client.get("/signup").status_code == 200
        refused = client.get("/signup", headers={"host": "127.0.0.1"})
        assert refused.status_code == 400
        assert_secured(refused)


def test_a_real_server_refuses_other_hosts_and_secures_its_stream(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    with httpx.Client(base_url=server, timeout=10) as client:
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
            refused = client.get("/signup", headers={"host": host})
            assert refused.status_code == 400, host
            assert_secured(refused)
        # Starlette keeps an IPv6 literal's brackets ("[::1]"), the form the setting is kept in
        for host in (f"localhost:{port}", f"[::1]:{port}", "[::1]", f"127.0.0.1:{port}"):
            assert client.get("/signup", headers={"host": host}).status_code == 200, host
        sign_up_over_http(client, "alice@example.com")
        with client.stream("GET", "/stream") as stream:
            assert stream.status_code == 200
            assert_secured(stream)


@pytest.fixture
def app_with_token(db_url: str, tmp_path: Path) -> Iterator[str]:
    app = App(
        {"DATABASE_URL": db_url, "CRM_DATA_DIR": str(tmp_path), "CRM_OPERATOR_TOKEN": TOKEN}
    ).start()
    app.health()
    yield f"http://127.0.0.1:{app.port}"
    app.stop()


def test_health_details_are_for_an_operator_only(app_with_token: str) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    with httpx.Client(base_url=app_with_token, timeout=10) as client:
        # through a proxy on this machine: from 127.0.0.1, but not local
        for proxied in (forwarded, {"Forwarded": "for=203.0.113.9"}, {"X-Real-IP": "1.2.3.4"}):
            anonymous = client.get("/health", headers=proxied)
            assert anonymous.status_code == 200
            assert anonymous.json() == {"status": "ok"}
            assert_secured(anonymous)
        # a forged "I am local" is still a forwarded request
        assert client.get("/health", headers={"X-Forwarded-For": "127.0.0.1"}).json() == {
            "status": "ok"
        }
        for wrong in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer", f"Basic {TOKEN}"):
            guessed = client.get("/health", headers={**forwarded, "Authorization": wrong})
            assert guessed.json() == {"status": "ok"}, wrong
        operator = client.get("/health", headers={**forwarded, "Authorization": f"Bearer {TOKEN}"})
        assert operator.json().keys() >= DETAILS
        local = client.get("/health")  # on the machine itself, as harness/processes.py asks
        assert local.json().keys() >= DETAILS


def test_without_a_token_setting_no_token_is_accepted(db_url: str, tmp_path: Path) -> None:
    with app_client(db_url, tmp_path) as local:
        remote = TestClient(local.app, base_url="http://127.0.0.1", client=("203.0.113.9", 1))
        remote.portal = local.portal
        assert remote.get("/health").json() == {"status": "ok"}
        assert remote.get("/health", headers={"Authorization": "Bearer"}).json() == {"status": "ok"}
        assert local.get("/health").json().keys() >= DETAILS


# Every page of a context reports a refused script, style or connection in its console, which
# the test collects across navigations.
REPORT_VIOLATIONS = """
document.addEventListener('securitypolicyviolation', e => console.error(
  'securitypolicyviolation: ' + e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile
  + ':' + e.lineNumber));
"""


def violations_of(page: Page) -> list[str]:
    found: list[str] = []

    def listen(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "securitypolicyviolation" in message.text:
            found.append(message.text)

    page.on("console", listen)
    return found


def test_the_pages_and_htmx_work_under_the_policy_without_a_violation(
    browser: Browser, base_url: str
) -> None:
    context = new_context(browser, base_url)
    context.add_init_script(REPORT_VIOLATIONS)
    page = context.new_page()
    violations = violations_of(page)
    signup = page.goto("/signup")
    assert signup is not None and signup.headers["content-security-policy"]
    # the listener hears what the policy refuses: an inline <style>, as htmx would inject
    page.evaluate("document.head.insertAdjacentHTML('beforeend', '<style>p {}</style>')")
    page.wait_for_timeout(100)
    assert any("style-src" in violation for violation in violations), violations
    violations.clear()

    sign_up(page, "alice@example.com")
    page.wait_for_function("document.body.getAttribute('hx-ext') === 'sse'")
    page.evaluate("window.__no_reload = true")
    add_inline(page, "Grace Hopper", "COBOL")  # an htmx post, its pending notice, then news
    expect(page.locator("#added .notice.done")).to_contain_text("Added Grace Hopper")
    expect(page.locator("#contact-list")).to_contain_text("Grace Hopper")
    assert page.evaluate("window.__no_reload === true"), "the page was reloaded, not swapped"

    open_contact(page, "Grace Hopper")
    page.evaluate("window.__no_reload = true")
    page.get_by_text("Edit contact").click()
    edit = page.locator("#edit-contact")
    edit.get_by_label("Name").fill("Grace B. Hopper")
    edit.get_by_role("button", name="Save changes").click()
    expect(page.locator("#details h1")).to_contain_text("Grace B. Hopper")

    page.get_by_text("Write the notes for the next meeting").click()
    notes_form = page.locator("#notes-form")
    notes_form.get_by_label("Meeting date").fill("2026-12-03")
    # an aligned table column: the renderer writes its alignment as no style="" attribute
    notes_form.get_by_label("Notes").fill("**Nanoseconds**\n\n| a | b |\n|---|:-:|\n| 1 | 2 |")
    notes_form.get_by_role("button", name="Save notes").click()
    expect(page.locator("#notes .rendered strong")).to_have_text("Nanoseconds")

    interaction = page.locator("#interaction-form")
    interaction.get_by_label("Date").fill("2026-11-02")
    interaction.get_by_label("What happened").fill("Lunch")
    interaction.get_by_role("button", name="Record interaction").click()
    expect(page.locator("#interactions li:not(.pending-item)").first).to_contain_text("Lunch")
    assert page.evaluate("window.__no_reload === true"), "the page was reloaded, not swapped"

    page.goto("/account")
    expect(page.locator("main")).to_contain_text("alice@example.com")
    page.goto("/interactions")
    expect(page.locator("#interaction-list")).to_contain_text("Lunch")
    page.goto("/contacts")
    expect(page.locator("#contact-list")).to_contain_text("Grace B. Hopper")
    assert violations == []
    context.close()
