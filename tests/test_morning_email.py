"""The morning e-mail, against a real SMTP server (aiosmtpd) and a clock the tests control."""

import asyncio
import email
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from email.message import Message
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

import crm.jobs.morning_email as morning_email_module
from crm.jobs.mail import SmtpTransport
from crm.jobs.morning_email import LEASE, MorningEmail
from crm.projections.projector import catch_up
from crm.projections.rebuild import rebuild
from crm.projections.registry import ALL
from crm.store import commands
from tests.processes import App, free_port
from tests.support import FAKE_HASH

UTC = ZoneInfo("UTC")


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


class SmtpServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[AsyncConnectionPool[AsyncConnection[Any]]]:
    async with AsyncConnectionPool(db_url, min_size=1, max_size=4, open=False) as opened:
        yield opened


def job_for(pool, types, smtp: SmtpServer, hour: int = 7) -> MorningEmail:
    return MorningEmail(pool, types, SmtpTransport(smtp.url, timeout=5), "crm@example.com", hour)


async def account(conn, types, email_address: str, zone: str) -> str:
    done = await commands.sign_up(conn, types, email_address, FAKE_HASH, zone)
    return done.subject_id


async def contact_with_notes(conn, types, account_id: str, name: str, day: str, notes: str) -> str:
    done = await commands.add_contact(conn, types, account_id, name, "", "")
    await commands.write_next_meeting_notes(conn, types, account_id, done.subject_id, day, notes)
    return done.subject_id


async def project(db_url: str, types) -> None:
    await catch_up(db_url, types, ALL)


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
    tokyo = await account(conn, types, "tokyo@example.com", "Asia/Tokyo")
    new_york = await account(conn, types, "ny@example.com", "America/New_York")
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
    paris = await account(conn, types, "paris@example.com", "Europe/Paris")
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
    paris = await account(conn, types, "paris@example.com", "Europe/Paris")
    contact = await contact_with_notes(conn, types, paris, "Ada", "2026-12-03", "old notes")
    await commands.write_next_meeting_notes(conn, types, paris, contact, "2026-12-03", "new notes")
    await project(db_url, types)
    await job_for(pool, types, smtp).run(at("2026-12-03T06:30:00+00:00"))
    plain = smtp.inbox.messages[0].get_payload()[0].get_payload(decode=True).decode()
    assert "new notes" in plain and "old notes" not in plain


async def test_deleting_the_contact_cancels_the_email(db_url, types, conn, pool, smtp):
    paris = await account(conn, types, "paris@example.com", "Europe/Paris")
    contact = await contact_with_notes(conn, types, paris, "Ada", "2026-12-03", "notes")
    await commands.delete_contact(conn, types, paris, contact)
    await project(db_url, types)
    report = await job_for(pool, types, smtp).run(at("2026-12-03T06:30:00+00:00"))
    assert report.due == [] and smtp.inbox.messages == []


async def test_two_concurrent_runs_send_exactly_one(db_url, types, conn, pool, smtp):
    paris = await account(conn, types, "paris@example.com", "Europe/Paris")
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
    paris = await account(conn, types, "paris@example.com", "Europe/Paris")
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
    paris = await account(conn, types, "paris@example.com", "Europe/Paris")
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
    paris = await account(conn, types, "paris@example.com", "Europe/Paris")
    await contact_with_notes(conn, types, paris, "Ada", "2026-12-03", "notes")
    await project(db_url, types)
    job = job_for(pool, types, smtp)
    await job.run(at("2026-12-03T06:00:00+00:00"))
    await rebuild(db_url, types, ALL)
    assert await pending_rows(conn) == []
    assert not (await job.run(at("2026-12-03T06:30:00+00:00"))).due
    assert len(smtp.inbox.messages) == 1


def test_the_emails_command_dry_run_and_send_due(db_url, types, smtp, tmp_path: Path):
    async def setup() -> None:
        async with await AsyncConnection.connect(db_url, autocommit=True) as c:
            paris = await account(c, types, "paris@example.com", "Europe/Paris")
            await contact_with_notes(c, types, paris, "Ada", "2026-12-03", "notes")

    asyncio.run(setup())  # the projections are brought up to date by the command itself
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CRM_SMTP_URL": smtp.url,
        "CRM_DATA_DIR": str(tmp_path),
    }

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "crm.emails", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

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
            utc = await account(c, types, "utc@example.com", "UTC")
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
