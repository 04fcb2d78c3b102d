"""Your data out: the account's events as JSON lines, its own only, oldest first, no secrets."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from crm.web import exports
from tests.web_support import add_contact, another_browser, app_client, sign_up


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with app_client(db_url, tmp_path) as first:
        yield first


def exported(browser: TestClient) -> list[dict]:
    answer = browser.get("/export/events.jsonl")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    assert "attachment" in answer.headers["content-disposition"]
    return [json.loads(line) for line in answer.text.splitlines()]


def test_the_export_is_the_accounts_own_events_oldest_first_without_secrets(
    site: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "CHUNK", 2)  # several chunks, each on a connection of its own
    ada, bob = another_browser(site), another_browser(site)
    sign_up(ada, "ada@example.com")
    sign_up(bob, "bob@example.com")
    for name in ("Grace", "Katherine", "Alan"):
        add_contact(ada, name)
    add_contact(bob, "Mallory")
    lines = exported(ada)
    assert [line["type"] for line in lines] == ["account-created"] + ["contact-created"] * 3
    assert [line["payload"].get("name") for line in lines[1:]] == ["Grace", "Katherine", "Alan"]
    assert all(line["by"] == "you" and line["version"] == 1 for line in lines)
    text = json.dumps(lines)
    assert "password_hash" not in text and "argon2" not in text
    assert "Mallory" not in text and "bob@example.com" not in text


def test_the_export_needs_a_log_in(site: TestClient) -> None:
    answer = another_browser(site).get("/export/events.jsonl")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
