"""projected_meeting_notes_emails: per contact, the next-meeting notes still to be e-mailed."""

from datetime import datetime
from typing import NamedTuple

from crm.projections.base import Projection, Row
from crm.store.events import Event


class PendingEmail(NamedTuple):
    account_id: str
    contact_name: str
    meeting_on: str | None  # None: nothing to send
    notes: str | None
    last_updated_at: datetime


def contact_created(state: PendingEmail | None, event: Event) -> PendingEmail:
    p = event.payload
    return PendingEmail(p["account_id"], p["name"], None, None, event.created_at)


def contact_edited(state: PendingEmail | None, event: Event) -> PendingEmail | None:
    if state is None:
        return None
    return state._replace(contact_name=event.payload["name"], last_updated_at=event.created_at)


def contact_deleted(state: PendingEmail | None, event: Event) -> None:
    return None


def notes_written(state: PendingEmail | None, event: Event) -> PendingEmail | None:
    if state is None:
        return None
    p = event.payload
    return state._replace(
        meeting_on=p["meeting_on"], notes=p["notes"], last_updated_at=event.created_at
    )


def email_sent(state: PendingEmail | None, event: Event) -> PendingEmail | None:
    # Notes rewritten for another day after this e-mail went out are still pending.
    if state is None or state.meeting_on != event.payload["meeting_on"]:
        return state
    return state._replace(meeting_on=None, notes=None, last_updated_at=event.created_at)


def _to_rows(s: PendingEmail) -> list[Row]:
    # notes_html (None here) is rendered from notes by the drivers
    return [(s.account_id, s.contact_name, s.meeting_on, s.notes, None, s.last_updated_at)]


def _from_rows(contact_id: str, rows: list[Row]) -> PendingEmail:
    account_id, name, meeting_on, notes, _html, updated_at = rows[0]
    return PendingEmail(account_id, name, meeting_on, notes, updated_at)


MEETING_NOTES_EMAILS: Projection[PendingEmail] = Projection(
    name="meeting_notes_emails",
    table="projected_meeting_notes_emails",
    key_column="contact_id",
    columns=(
        "account_id",
        "contact_name",
        "meeting_on",
        "notes",
        "notes_html",
        "last_updated_at",
    ),
    handlers={
        "contact-created": contact_created,
        "contact-edited": contact_edited,
        "contact-deleted": contact_deleted,
        "next-meeting-notes-written": notes_written,
        "meeting-notes-email-sent": email_sent,
    },
    to_rows=_to_rows,
    from_rows=_from_rows,
    describes="its morning e-mail",
    markdown_columns={"notes_html": "notes"},
)
