"""Sign-up tells nobody which addresses have accounts when crm can send e-mail: the answer is the
same page either way, and the address's owner learns the rest by e-mail (a real SMTP server)."""

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from starlette.testclient import TestClient

from harness.smtp import SmtpServer
from tests.web_support import another_browser, app_client, csrf_of, event_count, log_in, sign_up

_LINK = re.compile(r"(http://\S+/signup/confirm\?token=\S+)")


@pytest.fixture
def site(db_url: str, tmp_path: Path, smtp: SmtpServer) -> Iterator[TestClient]:
    with app_client(db_url, tmp_path, environ={"CRM_SMTP_URL": smtp.url}) as first:
        yield first


def ask_to_sign_up(
    browser: TestClient, email: str, password: str = "a new password"
) -> httpx.Response:
    data = {"email": email, "password": password, "time_zone": "Europe/Paris"}
    return browser.post("/signup", data={**data, "csrf_token": csrf_of(browser, "/signup")})


def mail_to(smtp: SmtpServer, email: str, count: int = 1) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        found = [m for m in smtp.inbox.messages if m["To"] == email.lower()]
        if len(found) >= count:
            body = found[count - 1].get_payload(decode=True)
            assert isinstance(body, bytes)
            return body.decode()
        time.sleep(0.02)
    raise AssertionError(f"no e-mail to {email}")


def follow(browser: TestClient, body: str, password: str = "a new password") -> httpx.Response:
    """Open the mailed link and confirm with `password` (the one chosen at sign-up, by default)."""
    match = _LINK.search(body)
    assert match, body
    page = browser.get(match.group(1))
    assert page.status_code == 200 and "Create my account" in page.text
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token
    data = {"token": token.group(1), "password": password}
    return browser.post("/signup/confirm", data={**data, "csrf_token": csrf_of(browser, "/signup")})


def accounts(db_url: str) -> list[str]:
    with psycopg.connect(db_url) as conn:
        return [e for (e,) in conn.execute("SELECT name FROM entities WHERE kind = 'account'")]


def test_sign_up_answers_the_same_for_a_new_and_a_taken_address(
    site: TestClient, smtp: SmtpServer, db_url: str
) -> None:
    ada = another_browser(site)
    assert follow(ada, _sign_up_and_read(ada, smtp, "ada@example.com")).status_code == 303
    new, taken = another_browser(site), another_browser(site)
    answers = [ask_to_sign_up(new, "grace@example.com"), ask_to_sign_up(taken, "ada@example.com")]
    assert [(a.status_code, a.headers["location"]) for a in answers] == [(303, "/signup/sent")] * 2
    pages = [new.get("/signup/sent").text, taken.get("/signup/sent").text]
    pages = [p.replace("grace@example.com", "X").replace("ada@example.com", "X") for p in pages]
    pages = [re.sub(r'value="[^"]{20,}"', "", page) for page in pages]  # their CSRF tokens
    assert pages[0] == pages[1]
    assert "Check your e-mail" in pages[0]
    assert "already" not in pages[0]
    assert "You already have a crm account" in str(
        [m["Subject"] for m in smtp.inbox.messages if m["To"] == "ada@example.com"]
    )
    assert "log in at" in mail_to(smtp, "ada@example.com", 2)
    assert accounts(db_url) == ["ada@example.com"]  # grace has none until she follows her link


def test_reloading_the_check_your_email_page_mails_nothing_more(
    site: TestClient, smtp: SmtpServer
) -> None:
    browser = another_browser(site)
    _sign_up_and_read(browser, smtp, "grace@example.com")
    for _ in range(3):
        assert "grace@example.com" in browser.get("/signup/sent").text
    assert len(smtp.inbox.messages) == 1
    assert another_browser(site).get("/signup/sent").headers["location"] == "/signup"


def test_whoever_did_not_choose_the_password_cannot_confirm_the_link(
    site: TestClient, smtp: SmtpServer, db_url: str
) -> None:
    """An attacker signs up the victim's address with a password of theirs; the victim, who
    follows the link mailed to them, is asked for that password and makes no account."""
    attacker, victim = another_browser(site), another_browser(site)
    ask_to_sign_up(attacker, "victim@example.com", "the attacker's password")
    answer = follow(victim, mail_to(smtp, "victim@example.com"), "the victim's own password")
    assert answer.status_code == 422
    assert "Password is not the one chosen when signing up with this link" in answer.text
    assert accounts(db_url) == []


def _sign_up_and_read(browser: TestClient, smtp: SmtpServer, email: str) -> str:
    assert ask_to_sign_up(browser, email).status_code == 303
    return mail_to(smtp, email)


def test_the_link_makes_the_account_once_and_logs_in(
    site: TestClient, smtp: SmtpServer, db_url: str
) -> None:
    grace = another_browser(site)
    body = _sign_up_and_read(grace, smtp, "Grace@Example.com")
    events = event_count(db_url)
    made = follow(grace, body)
    assert made.status_code == 303 and made.headers["location"] == "/contacts"
    assert "Welcome!" in grace.get("/contacts").text
    assert event_count(db_url) == events + 1
    assert accounts(db_url) == ["grace@example.com"]
    again = another_browser(site)
    used = again.get(_LINK.search(body).group(1))  # type: ignore[union-attr]
    assert used.status_code == 410 and "no longer works" in used.text
    log_in(another_browser(site), "grace@example.com", "a new password")


def test_a_link_that_was_never_sent_or_has_expired_makes_nothing(
    site: TestClient, smtp: SmtpServer, db_url: str
) -> None:
    browser = another_browser(site)
    body = _sign_up_and_read(browser, smtp, "grace@example.com")
    for forged in ("", "x", "A" * 5000, "%00", "' OR 1=1 --"):
        answer = browser.get("/signup/confirm", params={"token": forged})
        assert answer.status_code == 410
        posted = browser.post(
            "/signup/confirm", data={"token": forged, "csrf_token": csrf_of(browser, "/signup")}
        )
        assert posted.status_code == 410
    with psycopg.connect(db_url) as conn:
        conn.execute("UPDATE sign_up_requests SET expires_at = now() - interval '1 second'")
    assert browser.get(_LINK.search(body).group(1)).status_code == 410  # type: ignore[union-attr]
    assert accounts(db_url) == []


def test_two_links_to_one_address_make_one_account(
    site: TestClient, smtp: SmtpServer, db_url: str
) -> None:
    first, second = another_browser(site), another_browser(site)
    body_one = _sign_up_and_read(first, smtp, "ada@example.com")
    ask_to_sign_up(second, "ada@example.com", "another password")
    body_two = mail_to(smtp, "ada@example.com", 2)
    assert follow(first, body_one).headers["location"] == "/contacts"
    answer = follow(second, body_two, "another password")
    assert answer.headers["location"] == "/login"
    assert "already has an account" in second.get("/login").text
    assert accounts(db_url) == ["ada@example.com"]


def test_one_address_is_sent_only_a_few_links(site: TestClient, smtp: SmtpServer) -> None:
    answers = [
        ask_to_sign_up(another_browser(site), "victim@example.com").status_code for _ in range(4)
    ]
    assert answers == [303, 303, 303, 429]
    assert len([m for m in smtp.inbox.messages if m["To"] == "victim@example.com"]) == 3


def test_without_a_way_to_send_mail_the_account_is_made_at_once(
    db_url: str, tmp_path: Path
) -> None:
    with app_client(db_url, tmp_path) as site:
        ada = another_browser(site)
        sign_up(ada, "ada@example.com")
        assert "Welcome!" in ada.get("/contacts").text
        taken = ask_to_sign_up(another_browser(site), "ada@example.com")
        assert taken.status_code == 422 and "already belongs to an account" in taken.text


def test_mailed_links_point_at_the_public_url_whatever_the_host_header_says(
    db_url: str, tmp_path: Path, smtp: SmtpServer
) -> None:
    environ = {
        "CRM_SMTP_URL": smtp.url,
        "CRM_ALLOWED_HOSTS": "*",
        "CRM_PUBLIC_URL": "https://crm.example.com",
    }
    with app_client(db_url, tmp_path, environ=environ) as site:
        browser = another_browser(site)
        browser.headers["Host"] = "crm-login.attacker.example"
        ask_to_sign_up(browser, "ada@example.com")
        body = mail_to(smtp, "ada@example.com")
    assert "https://crm.example.com/signup/confirm?token=" in body
    assert "attacker" not in body


def test_a_leaked_link_gives_a_few_guesses_at_the_password_then_waits(
    site: TestClient, smtp: SmtpServer, db_url: str
) -> None:
    owner = another_browser(site)
    body = _sign_up_and_read(owner, smtp, "grace@example.com")
    finder = another_browser(site)
    answers = [follow(finder, body, f"guess {n}").status_code for n in range(6)]
    assert answers == [422] * 5 + [429]
    assert accounts(db_url) == []
