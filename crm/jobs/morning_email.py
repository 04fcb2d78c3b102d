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

One e-mail never stops the others: whatever goes wrong with one (it cannot be composed, the
server refuses it, the database fails while recording it) is reported with its reason and the run
goes on. A message that cannot be composed is released with the same backoff as a refused one:
the retry is cheap, an edit of the contact or account can fix it, and the backoff keeps it from
filling the log every minute.
"""

import asyncio
import html
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from email.message import EmailMessage
from email.utils import formatdate
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from crm.jobs.mail import Transport, header_text, one_mailbox, refuse_injected_headers
from crm.store.entities import ensure_process
from crm.store.event_types import EventTypes
from crm.store.events import append
from crm.text import one_line

log = logging.getLogger(__name__)
PROCESS_NAME = "morning-email"
LEASE = timedelta(minutes=5)
MAX_BACKOFF = timedelta(hours=1)
NAME_LIMIT = 200  # characters of a contact's name in the body: contact-created's maxLength
SUBJECT_NAME_LIMIT = 80  # and in the Subject, which stays one line in a list of messages
NO_NAME = "(no name)"  # a name of nothing but control characters


@dataclass(frozen=True)
class DueEmail:
    contact_id: str
    account_id: str
    to: str
    contact_name: str
    meeting_on: str
    notes: str
    notes_html: str
    last_error: str | None = None  # why the last attempt failed, if it did and none succeeded

    def message_id(self, sender_domain: str) -> str:
        return (
            f"<meeting-notes.{self.account_id}.{self.contact_id}.{self.meeting_on}@{sender_domain}>"
        )


@dataclass(frozen=True)
class RunReport:
    due: list[DueEmail]
    sent: list[DueEmail]
    failed: list[tuple[DueEmail, str]]  # in this run, with the reason
    skipped: list[DueEmail]  # claimed by another run, already sent, or backing off
    error: str | None = None  # why the run stopped before looking at every due e-mail

    @property
    def failing(self) -> list[tuple[DueEmail, str]]:
        """Due e-mails whose last attempt failed: in this run, or before and now backing off."""
        before = [(email, email.last_error) for email in self.skipped if email.last_error]
        return self.failed + before


async def due_emails(conn: AsyncConnection[Any], now: datetime, hour: int) -> list[DueEmail]:
    # Every time zone's date is within a day of UTC's: read those meetings, then decide in
    # Python, with the same zoneinfo data that checked the time zone at sign-up.
    cursor = conn.cursor(row_factory=dict_row)
    await cursor.execute(
        "SELECT e.contact_id::text, e.account_id::text, a.email AS to, a.time_zone,"
        " e.contact_name, e.meeting_on, e.notes, e.notes_html, c.last_error"
        " FROM projected_meeting_notes_emails e"
        " JOIN projected_accounts a USING (account_id)"
        " LEFT JOIN meeting_email_claims c"
        " ON c.contact_id = e.contact_id AND c.meeting_on = e.meeting_on AND c.status <> 'sent'"
        " WHERE e.meeting_on BETWEEN %(day)s::date - 1 AND %(day)s::date + 1"
        " ORDER BY e.meeting_on, e.contact_id",
        {"day": now.astimezone(UTC).date()},
    )
    due = []
    for row in await cursor.fetchall():
        local = now.astimezone(_zone(row.pop("time_zone")))
        if local.date() == row["meeting_on"] and local.hour >= hour:
            due.append(DueEmail(**{**row, "meeting_on": row["meeting_on"].isoformat()}))
    return due


@cache
def _zone(name: str) -> tzinfo:
    """The account's time zone; UTC if this server's tzdata does not know it (a zone can be
    dropped from tzdata, and account-created's schema takes any string): one account's zone
    must not stop the run for everyone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        log.warning("unknown time zone %r: its e-mails go out by UTC", name)
        return UTC


def compose(email: DueEmail, sender: str) -> EmailMessage:
    """The message for one due e-mail.

    The contact's name is whatever its event's schema allowed (line breaks, control and bidi
    characters, 200 characters, RFC 2047 encoded words): it is made one clean line everywhere,
    with no encoded word in the Subject, and escaped in HTML. The account's address is used as
    stored, never rewritten: one that is not a valid header value, or that would be written as
    more than one header, makes this raise, and the job reports that e-mail as failed.
    """
    name = one_line(email.contact_name, NAME_LIMIT) or NO_NAME
    short_name = header_text(email.contact_name, SUBJECT_NAME_LIMIT) or NO_NAME
    message = EmailMessage()
    message["Subject"] = f"Your meeting with {short_name} today ({email.meeting_on})"
    message["From"] = sender
    message["To"] = one_mailbox(email.to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = email.message_id(_domain(sender))
    message.set_content(
        f"You meet {name} today, {email.meeting_on}.\n\n"
        f"Your notes:\n\n{_encodable(email.notes)}\n\n-- \ncrm\n"
    )
    message.add_alternative(
        f"<p>You meet <strong>{html.escape(name)}</strong> today, "
        f"{email.meeting_on}.</p><h2>Your notes</h2>{_encodable(email.notes_html)}"
        '<p style="color:#666">-- crm</p>',
        subtype="html",
    )
    refuse_injected_headers(message)
    return message


def compose_error(email: DueEmail, sender: str) -> str | None:
    """Why compose() fails for this e-mail, or None: what a dry run reports."""
    try:
        compose(email, sender)
    except Exception as error:
        return _cannot("compose", error)
    return None


def _domain(sender: str) -> str:
    return sender.rpartition("@")[2] or "crm.local"


def _encodable(text: str) -> str:
    # a lone surrogate cannot be encoded as UTF-8; PostgreSQL never stores one, a str can hold it
    return text.encode("utf-8", "replace").decode("utf-8")


def _cannot(step: str, error: Exception) -> str:
    return f"cannot {step}: {error!r}"


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
        """Send what is due; never raises for one e-mail, and always records last_run."""
        now = now or datetime.now().astimezone()
        report = RunReport([], [], [], [])
        try:
            if self.before_run is not None:
                await self.before_run()
            report.due.extend(await self.due(now))
            for email in report.due:
                await self._send_isolated(email, now, report)
        except Exception as error:
            log.exception("the morning e-mail run at %s stopped", now.isoformat())
            report = replace(report, error=repr(error))
        self.last_run = (now, report)
        return report

    async def _send_isolated(self, email: DueEmail, now: datetime, report: RunReport) -> None:
        try:
            await self._send_one(email, now, report)
        except Exception as error:
            # e.g. the database failed while claiming or recording: the claim's lease decides
            # when it is tried again, as after a crash
            log.exception("the morning e-mail about contact %s failed", email.contact_id)
            report.failed.append((email, f"unexpected: {error!r}"))

    async def _send_one(self, email: DueEmail, now: datetime, report: RunReport) -> None:
        message_id = email.message_id(_domain(self.sender))
        async with self.pool.connection() as conn:
            await conn.set_autocommit(True)
            try:
                if not await claim(conn, email, message_id, now):
                    report.skipped.append(email)
                    return
                if reason := await self._compose_and_send(email):
                    log.warning(
                        "the morning e-mail about contact %s (%s) failed, will retry: %s",
                        email.contact_id,
                        email.meeting_on,
                        reason,
                    )
                    await release_after_failure(conn, email, now, reason)
                    report.failed.append((email, reason))
                    return
                await record_sent(conn, self.types, email, message_id)
                log.info(
                    "sent the morning e-mail about contact %s (%s)",
                    email.contact_id,
                    email.meeting_on,
                )
                report.sent.append(email)
            finally:
                await conn.set_autocommit(False)

    async def _compose_and_send(self, email: DueEmail) -> str | None:
        """None once the server accepted the message, else why not."""
        try:
            message = compose(email, self.sender)
        except Exception as error:
            return _cannot("compose", error)
        try:
            # smtplib blocks: keep it off the event loop, so web requests never wait
            await asyncio.to_thread(self.transport.send, message)
        except Exception as error:
            return _cannot("send", error)
        return None
