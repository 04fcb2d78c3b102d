"""projected_contacts: one row per contact, with its last interaction and next-meeting notes."""

from datetime import datetime
from typing import NamedTuple

from crm.projections.base import Projection, Row
from crm.store.events import Event


class Contact(NamedTuple):
    contact_id: str
    account_id: str
    name: str
    description: str
    contact_method: str
    last_interacted_on: str | None
    next_meeting_on: str | None
    next_meeting_notes: str | None
    created_at: datetime
    last_updated_at: datetime


def created(state: Contact | None, event: Event) -> Contact:
    p = event.payload
    return Contact(
        p["contact_id"],
        p["account_id"],
        p["name"],
        p["description"],
        p["contact_method"],
        None,
        None,
        None,
        event.created_at,
        event.created_at,
    )


def edited(state: Contact | None, event: Event) -> Contact | None:
    if state is None:
        return None
    p = event.payload
    return state._replace(
        name=p["name"],
        description=p["description"],
        contact_method=p["contact_method"],
        last_updated_at=event.created_at,
    )


def deleted(state: Contact | None, event: Event) -> None:
    return None


def interaction_recorded(state: Contact | None, event: Event) -> Contact | None:
    if state is None:
        return None
    day = event.payload["interacted_on"]  # ISO dates order as strings do
    latest = day if state.last_interacted_on is None else max(day, state.last_interacted_on)
    return state._replace(last_interacted_on=latest, last_updated_at=event.created_at)


def notes_written(state: Contact | None, event: Event) -> Contact | None:
    if state is None:
        return None
    return state._replace(
        next_meeting_on=event.payload["meeting_on"],
        next_meeting_notes=event.payload["notes"],
        last_updated_at=event.created_at,
    )


def _to_rows(c: Contact) -> list[Row]:
    return [
        (
            c.account_id,
            c.name,
            c.description,
            c.contact_method,
            c.last_interacted_on,
            c.next_meeting_on,
            c.next_meeting_notes,
            None,  # next_meeting_notes_html: the drivers render it from next_meeting_notes
            c.created_at,
            c.last_updated_at,
        )
    ]


def _from_rows(contact_id: str, rows: list[Row]) -> Contact:
    values = rows[0]  # the columns of _to_rows; the rendered HTML (index 7) is derived
    return Contact(contact_id, *values[:7], *values[8:])


CONTACTS: Projection[Contact] = Projection(
    name="contacts",
    table="projected_contacts",
    key_column="contact_id",
    columns=(
        "account_id",
        "name",
        "description",
        "contact_method",
        "last_interacted_on",
        "next_meeting_on",
        "next_meeting_notes",
        "next_meeting_notes_html",
        "created_at",
        "last_updated_at",
    ),
    handlers={
        "contact-created": created,
        "contact-edited": edited,
        "contact-deleted": deleted,
        "interaction-recorded": interaction_recorded,
        "next-meeting-notes-written": notes_written,
    },
    to_rows=_to_rows,
    from_rows=_from_rows,
    describes="its details and notes",
    markdown_columns={"next_meeting_notes_html": "next_meeting_notes"},
)
