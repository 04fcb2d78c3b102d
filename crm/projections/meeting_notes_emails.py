"""projected_meeting_notes_emails: per contact, the next-meeting notes still to be e-mailed."""

from datetime import datetime
from typing import Annotated, NamedTuple

from crm.projections.base import Day, HtmlOf, Index, Projection, Uuid
from crm.store.events import Event


# One row per live contact. A contact whose next-meeting notes still await their e-mail has
# meeting_on, notes and notes_html set; meeting-notes-email-sent clears them. The row itself stays
# so that the projection can keep the contact's current name without reading another projection.
class PendingEmail(NamedTuple):
    contact_id: Uuid
    account_id: Uuid
    contact_name: str
    meeting_on: Day | None  # None: nothing to send
    notes: str | None
    notes_html: Annotated[str | None, HtmlOf("notes")]
    last_updated_at: datetime


def contact_created(state: PendingEmail | None, event: Event) -> PendingEmail:
    p = event.payload
    return PendingEmail(
        p["contact_id"], p["account_id"], p["name"], None, None, None, event.created_at
    )


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


MEETING_NOTES_EMAILS: Projection[PendingEmail] = Projection(
    name="meeting_notes_emails",
    table="projected_meeting_notes_emails",
    row=PendingEmail,
    handlers={
        "contact-created": contact_created,
        "contact-edited": contact_edited,
        "contact-deleted": contact_deleted,
        "next-meeting-notes-written": notes_written,
        "meeting-notes-email-sent": email_sent,
    },
    indexes=(Index("pending", ("meeting_on",), where="meeting_on IS NOT NULL"),),
    describes="its morning e-mail",
)
