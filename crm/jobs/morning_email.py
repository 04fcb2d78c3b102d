"""The morning e-mail: on the day of a meeting, at CRM_EMAIL_HOUR in the account's time zone,
send the account holder their notes for that contact, once.

Rule: an e-mail is due while, in the account's time zone, it is the meeting day and the hour has
come. A morning that passed while the app was down is made up later the same day; a meeting day
that has passed is never sent late (the notes would be useless, and a surprise).

Exactly once, as far as SMTP allows (docs/architecture.md, "The morning e-mail"):
1. claim the (contact, meeting day) in meeting_email_claims, with a lease: one sender at a time;
2. send over SMTP with a Message-ID derived from account, contact and day;
3. in one transaction, mark the claim sent and append meeting-notes-email-sent.
An SMTP failure releases the claim with a backoff. A process that dies between 2 and 3 leaves a
claim whose lease runs out; the next run sends again, with the same Message-ID, so mail clients
that deduplicate by Message-ID show it once. That window is the only way to get two e-mails.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from crm.jobs.mail import Transport
from crm.store.entities import ensure_process
from crm.store.event_types import EventTypes
from crm.store.events import append

log = logging.getLogger(__name__)
PROCESS_NAME = "morning-email"
LEASE = timedelta(minutes=5)
MAX_BACKOFF = timedelta(hours=1)


@dataclass(frozen=True)
class DueEmail:
    contact_id: str
    account_id: str
    to: str
    contact_name: str
    meeting_on: str
    notes: str
    notes_html: str

    def message_id(self, sender_domain: str) -> str:
        return (
            f"<meeting-notes.{self.account_id}.{self.contact_id}.{self.meeting_on}@{sender_domain}>"
        )


@dataclass(frozen=True)
class RunReport:
    due: list[DueEmail]
    sent: list[DueEmail]
    failed: list[tuple[DueEmail, str]]
    skipped: list[DueEmail]  # claimed by another run, or already sent


async def due_emails(conn: AsyncConnection[Any], now: datetime, hour: int) -> list[DueEmail]:
    # Every time zone's date is within a day of UTC's: read those meetings, then decide in
    # Python, with the same zoneinfo data that checked the time zone at sign-up.
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(
        "SELECT e.contact_id::text, e.account_id::text, a.email AS to, a.time_zone,"
        " e.contact_name, e.meeting_on, e.notes, e.notes_html"
        " FROM projected_meeting_notes_emails e"
        " JOIN projected_accounts a USING (account_id)"
        " WHERE e.meeting_on BETWEEN %(day)s::date - 1 AND %(day)s::date + 1"
        " ORDER BY e.meeting_on, e.contact_id",
        {"day": now.astimezone(UTC).date()},
    )
    due = []
    for row in await cursor.fetchall():
        local = now.astimezone(ZoneInfo(row.pop("time_zone")))
        if local.date() == row["meeting_on"] and local.hour >= hour:
            due.append(DueEmail(**{**row, "meeting_on": row["meeting_on"].isoformat()}))
    return due


def compose(email: DueEmail, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = f"Your meeting with {email.contact_name} today ({email.meeting_on})"
    message["From"] = sender
    message["To"] = email.to
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = email.message_id(sender.rpartition("@")[2] or "crm.local")
    message.set_content(
        f"You meet {email.contact_name} today, {email.meeting_on}.\n\n"
        f"Your notes:\n\n{email.notes}\n\n-- \ncrm\n"
    )
    message.add_alternative(
        f"<p>You meet <strong>{_escape(email.contact_name)}</strong> today, "
        f"{email.meeting_on}.</p><h2>Your notes</h2>{email.notes_html}"
        '<p style="color:#666">-- crm</p>',
        subtype="html",
    )
    return message


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def claim(
    conn: AsyncConnection[Any], email: DueEmail, message_id: str, now: datetime
) -> bool:
    """Take the lease on this e-mail; False if it is sent, leased, or backing off."""
    cursor = await conn.execute(
        "INSERT INTO meeting_email_claims AS c"
        " (contact_id, meeting_on, account_id, message_id, status, attempts, locked_until)"
        " VALUES (%(contact)s, %(day)s, %(account)s, %(mid)s, 'sending', 1, %(lease)s)"
        " ON CONFLICT (contact_id, meeting_on) DO UPDATE"
        " SET status = 'sending', attempts = c.attempts + 1, locked_until = excluded.locked_until"
        " WHERE c.status <> 'sent' AND c.locked_until <= %(now)s"
        " AND c.next_attempt_at <= %(now)s"
        " RETURNING c.attempts",
        {
            "contact": email.contact_id,
            "day": email.meeting_on,
            "account": email.account_id,
            "mid": message_id,
            "lease": now + LEASE,
            "now": now,
        },
    )
    return await cursor.fetchone() is not None


async def release_after_failure(
    conn: AsyncConnection[Any], email: DueEmail, now: datetime, error: str
) -> None:
    await conn.execute(
        "UPDATE meeting_email_claims SET status = 'pending', locked_until = '-infinity',"
        " next_attempt_at = %(now)s + least(%(cap)s, interval '1 minute' * 2 ^ (attempts - 1)),"
        " last_error = %(error)s WHERE contact_id = %(contact)s AND meeting_on = %(day)s",
        {
            "now": now,
            "cap": MAX_BACKOFF,
            "error": error[:1000],
            "contact": email.contact_id,
            "day": email.meeting_on,
        },
    )


async def record_sent(
    conn: AsyncConnection[Any], types: EventTypes, email: DueEmail, message_id: str
) -> None:
    async with conn.transaction():
        await conn.execute(
            "UPDATE meeting_email_claims SET status = 'sent', sent_at = now(), last_error = NULL"
            " WHERE contact_id = %s AND meeting_on = %s",
            (email.contact_id, email.meeting_on),
        )
        process = await ensure_process(conn, PROCESS_NAME)
        payload = {
            "contact_id": email.contact_id,
            "account_id": email.account_id,
            "meeting_on": email.meeting_on,
            "message_id": message_id,
        }
        await append(conn, types, "meeting-notes-email-sent", payload, process)


@dataclass
class MorningEmail:
    """The job, with what it needs; run() is what the scheduler and the CLI call."""

    pool: AsyncConnectionPool[AsyncConnection[Any]]
    types: EventTypes
    transport: Transport
    sender: str
    hour: int
    # awaited before each run: in the app, until the projections it reads have caught up, so
    # that notes edited a moment before the hour are the ones sent
    before_run: Callable[[], Awaitable[None]] | None = None
    last_run: tuple[datetime, RunReport] | None = None  # for /health

    async def due(self, now: datetime) -> list[DueEmail]:
        async with self.pool.connection() as conn:
            return await due_emails(conn, now, self.hour)

    async def run(self, now: datetime | None = None) -> RunReport:
        now = now or datetime.now().astimezone()
        if self.before_run is not None:
            await self.before_run()
        due = await self.due(now)
        report = RunReport(due, [], [], [])
        for email in due:
            await self._send_one(email, now, report)
        self.last_run = (now, report)
        return report

    async def _send_one(self, email: DueEmail, now: datetime, report: RunReport) -> None:
        message = compose(email, self.sender)
        message_id = str(message["Message-ID"])
        async with self.pool.connection() as conn:
            await conn.set_autocommit(True)
            try:
                if not await claim(conn, email, message_id, now):
                    report.skipped.append(email)
                    return
                try:
                    # smtplib blocks: keep it off the event loop, so web requests never wait
                    await asyncio.to_thread(self.transport.send, message)
                except Exception as error:
                    log.warning(
                        "morning e-mail to %s about %s failed, will retry: %r",
                        email.to,
                        email.contact_name,
                        error,
                    )
                    await release_after_failure(conn, email, now, repr(error))
                    report.failed.append((email, repr(error)))
                    return
                await record_sent(conn, self.types, email, message_id)
                log.info(
                    "sent the morning e-mail to %s about %s (%s)",
                    email.to,
                    email.contact_name,
                    email.meeting_on,
                )
                report.sent.append(email)
            finally:
                await conn.set_autocommit(False)
