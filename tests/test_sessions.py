"""Server-side sessions and the account page: a session ends when it is ended, wherever its
cookie went, and the account's password and time zone change by events."""

import base64
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import itsdangerous
import psycopg
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.testclient import TestClient

from crm.settings import load
from crm.web import sessions, stream
from crm.web.app import create_app
from crm.web.sessions import IDLE
from harness.processes import free_port, wait_until
from tests.web_support import (
    CHEAP_PASSWORDS,
    add_contact,
    another_browser,
    app_client,
    csrf_of,
    event_count,
    log_in,
    sign_up,
)

COOKIE = "crm_session"


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with app_client(db_url, tmp_path) as first:
        yield first


@pytest.fixture
def ada(site: TestClient) -> TestClient:
    browser = another_browser(site)
    sign_up(browser, "ada@example.com")
    return browser


def same_cookie(site: TestClient, browser: TestClient) -> TestClient:
    """Another client holding a copy of `browser`'s cookie, as someone who saved it would."""
    copy = another_browser(site)
    copy.cookies.set(COOKIE, browser.cookies[COOKIE])
    return copy


def logged_out(browser: TestClient) -> bool:
    response = browser.get("/contacts")
    return response.status_code == 303 and response.headers["location"].startswith("/login")


def post(browser: TestClient, path: str, **data: str) -> httpx.Response:
    return browser.post(path, data={**data, "csrf_token": csrf_of(browser, "/account")})


def sessions_of(db_url: str, email: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM sessions WHERE email = %s", (email,)).fetchone()
    assert row is not None
    return int(row[0])


def test_a_cookie_kept_after_logging_out_opens_nothing_and_writes_nothing(
    site: TestClient, ada: TestClient, db_url: str
) -> None:
    saved = same_cookie(site, ada)
    token = csrf_of(ada, "/contacts/new")  # the form's token, as the saved page holds it
    assert not logged_out(saved)
    assert ada.post("/logout", data={"csrf_token": token}).status_code == 303
    assert logged_out(saved)
    events = event_count(db_url)
    created = saved.post(
        "/contacts",
        data={"name": "Mallory", "description": "", "contact_method": "", "csrf_token": token},
    )
    assert created.status_code == 303 and created.headers["location"].startswith("/login")
    assert event_count(db_url) == events
    assert saved.get("/stream").status_code == 401
    assert sessions_of(db_url, "ada@example.com") == 0


def cookie_naming(tmp_path: Path, sid: str) -> str:
    """A session cookie signed with the app's own key (as one who stole the key could), whose
    token is `sid`."""
    key = (tmp_path / "secret_key").read_text().strip()
    data = base64.b64encode(json.dumps({"sid": sid}).encode())
    return itsdangerous.TimestampSigner(key).sign(data).decode()


def test_what_the_database_keeps_of_a_session_logs_nobody_in(
    site: TestClient, ada: TestClient, db_url: str, tmp_path: Path
) -> None:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT id_hash, email FROM sessions").fetchall()
    assert [email for _, email in rows] == ["ada@example.com"]
    stored = rows[0][0]
    for leaked in (stored.hex(), base64.urlsafe_b64encode(stored).decode().rstrip("=")):
        thief = another_browser(site)
        thief.cookies.set(COOKIE, cookie_naming(tmp_path, leaked))
        assert logged_out(thief)
    assert not logged_out(ada)  # while the cookie it was made for works


def test_logging_out_of_other_sessions_keeps_this_one(
    site: TestClient, ada: TestClient, db_url: str
) -> None:
    phone = another_browser(site)
    log_in(phone, "ada@example.com")
    laptop = another_browser(site)
    log_in(laptop, "ada@example.com")
    page = ada.get("/account").text
    assert page.count("<li>") == 3 and "this browser" in page
    answer = post(ada, "/account/sessions/end-others")
    assert answer.status_code == 303
    assert "Logged out of 2 other sessions." in ada.get("/account").text
    assert logged_out(phone) and logged_out(laptop)
    assert not logged_out(ada)
    assert "This is the only browser" in ada.get("/account").text


def test_a_new_password_logs_out_every_other_session_and_replaces_the_old_one(
    site: TestClient, ada: TestClient, db_url: str
) -> None:
    phone = another_browser(site)
    log_in(phone, "ada@example.com")
    answer = post(
        ada, "/account/password", current_password="correct horse", new_password="battery staple"
    )
    assert answer.status_code == 303, answer.text
    assert "Password changed" in ada.get("/account").text
    assert logged_out(phone) and not logged_out(ada)
    with pytest.raises(AssertionError):
        log_in(another_browser(site), "ada@example.com", "correct horse")
    log_in(another_browser(site), "ada@example.com", "battery staple")
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM events e JOIN event_types t ON t.id = e.event_type_id"
            " WHERE t.name = 'account-password-changed'"
        ).fetchone()
    assert row == (1,)


@pytest.mark.parametrize(
    ("current", "new", "field", "problem"),
    [
        ("wrong horse", "battery staple", "Current password", "is not this account"),
        ("", "battery staple", "Current password", "is required"),
        ("correct horse", "short", "New password", "must be at least 8 characters"),
        ("correct horse", "x" * 1025, "New password", "must be at most 1,024 characters"),
    ],
)
def test_a_password_change_that_cannot_be_made_says_which_field_and_changes_nothing(
    ada: TestClient, db_url: str, current: str, new: str, field: str, problem: str
) -> None:
    events = event_count(db_url)
    answer = post(ada, "/account/password", current_password=current, new_password=new)
    assert answer.status_code == 422
    assert f"{field} {problem}" in answer.text
    assert event_count(db_url) == events
    assert 'value="battery staple"' not in answer.text  # passwords are never echoed back


def test_the_time_zone_changes_by_an_event_the_morning_email_reads(
    ada: TestClient, db_url: str
) -> None:
    answer = post(ada, "/account/time-zone", time_zone="Asia/Tokyo")
    assert answer.status_code == 303
    page = ada.get("/account").text
    assert "<option selected>Asia/Tokyo</option>" in page
    assert "follow Asia/Tokyo" in page
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT time_zone FROM projected_accounts").fetchone()
    assert row == ("Asia/Tokyo",)


def test_an_unknown_time_zone_is_refused_beside_its_field(ada: TestClient, db_url: str) -> None:
    events = event_count(db_url)
    answer = post(ada, "/account/time-zone", time_zone="Mars/Olympus_Mons")
    assert answer.status_code == 422
    assert "Your time zone must be a time zone from the list" in answer.text
    assert event_count(db_url) == events


def test_a_session_unused_for_too_long_has_ended(ada: TestClient, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
    assert logged_out(ada)


def test_use_keeps_a_session_alive_but_not_past_its_lifetime(ada: TestClient, db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "UPDATE sessions SET last_seen_at = now() - interval '1 hour',"
            " expires_at = now() + interval '1 minute'"
        )
    assert not logged_out(ada)
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT expires_at - now() FROM sessions").fetchone()
        assert row is not None and row[0] > IDLE * 0.99  # slid forward by its use
        conn.execute(
            "UPDATE sessions SET created_at = now() - interval '30 days',"
            " last_seen_at = now() - interval '1 hour'"
        )
    assert not logged_out(ada)  # this request still counts...
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT expires_at <= now() + interval '1 second' FROM sessions")
        assert row.fetchone() == (True,)  # ...but the lifetime ends it now


def test_the_account_page_is_the_accounts_own(site: TestClient, ada: TestClient) -> None:
    bob = another_browser(site)
    sign_up(bob, "bob@example.com")
    add_contact(ada, "Grace")
    page = bob.get("/account").text
    assert "bob@example.com" in page and "ada@example.com" not in page
    assert logged_out(another_browser(site))
    anonymous = another_browser(site)
    assert anonymous.get("/account").headers["location"].startswith("/login")


@contextmanager
def served(app: Starlette) -> Iterator[str]:
    """The app in uvicorn on a real socket, in this process (SSE needs a real server)."""
    server = uvicorn.Server(uvicorn.Config(app, port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run)
    thread.start()
    try:
        wait_until(lambda: server.started, 30, "uvicorn started")
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


def until_closed(opened: httpx.Response) -> float:
    """Seconds until the server ends the stream (pings are read; a 10 s silence fails)."""
    started = time.monotonic()
    for _ in opened.iter_lines():
        pass
    return time.monotonic() - started


@pytest.fixture
def live(db_url: str, tmp_path: Path) -> Iterator[str]:
    """The app on a real socket (a stream needs one), in this process."""
    settings = load({"DATABASE_URL": db_url, "CRM_DATA_DIR": str(tmp_path)})
    with served(create_app(settings, password_hasher=CHEAP_PASSWORDS)) as base:
        yield base


def test_open_streams_of_sessions_ended_here_close_at_once_and_the_owner_gets_new_ones(
    live: str,
) -> None:
    with (
        httpx.Client(base_url=live, timeout=10) as laptop,
        httpx.Client(base_url=live, timeout=10) as thief,
    ):
        sign_up(laptop, "ada@example.com")
        log_in(thief, "ada@example.com")
        with contextlib.ExitStack() as held:
            streams = [
                held.enter_context(thief.stream("GET", "/stream"))
                for _ in range(stream.MAX_STREAMS_PER_ACCOUNT)
            ]
            assert {s.status_code for s in streams} == {200}
            assert laptop.get("/stream").status_code == 429  # every slot is the thief's
            assert post(laptop, "/account/sessions/end-others").status_code == 303
            assert max(until_closed(s) for s in streams) < 2  # not the 30 s deadline
        assert thief.get("/stream").status_code == 401
        with laptop.stream("GET", "/stream") as owner:
            assert owner.status_code == 200


def test_a_stream_whose_session_ended_in_another_process_closes_by_its_deadline_under_news(
    live: str, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stream, "SESSION_CHECK_SECONDS", 0.5)
    with (
        httpx.Client(base_url=live, timeout=10) as phone,
        httpx.Client(base_url=live, timeout=10) as bob,
    ):
        sign_up(phone, "ada@example.com")
        sign_up(bob, "bob@example.com")
        busy = threading.Event()

        def keep_writing() -> None:  # another account's news reaches every stream
            n = 0
            while not busy.is_set():
                add_contact(bob, f"Contact {n}")
                n += 1

        writer = threading.Thread(target=keep_writing)
        with phone.stream("GET", "/stream") as opened:
            assert opened.status_code == 200
            writer.start()
            try:
                with psycopg.connect(db_url) as conn:  # as another process's log-out would
                    conn.execute("DELETE FROM sessions WHERE email = 'ada@example.com'")
                assert until_closed(opened) < 3
            finally:
                busy.set()
                writer.join()


@pytest.mark.parametrize(
    ("user_agent", "words"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
            " Chrome/120.0 Safari/537.36 Edg/120.0",
            "Edge on Windows",
        ),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1", "Safari on iPhone"),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
            "Firefox on Linux",
        ),
        ("curl/8.0", "An unknown browser"),
        ("", "An unknown browser"),
    ],
)
def test_a_session_is_listed_by_its_browser_and_system_in_words(
    user_agent: str, words: str
) -> None:
    assert sessions.agent_in_words(user_agent) == words
