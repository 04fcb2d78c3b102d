"""The account's event browser: only its own events, newest first, filtered by type and dates,
a page at a time; no secret field and no global position on the page."""

import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from starlette.testclient import TestClient

from crm.web import event_log
from tests.web_support import add_contact, another_browser, app_client, sign_up


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with app_client(db_url, tmp_path) as first:
        yield first


@pytest.fixture
def ada(site: TestClient) -> TestClient:
    browser = another_browser(site)
    sign_up(browser, "ada@example.com")
    return browser


def kinds(page: str) -> list[str]:
    return re.findall(r"<strong>([a-z-]+)</strong> <span class=\"badge\">v\d+</span>", page)


def test_only_the_accounts_own_events_newest_first_without_secrets(
    site: TestClient, ada: TestClient
) -> None:
    add_contact(ada, "Grace", description="Admiral")
    bob = another_browser(site)
    sign_up(bob, "bob@example.com")
    add_contact(bob, "Mallory", description="bob's secret")
    page = ada.get("/events")
    assert page.status_code == 200
    assert kinds(page.text) == ["contact-created", "account-created"]
    assert "Mallory" not in page.text and "bob" not in page.text
    assert "argon2" not in page.text and "(not shown)" in page.text  # the password's hash


def test_events_are_filtered_by_type_and_by_day(ada: TestClient) -> None:
    add_contact(ada, "Grace")
    assert kinds(ada.get("/events?type=contact-created").text) == ["contact-created"]
    assert kinds(ada.get("/events?from=2000-01-01&to=2000-01-02").text) == []
    assert len(kinds(ada.get("/events?from=2000-01-01").text)) == 2


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("type=no-such-event", "Event type must be one of the event types listed"),
        ("from=yesterday", "From must be a day written like 2026-12-03"),
        ("from=2026-12-03&to=2026-12-01", "To must not be before the first day"),
    ],
)
def test_a_bad_filter_is_named_beside_its_field(ada: TestClient, query: str, problem: str) -> None:
    page = ada.get(f"/events?{query}")
    assert page.status_code == 422 and problem in page.text
    assert kinds(page.text) == []


def test_pages_go_back_through_a_token_never_a_position(
    ada: TestClient, monkeypatch: pytest.MonkeyPatch, db_url: str
) -> None:
    monkeypatch.setattr(event_log, "PER_PAGE", 2)
    for name in ("A", "B", "C"):
        add_contact(ada, name)
    first = ada.get("/events").text
    older = re.search(r'href="/events\?([^"]+)"', first)
    assert older and re.search(r"before=[A-Za-z0-9_-]{48}", older.group(1))
    second = ada.get(f"/events?{older.group(1).replace('&amp;', '&')}").text
    assert kinds(first) == ["contact-created", "contact-created"]
    assert kinds(second) == ["contact-created", "account-created"]
    with psycopg.connect(db_url) as conn:
        positions = [str(p) for (p,) in conn.execute("SELECT id FROM events")]
    assert not any(f"before={p}" in first for p in positions)
    forged = ada.get("/events?before=12345")  # not a token: the newest page
    assert kinds(forged.text) == kinds(first)
