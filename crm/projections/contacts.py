"""projected_contacts: one row per contact, with its last interaction and next-meeting notes."""

from datetime import datetime
from typing import Annotated, NamedTuple

from crm.projections.base import Day, HtmlOf, Index, Projection, Uuid
from crm.store.events import Event


class Contact(NamedTuple):
    contact_id: Uuid
    account_id: Uuid
    name: str
    description: str
    contact_method: str
    last_interacted_on: Day | None
    next_meeting_on: Day | None
    next_meeting_notes: str | None
    next_meeting_notes_html: Annotated[str | None, HtmlOf("next_meeting_notes")]
    tags: list[str]  # sorted, each once
    # the contact's own revisions (commands.DETAILS, commands.NOTES), counted as the write side
    # counts them: a form carries the one it was drawn from, so a stale write is noticed
    details_revision: int
    notes_revision: int
    created_at: datetime
    last_updated_at: datetime


def created(state: Contact | None, event: Event) -> Contact:
    p, at = event.payload, event.created_at
    # positional, in the row's order: replay calls this for every contact, and keywords cost 3x
    return Contact(
        p["contact_id"], p["account_id"], p["name"], p["description"], p["contact_method"],
        None, None, None, None, [], 1, 0, at, at,
    )  # fmt: skip


def edited(state: Contact | None, event: Event) -> Contact | None:
    if state is None:
        return None
    p = event.payload
    return state._replace(
        name=p["name"],
        description=p["description"],
        contact_method=p["contact_method"],
        details_revision=state.details_revision + 1,
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
        notes_revision=state.notes_revision + 1,
        last_updated_at=event.created_at,
    )


# A contact's tags, at most: the form refuses more, counting on this projection; a burst that
# outruns it adds events this fold leaves out, so a contact's list (copied by each fold) stays
# bounded whatever a client sends.
MAX_TAGS = 50


def tagged(state: Contact | None, event: Event) -> Contact | None:
    if state is None or event.payload["tag"] in state.tags or len(state.tags) >= MAX_TAGS:
        return state
    tags = sorted([*state.tags, event.payload["tag"]], key=lambda tag: (tag.casefold(), tag))
    return state._replace(tags=tags, last_updated_at=event.created_at)


def untagged(state: Contact | None, event: Event) -> Contact | None:
    if state is None or event.payload["tag"] not in state.tags:
        return state
    tags = [tag for tag in state.tags if tag != event.payload["tag"]]
    return state._replace(tags=tags, last_updated_at=event.created_at)


CONTACTS: Projection[Contact] = Projection(
    name="contacts",
    table="projected_contacts",
    row=Contact,
    handlers={
        "contact-created": created,
        "contact-edited": edited,
        "contact-deleted": deleted,
        "interaction-recorded": interaction_recorded,
        "next-meeting-notes-written": notes_written,
        "contact-tagged": tagged,
        "contact-untagged": untagged,
    },
    indexes=(
        Index("account_lower_name", ("account_id", "lower(name)")),
        Index("account_last_interacted", ("account_id", "last_interacted_on")),
        Index("account_next_meeting", ("account_id", "next_meeting_on")),
    ),
    describes="its details and notes",
)
