"""The morning e-mail, against a real SMTP server (aiosmtpd) and a clock the tests control."""

import asyncio
import base64
import email
import json
import subprocess
import time
import unicodedata
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from email import policy
from email.message import Message
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis_jsonschema import from_schema
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

import crm.jobs.morning_email as morning_email_module
import crm.store.events as events_module
from crm.jobs.mail import SmtpTransport
from crm.jobs.morning_email import LEASE, DueEmail, MorningEmail, compose
from crm.projections.projector import catch_up
from crm.projections.rebuild import rebuild
from crm.projections.registry import ALL
from crm.store import commands
from crm.store.event_types import load_event_types
from harness.processes import App, run_module
from harness.smtp import SmtpServer
from tests.support import contact_details, renderer, sign_up

UTC = ZoneInfo("UTC")


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[AsyncConnectionPool[AsyncConnection[Any]]]:
    async with AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as opened:
        yield opened


def job_for(pool, types, smtp: SmtpServer, hour: int = 7) -> MorningEmail:
    return MorningEmail(pool, types, SmtpTransport(smtp.url, timeout=5), "crm@example.com", hour)


async def contact_with_notes(conn, types, account_id: str, name: str, day: str, notes: str) -> str:
    done = await commands.add_contact(conn, types, account_id, contact_details(name))
    await commands.write_notes(
        conn,
        types,
        account_id,
        done.subject_id,
        {"meeting_on": day, "notes": notes},
    )
    return done.subject_id


async def project(db_url: str, types) -> None:
    await catch_up(db_url, types, ALL, renderer)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def pending_rows(conn) -> list[tuple[str, str | None]]:
    cursor = await conn.execute(
        "SELECT contact_name, meeting_on::text FROM projected_meeting_notes_emails"
        " WHERE meeting_on IS NOT NULL ORDER BY contact_name"
    )
    return await cursor.fetchall()


async def test_the_email_arrives_on_the_right_morning_in_each_time_zone(
    db_url, types, conn, pool, smtp
):
    tokyo = await sign_up(conn, types, "tokyo@example.com", "Asia/Tokyo")
    new_york = await sign_up(conn, types, "ny@example.com", "America/New_York")
    await contact_with_notes(conn, types, tokyo, "Aiko", "2026-12-03", "**Sushi** at noon")
    await contact_with_notes(conn, types, new_york, "Bill", "2026-12-03", "Bagels")
    await project(db_url, types)
    job = job_for(pool, types, smtp)
    # 2026-12-02 21:59 UTC: 06:59 on the 3rd in Tokyo, the evening before in New York
    assert (await job.run(at("2026-12-02T21:59:00+00:00"))).sent == []
    sent = await job.run(at("2026-12-02T22:00:00+00:00"))  # 07:00 in Tokyo
    assert [e.to for e in sent.sent] == ["tokyo@example.com"]
    assert (await job.run(at("2026-12-03T11:59:00+00:00"))).sent == []  # 06:59 in New York
    sent = await job.run(at("2026-12-03T12:00:00+00:00"))  # 07:00 in New York
    assert [e.to for e in sent.sent] == ["ny@example.com"]
    assert [m["To"] for m in smtp.inbox.messages] == ["tokyo@example.com", "ny@example.com"]

    message = smtp.inbox.messages[0]
    assert message["Subject"] == "Your meeting with Aiko today (2026-12-03)"
    assert message["From"] == "crm@example.com"
    assert message["Message-ID"].endswith(".2026-12-03@example.com>")
    plain = message.get_payload()[0].get_payload(decode=True).decode()
    html = message.get_payload()[1].get_payload(decode=True).decode()
    assert "Aiko" in plain and "**Sushi** at noon" in plain
    assert "<strong>Sushi</strong>" in html

    await project(db_url, types)
    assert await pending_rows(conn) == []  # the sent events cleared both rows
    assert (await job.run(at("2026-12-03T13:00:00+00:00"))).due == []
    assert len(smtp.inbox.messages) == 2


async def test_a_past_meeting_day_is_not_sent_late_but_a_missed_morning_is(
    db_url, types, conn, pool, smtp
):
    paris = await sign_up(conn, types, "paris@example.com", "Europe/Paris")
    await contact_with_notes(conn, types, paris, "Yesterday", "2026-12-02", "too late")
    await contact_with_notes(conn, types, paris, "Today", "2026-12-03", "still useful")
    await project(db_url, types)
    # the app was down all morning and comes back at 15:00 Paris time
    report = await job_for(pool, types, smtp).run(at("2026-12-03T14:00:00+00:00"))
    assert [e.contact_name for e in report.sent] == ["Today"]
    assert [m["Subject"] for m in smtp.inbox.messages] == [
        "Your meeting with Today today (2026-12-03)"
    ]


async def test_notes_edited_before_the_morning_send_the_new_notes(db_url, types, conn, pool, smtp):
    paris = await sign_up(conn, types, "paris@example.com", "Europe/Paris")
    contact = await contact_with_notes(conn, types, paris, "Ada", "2026-12-03", "old notes")
    await commands.write_notes(
        conn,
        types,
        paris,
        contact,
        {"meeting_on": "2026-12-03", "notes": "new notes"},
    )
    await project(db_url, types)
    await job_for(pool, types, smtp).run(at("2026-12-03T06:30:00+00:00"))
    plain = smtp.inbox.messages[0].get_payload()[0].get_payload(decode=True).decode()
    assert "new notes" in plain and "old notes" not in plain


async def test_deleting_the_contact_cancels_the_email(db_url, types, conn, pool, smtp):
    paris = await sign_up(conn, types, "paris@example.com", "Europe/Paris")
    contact = await contact_with_notes(conn, types, paris, "Ada", "2026-12-03", "notes")
    await commands.delete_contact(conn, types, paris, contact)
    await project(db_url, types)
    report = await job_for(pool, types, smtp).run(at("2026-12-03T06:30:00+00:00"))
    assert report.due == [] and smtp.inbox.messages == []


async def test_two_concurrent_runs_send_exactly_one(db_url, types, conn, pool, smtp):
    paris = await sign_up(conn, types, "paris@example.com", "Europe/Paris")
    for n in range(5):
        await contact_with_notes(conn, types, paris, f"Contact {n}", "2026-12-03", "notes")
    await project(db_url, types)
    async with AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as other_pool:
        first, second = job_for(pool, types, smtp), job_for(other_pool, types, smtp)
        now = at("2026-12-03T06:30:00+00:00")
        reports = await asyncio.gather(first.run(now), second.run(now), first.run(now))
    assert sum(len(r.sent) for r in reports) == 5
    assert len(smtp.inbox.messages) == 5
    assert len({m["Message-ID"] for m in smtp.inbox.messages}) == 5
    row = await (
        await conn.execute(
            "SELECT count(*) FROM events e JOIN event_types t ON t.id = e.event_type_id"
            " WHERE t.name = 'meeting-notes-email-sent'"
        )
    ).fetchone()
    assert row == (5,)


async def test_smtp_down_then_up_sends_exactly_one(db_url, types, conn, pool):
    smtp = SmtpServer()  # not started: connections are refused
    paris = await sign_up(conn, types, "paris@example.com", "Europe/Paris")
    await contact_with_notes(conn, types, paris, "Ada", "2026-12-03", "notes")
    await project(db_url, types)
    job = job_for(pool, types, smtp)
    failed = await job.run(at("2026-12-03T06:00:00+00:00"))
    assert len(failed.failed) == 1 and "Connection refused" in failed.failed[0][1]
    backing_off = await job.run(at("2026-12-03T06:00:30+00:00"))  # within the backoff
    assert backing_off.skipped and not backing_off.sent
    smtp.start()
    try:
        sent = await job.run(at("2026-12-03T06:02:00+00:00"))
        again = await job.run(at("2026-12-03T06:10:00+00:00"))
    finally:
        smtp.stop()
    assert len(sent.sent) == 1 and not again.sent
    assert len(smtp.inbox.messages) == 1
    cursor = await conn.execute("SELECT status, attempts FROM meeting_email_claims")
    assert await cursor.fetchall() == [("sent", 2)]


async def test_a_crash_after_sending_resends_once_with_the_same_message_id(
    db_url, types, conn, pool, smtp, monkeypatch
):
    paris = await sign_up(conn, types, "paris@example.com", "Europe/Paris")
    await contact_with_notes(conn, types, paris, "Ada", "2026-12-03", "notes")
    await project(db_url, types)
    job = job_for(pool, types, smtp)

    async def crash(*args: Any) -> None:
        raise SystemExit("the process died after the SMTP server accepted the message")

    monkeypatch.setattr(morning_email_module, "record_sent", crash)
    crashed_at = at("2026-12-03T06:00:00+00:00")
    with pytest.raises(SystemExit):
        await job.run(crashed_at)
    monkeypatch.undo()
    assert len(smtp.inbox.messages) == 1
    # restarted within the lease: the dead sender may still be mid-send, so nothing is sent
    soon = await job.run(crashed_at + LEASE / 2)
    assert soon.skipped and len(smtp.inbox.messages) == 1
    # the lease ran out: the documented rule sends again, with the same Message-ID
    later = await job.run(crashed_at + LEASE)
    assert len(later.sent) == 1
    first, second = smtp.inbox.messages
    assert first["Message-ID"] == second["Message-ID"]
    assert not (await job.run(crashed_at + 3 * LEASE)).sent
    await project(db_url, types)
    assert await pending_rows(conn) == []


async def test_replaying_every_projection_sends_nothing_and_resurrects_nothing(
    db_url, types, conn, pool, smtp
):
    paris = await sign_up(conn, types, "paris@example.com", "Europe/Paris")
    await contact_with_notes(conn, types, paris, "Ada", "2026-12-03", "notes")
    await project(db_url, types)
    job = job_for(pool, types, smtp)
    await job.run(at("2026-12-03T06:00:00+00:00"))
    await rebuild(db_url, types, ALL, renderer=renderer)
    assert await pending_rows(conn) == []
    assert not (await job.run(at("2026-12-03T06:30:00+00:00"))).due
    assert len(smtp.inbox.messages) == 1


def emails_command(
    db_url: str, smtp_url: str, data_dir: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {"DATABASE_URL": db_url, "CRM_SMTP_URL": smtp_url, "CRM_DATA_DIR": str(data_dir)}
    return run_module("crm.emails", *args, env=env, timeout=60)


def test_the_emails_command_dry_run_and_send_due(db_url, types, smtp, tmp_path: Path):
    async def setup() -> None:
        async with await AsyncConnection.connect(db_url, autocommit=True) as c:
            paris = await sign_up(c, types, "paris@example.com", "Europe/Paris")
            await contact_with_notes(c, types, paris, "Ada", "2026-12-03", "notes")

    asyncio.run(setup())  # the projections are brought up to date by the command itself
    command = partial(emails_command, db_url, smtp.url, tmp_path)

    early = command("--dry-run", "--now", "2026-12-03T05:00:00+00:00")  # 06:00 in Paris
    assert early.returncode == 0 and "0 e-mail(s) due" in early.stdout
    due = command("--dry-run", "--now", "2026-12-03T07:30:00+01:00")
    assert "1 e-mail(s) due" in due.stdout and "to paris@example.com" in due.stdout
    assert smtp.inbox.messages == []
    sent = command("--send-due", "--now", "2026-12-03T07:30:00+01:00")
    assert sent.returncode == 0, sent.stderr
    assert "1 due, 1 sent" in sent.stdout
    assert len(smtp.inbox.messages) == 1
    bad = command("--send-due", "--now", "tomorrow morning")
    assert bad.returncode == 2 and "expected an ISO datetime" in bad.stderr


@pytest.mark.parametrize("via", ["smtp", "outbox"])
def test_the_app_runs_the_job_at_start_up(db_url, types, smtp, tmp_path: Path, via: str):
    """The scheduler in `python -m crm` makes up a morning missed while it was down."""
    today = datetime.now(UTC).date().isoformat()

    async def setup() -> None:
        async with await AsyncConnection.connect(db_url, autocommit=True) as c:
            utc = await sign_up(c, types, "utc@example.com", "UTC")
            await contact_with_notes(c, types, utc, "Ada", today, "*today*")

    asyncio.run(setup())
    env = {"DATABASE_URL": db_url, "CRM_DATA_DIR": str(tmp_path), "CRM_EMAIL_HOUR": "0"}
    if via == "smtp":
        env["CRM_SMTP_URL"] = smtp.url
    app = App(env).start()
    try:
        app.health()
        deadline = time.monotonic() + 20
        outbox = tmp_path / "outbox"
        while not (smtp.inbox.messages or (outbox.exists() and any(outbox.iterdir()))):
            assert time.monotonic() < deadline, "no e-mail was sent"
            time.sleep(0.1)
        while (job := app.health()["morning_email"]) is None or not job["sent"]:
            assert time.monotonic() < deadline, f"/health does not report the run: {job}"
            time.sleep(0.1)
        assert job["failed"] == 0
    finally:
        log = app.stop()
    if via == "smtp":
        assert [m["To"] for m in smtp.inbox.messages] == ["utc@example.com"]
    else:
        (eml,) = outbox.iterdir()
        assert "Your meeting with Ada today" in eml.read_text()
        assert f"morning e-mails are written to {outbox}" in log


# One contact's name, one account's address, one server's refusal: none stops the others.

DAY = "2026-12-03"
MORNING = "2026-12-03T06:30:00+00:00"  # 07:30 in Paris
SENDER = "crm@example.com"


@contextmanager
def stored_before_the_write_checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Write events as they may have been stored before names and addresses were checked at the
    write: however strict the schema or the form is now, those events stay and are sent."""
    with monkeypatch.context() as patched:
        patched.setattr(events_module, "validate_payload", lambda event_type, payload: None)
        yield


def due_email(name: str, notes: str = "notes") -> DueEmail:
    ids = "00000000-0000-4000-8000-00000000000"
    return DueEmail(ids + "1", ids + "2", "me@example.com", name, DAY, notes, "<p>notes</p>")


def reread(message: Any) -> Message:
    return email.message_from_bytes(bytes(message), policy=policy.default)


def _breaks_a_line(char: str) -> bool:
    category = unicodedata.category(char)
    return category in ("Cc", "Cs", "Zl", "Zp") or (category == "Cf" and char not in "\u200c\u200d")


HOSTILE_NAMES = {
    "line feed": "Eve\nMallory",
    "carriage return": "Eve\rMallory",
    "header injection": "Eve\r\nBcc: spy@example.com",
    "vertical tab": "Eve\x0bMallory",
    "form feed": "Eve\x0cMallory",
    "file, group, record separators": "Eve\x1c\x1d\x1eMallory",
    "next line": "Eve\x85Mallory",
    "line separator": "Eve\u2028Mallory",
    "paragraph separator": "Eve\u2029Mallory",
    "NUL, bell, escape": "Eve\x00\x07\x1b[31mMallory",
    "DEL and C1 controls": "Eve\x7f\x80\x9fMallory",
    "bidi override": "Eve \u202eyrollaM",
    "bidi isolates": "\u2066Eve\u2069 \u2067Mallory\u2069",
    "BOM and zero-width space": "\ufeffEve\u200bMallory",
    "lone surrogate": "Eve\ud800Mallory",
    "nothing printable": "\x00\r\n\u2028\u202e",
    "markup": "<script>alert('Eve')</script> & Mallory",
    "200 line separators and letters": "E\u2028" * 100,
    "200 emoji": "\U0001f600" * 200,
}


@pytest.mark.parametrize("name", HOSTILE_NAMES.values(), ids=HOSTILE_NAMES.keys())
def test_any_name_is_composed_into_one_clean_subject_line_and_escaped_html(name: str):
    message = reread(compose(due_email(name), SENDER))
    subject = message["Subject"].lstrip()  # a long Subject may be folded before its first word
    assert subject.startswith("Your meeting with ") and subject.endswith(f" today ({DAY})")
    assert len(subject) <= 120 and not any(map(_breaks_a_line, subject)), repr(subject)
    assert message["To"] == "me@example.com" and message["Bcc"] is None
    page = message.get_body(("html",)).get_content()
    assert "<script>" not in page and "\u202e" not in page


def test_a_name_keeps_its_letters_and_joiners():
    message = reread(compose(due_email("Eve\u2028Mallory \U0001f469\u200d\U0001f4bb"), SENDER))
    assert (
        message["Subject"]
        == f"Your meeting with Eve Mallory \U0001f469\u200d\U0001f4bb today ({DAY})"
    )


def _b_encoded(text: str, charset: str = "UTF-8", b: str = "B") -> str:
    return f"=?{charset}?{b}?{base64.b64encode(text.encode()).decode()}?="


# RFC 2047 encoded words that decode to a line break: Python before 3.11.10 decodes them in a
# header value it is given and writes the line break when it folds (CVE-2024-6923)
ENCODED_WORD_NAMES = {
    "Reply-To, q-encoded": "=?utf-8?q?Al=0D=0AReply-To:_attacker@evil.example?=",
    "end of the headers": "=?utf-8?q?Hi=0D=0A=0D=0A<h1>Body_takeover</h1>?=",
    "Bcc, b-encoded": _b_encoded("Al\r\nBcc: spy@evil.example"),
    "lower-case b": _b_encoded("Al\r\nReply-To: attacker@evil.example", "utf-8", "b"),
    "upper-case Q": "=?UTF-8?Q?Al=0D=0AReply-To:_attacker@evil.example?=",
    "Latin-1": "=?iso-8859-1?q?Al=0A=0ABody_takeover?=",
    "inside a word": "Ada=?utf-8?q?=0D=0AReply-To:_attacker@evil.example?=Lovelace",
    "after a bidi control": "=\u202e?utf-8?q?Al=0D=0AReply-To:_attacker@evil.example?=",
    "two words": "=?utf-8?q?Al=0D?= =?utf-8?q?=0AReply-To:_attacker@evil.example?=",
}
HEADERS = ["Subject", "From", "To", "Date", "Message-ID", "MIME-Version", "Content-Type"]


@pytest.mark.parametrize("name", ENCODED_WORD_NAMES.values(), ids=ENCODED_WORD_NAMES.keys())
def test_a_name_in_rfc_2047_encoded_words_adds_no_header_and_ends_no_headers(name: str):
    raw = bytes(compose(due_email(name), SENDER))
    message = email.message_from_bytes(raw, policy=policy.default)
    assert list(message.keys()) == HEADERS and b"\r" not in raw
    assert message["Reply-To"] is None and message["Bcc"] is None
    subject = message["Subject"].lstrip()
    assert subject.startswith("Your meeting with ") and subject.endswith(f" today ({DAY})")
    assert not any(map(_breaks_a_line, subject)), repr(subject)
    assert message.get_body(("plain",)).get_content().endswith("notes\n\n-- \ncrm\n")
    assert message.get_body(("html",)).get_content().endswith('<p style="color:#666">-- crm</p>\n')


@pytest.mark.parametrize(
    ("to", "sender"),
    [
        ("me@=?utf-8?q?evil.example=0D=0AReply-To:_attacker@evil.example?=", SENDER),
        ("=?utf-8?q?me=0D=0AReply-To:_attacker@evil.example?=@example.com", SENDER),
        ("me@example.com", "crm@=?utf-8?q?example.com=0D=0AReply-To:_a@evil.example?="),
        ("me@evil.example,root,postmaster", SENDER),  # a list: three recipients
        ("x<root>@y.example", SENDER),  # route syntax: sent to root
        ("Eve <victim@corp.example>", SENDER),  # a display name hiding the real recipient
    ],
)
def test_an_address_that_is_not_one_plain_mailbox_is_not_composed(to: str, sender: str):
    """Sign-up refuses such an address now; one stored before is never sent."""
    with pytest.raises(ValueError):
        compose(replace(due_email("Ada"), to=to), sender)


def _schema_property(event_type: str, name: str) -> dict[str, Any]:
    """The field's schema, every $ref resolved (hypothesis-jsonschema fetches none)."""
    schema: dict[str, Any] = load_event_types().get(event_type, 1).schema["properties"][name]
    return schema


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=from_schema(_schema_property("contact-created", "name")),
    notes=from_schema(_schema_property("next-meeting-notes-written", "notes")),
)
def test_every_name_and_notes_the_schemas_allow_compose(name: str, notes: str):
    message = reread(compose(due_email(name, notes), SENDER))
    assert not any(map(_breaks_a_line, message["Subject"]))


async def test_a_name_with_line_breaks_in_one_account_stops_no_email_of_another(
    db_url, types, conn, pool, smtp, monkeypatch
):
    """The reported case: 'Eve\\u2028Mallory' aborted the run, and 5 of another account's 8
    e-mails were never sent."""
    mallory = await sign_up(conn, types, "mallory@example.com", "Europe/Paris")
    with stored_before_the_write_checked(monkeypatch):
        await contact_with_notes(conn, types, mallory, "Eve\u2028Mallory", DAY, "notes")
        await contact_with_notes(conn, types, mallory, "Eve\r\nBcc: spy@example.com\x0b", DAY, "")
    alice = await sign_up(conn, types, "alice@example.com", "Europe/Paris")
    for n in range(8):
        await contact_with_notes(conn, types, alice, f"Contact {n}", DAY, f"notes {n}")
    await project(db_url, types)
    report = await job_for(pool, types, smtp).run(at(MORNING))
    assert report.failed == [] and len(report.sent) == 10
    to_alice = [m for m in smtp.inbox.messages if m["To"] == "alice@example.com"]
    assert len(to_alice) == 8
    subjects = {m["Subject"] for m in smtp.inbox.messages if m["To"] == "mallory@example.com"}
    assert subjects == {
        f"Your meeting with Eve Mallory today ({DAY})",
        f"Your meeting with Eve Bcc: spy@example.com today ({DAY})",
    }
    assert all(m["Bcc"] is None for m in smtp.inbox.messages)


async def test_a_time_zone_the_server_does_not_know_stops_no_email_and_counts_as_utc(
    db_url, types, conn, pool, smtp, monkeypatch
):
    with stored_before_the_write_checked(monkeypatch):  # the schema takes any string
        lost = await sign_up(conn, types, "lost@example.com", "Mars/Olympus_Mons")
    await contact_with_notes(conn, types, lost, "Zed", DAY, "notes")
    alice = await sign_up(conn, types, "alice@example.com", "Europe/Paris")
    await contact_with_notes(conn, types, alice, "Ada", DAY, "notes")
    await project(db_url, types)
    job = job_for(pool, types, smtp)
    # 06:30 UTC is 07:30 in Paris but only 06:30 by UTC: Alice's e-mail is due, Zed's not yet
    early = await job.run(at(MORNING))
    assert [e.to for e in early.sent] == ["alice@example.com"] and early.error is None
    later = await job.run(at("2026-12-03T07:00:00+00:00"))
    assert [e.to for e in later.sent] == ["lost@example.com"]


async def test_a_recipient_the_server_refuses_fails_alone_and_is_retried_later(
    db_url, types, conn, pool, smtp
):
    for address in ("ann@example.com", "bob@example.com", "cat@example.com"):
        owner = await sign_up(conn, types, address, "Europe/Paris")
        await contact_with_notes(conn, types, owner, f"Friend of {address}", DAY, "notes")
    await project(db_url, types)
    smtp.inbox.refused.add("bob@example.com")
    job = job_for(pool, types, smtp)

    first = await job.run(at("2026-12-03T06:00:00+00:00"))
    assert sorted(e.to for e in first.sent) == ["ann@example.com", "cat@example.com"]
    ((refused, reason),) = first.failed
    assert refused.to == "bob@example.com"
    assert reason.startswith("cannot send: SMTPRecipientsRefused") and "550" in reason
    assert sorted(m["To"] for m in smtp.inbox.messages) == ["ann@example.com", "cat@example.com"]

    waiting = await job.run(at("2026-12-03T06:00:30+00:00"))  # within the backoff
    assert not waiting.sent and not waiting.failed
    assert [(e.to, why) for e, why in waiting.failing] == [("bob@example.com", reason)]

    smtp.inbox.refused.clear()
    retried = await job.run(at("2026-12-03T06:02:00+00:00"))
    assert [e.to for e in retried.sent] == ["bob@example.com"] and retried.failing == []
    cursor = await conn.execute(
        "SELECT attempts, status, last_error FROM meeting_email_claims ORDER BY attempts"
    )
    assert await cursor.fetchall() == [(1, "sent", None), (1, "sent", None), (2, "sent", None)]


async def test_an_unexpected_error_with_one_email_is_reported_and_the_run_goes_on(
    db_url, types, conn, pool, smtp, monkeypatch
):
    paris = await sign_up(conn, types, "paris@example.com", "Europe/Paris")
    for name in ("Ada", "Bea", "Cy"):
        await contact_with_notes(conn, types, paris, name, DAY, "notes")
    await project(db_url, types)
    record_sent = morning_email_module.record_sent

    async def fails_for_bea(conn: Any, types: Any, due: DueEmail, message_id: str) -> None:
        if due.contact_name == "Bea":
            raise RuntimeError("the database went away")
        await record_sent(conn, types, due, message_id)

    monkeypatch.setattr(morning_email_module, "record_sent", fails_for_bea)
    job = job_for(pool, types, smtp)
    report = await job.run(at(MORNING))
    assert sorted(e.contact_name for e in report.sent) == ["Ada", "Cy"]
    assert [(e.contact_name, why) for e, why in report.failed] == [
        ("Bea", "unexpected: RuntimeError('the database went away')")
    ]
    assert job.last_run == (at(MORNING), report)


async def test_a_run_that_stops_early_is_recorded_with_its_reason(types, pool, smtp):
    async def projections_unreachable() -> None:
        raise ConnectionError("the projections could not be asked")

    job = job_for(pool, types, smtp)
    job.before_run = projections_unreachable
    report = await job.run(at(MORNING))
    assert report.error == "ConnectionError('the projections could not be asked')"
    assert job.last_run == (at(MORNING), report)


def test_the_emails_command_says_what_would_fail_and_what_failed_before(
    db_url, types, smtp, tmp_path: Path, monkeypatch
):
    async def setup() -> None:
        async with await AsyncConnection.connect(db_url, autocommit=True) as c:
            with stored_before_the_write_checked(monkeypatch):
                broken = await sign_up(c, types, "eve\r\n@example.com", "Europe/Paris")
            await contact_with_notes(c, types, broken, "Ada", DAY, "secret notes")
            refused = await sign_up(c, types, "bob@example.com", "Europe/Paris")
            await contact_with_notes(c, types, refused, "Bea", DAY, "secret notes")
            fine = await sign_up(c, types, "cat@example.com", "Europe/Paris")
            await contact_with_notes(c, types, fine, "Cy", DAY, "secret notes")

    asyncio.run(setup())
    smtp.inbox.refused.add("bob@example.com")
    command = partial(emails_command, db_url, smtp.url, tmp_path)

    before = command("--dry-run", "--now", MORNING)
    assert before.returncode == 0 and "3 e-mail(s) due" in before.stdout
    assert "would fail: cannot compose: ValueError" in before.stdout
    assert "last attempt failed" not in before.stdout and "\r" not in before.stdout

    sent = command("--send-due", "--now", MORNING)
    assert sent.returncode == 1 and "3 due, 1 sent" in sent.stdout
    assert "to eve @example.com about 'Ada': cannot compose: ValueError" in sent.stderr
    assert "to bob@example.com about 'Bea': cannot send: SMTPRecipientsRefused" in sent.stderr

    after = command("--dry-run", "--now", "2026-12-03T06:31:00+00:00")
    assert "2 e-mail(s) due" in after.stdout and "secret notes" not in after.stdout
    blocks = after.stdout.split("\n  to ")[1:]
    (ada,) = [block for block in blocks if "'Ada'" in block]
    (bea,) = [block for block in blocks if "'Bea'" in block]
    assert ada.startswith("eve @example.com about 'Ada'")
    assert "would fail: cannot compose: ValueError" in ada
    assert "last attempt failed: cannot compose: ValueError" in ada
    assert bea.startswith("bob@example.com about 'Bea'") and "would fail" not in bea
    assert "last attempt failed: cannot send: SMTPRecipientsRefused" in bea and "550" in bea


def test_health_counts_a_failing_email_without_saying_whose(
    db_url, types, smtp, tmp_path: Path, monkeypatch
):
    today = datetime.now(UTC).date().isoformat()
    ids: dict[str, str] = {}

    async def setup() -> None:
        async with await AsyncConnection.connect(db_url, autocommit=True) as c:
            ann = await sign_up(c, types, "ann@example.com", "UTC")
            with stored_before_the_write_checked(monkeypatch):
                await contact_with_notes(c, types, ann, "Eve\u2028Mallory", today, "secret notes")
            bob = await sign_up(c, types, "bob@example.com", "UTC")
            ids["bea"] = await contact_with_notes(c, types, bob, "Bea", today, "secret notes")

    asyncio.run(setup())
    smtp.inbox.refused.add("bob@example.com")
    env = {"DATABASE_URL": db_url, "CRM_DATA_DIR": str(tmp_path), "CRM_EMAIL_HOUR": "0"}
    app = App({**env, "CRM_SMTP_URL": smtp.url}).start()
    try:
        deadline = time.monotonic() + 20
        while (job := (health := app.health())["morning_email"]) is None or not job[
            "failing_count"
        ]:
            assert time.monotonic() < deadline, f"/health does not report the failure: {job}"
            time.sleep(0.1)
    finally:
        app.stop()
    assert health["status"] == "degraded"
    assert job["error"] is None and job["failing_count"] == 1
    shown = json.dumps(health)
    assert ids["bea"] not in shown and "bob@example.com" not in shown and "secret" not in shown
    (sent,) = smtp.inbox.messages
    assert sent["Subject"] == f"Your meeting with Eve Mallory today ({today})"
