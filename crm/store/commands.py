"""The commands of the CRM: each checks what must hold now and appends one event.

Every command runs in one transaction: the write-side checks (contact_keys, interaction_keys,
entities) and the event commit together or not at all. Only these tables say whether a contact
exists and whose it is; projections may lag and are never asked.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from psycopg import AsyncConnection, errors, sql

from crm.ids import canonical_uuid
from crm.store.entities import claim_account
from crm.store.event_types import EventTypes
from crm.store.events import Appended, append
from crm.store.revisions import Clash, Merged, merge
from crm.store.validation import validate_payload


class CommandRefused(ValueError):
    """A command that cannot be carried out; `field` names the form field at fault, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ContactNotFound(CommandRefused):
    def __init__(self) -> None:
        super().__init__("no such contact")


class WriteConflict(CommandRefused):
    """A write based on an older version changed fields that were changed differently since:
    nothing is written. `clashes`: by payload field, theirs and mine; `fields`: what the form
    should show now (the current version with this write's changes, mine where they clash);
    `revision`: the current one, which a form re-sent deliberately is based on."""

    def __init__(self, merged: Merged, revision: int) -> None:
        super().__init__(
            "was changed elsewhere since this form was opened", next(iter(merged.clashes))
        )
        self.clashes: dict[str, Clash] = merged.clashes
        self.fields = merged.fields
        self.revision = revision


class UnknownRevision(CommandRefused):
    """A based_on this contact never had: newer than its current revision, or below the first."""

    def __init__(self, what: str, based_on: int, first: int, revision: int) -> None:
        super().__init__(
            f"must be a revision of this contact's {what}, from {first} to {revision} (the"
            f" current one); {based_on} is not",
            "based_on",
        )


@dataclass(frozen=True)
class Done:
    """What a command did: the event's position, and the id of what it created or changed.

    A command that keeps a revision of what it wrote also says which revision it wrote, and the
    fields it wrote (after filling in and merging what the write did not change).
    """

    appended: Appended
    subject_id: str
    revision: int | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


async def sign_up(
    conn: AsyncConnection[Any], types: EventTypes, email: str, password_hash: str, time_zone: str
) -> Done:
    async with conn.transaction():
        account_id = await claim_account(conn, email)
        if account_id is None:
            raise CommandRefused("already belongs to an account", "email")
        payload = {
            "account_id": str(account_id),
            "email": email.lower(),
            "password_hash": password_hash,
            "time_zone": time_zone,
        }
        appended = await append(conn, types, "account-created", payload, account_id)
    return Done(appended, str(account_id))


async def change_account(
    conn: AsyncConnection[Any],
    types: EventTypes,
    event_type: str,
    account_id: str,
    fields: Mapping[str, Any],
) -> Done:
    """Append an event about the account itself (a new password, a time zone): the payload is
    the account and `fields`. The account is the one a session vouches for; the entities row
    says it exists, and its lock orders two changes of one account."""
    async with conn.transaction():
        cursor = await conn.execute(
            "SELECT 1 FROM entities WHERE id = %s AND kind = 'account' FOR UPDATE", (account_id,)
        )
        if await cursor.fetchone() is None:
            raise CommandRefused("no such account")
        payload = {"account_id": account_id, **fields}
        appended = await append(conn, types, event_type, payload, account_id)
    return Done(appended, account_id)


def _name_taken() -> CommandRefused:
    return CommandRefused("is already the name of one of your contacts", "name")


def _canonical_contact_id(contact_id: str) -> str:
    """The id as events store it (crm.ids): a projection keyed by the event's string would
    take one contact written in two ways for two; an id written otherwise names no contact."""
    canonical = canonical_uuid(contact_id)
    if canonical is None:
        raise ContactNotFound()
    return canonical


async def add_contact(
    conn: AsyncConnection[Any], types: EventTypes, account_id: str, details: Mapping[str, str]
) -> Done:
    """Add a contact; `details`: the contact-created payload's own fields (name, ...). Its key
    row starts at details revision 1 and notes revision 0 (the columns' defaults)."""
    contact_id = str(uuid.uuid4())
    payload = {"contact_id": contact_id, "account_id": account_id, **details}
    try:
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO contact_keys (name, contact_id, account_id) VALUES (%s, %s, %s)",
                (details["name"], contact_id, account_id),
            )
            appended = await append(conn, types, "contact-created", payload, account_id)
    except errors.UniqueViolation:
        raise _name_taken() from None
    return Done(appended, contact_id, DETAILS.first, dict(details))


async def edit_contact(
    conn: AsyncConnection[Any],
    types: EventTypes,
    account_id: str,
    contact_id: str,
    details: Mapping[str, str],
    based_on: int | None = None,
) -> Done:
    """Replace the contact's details: `details` are the fields sent (absent ones keep their
    current values), `based_on` the details revision the form was opened at (None: the fields
    sent overwrite). An older one is merged (see _resolve)."""
    try:
        async with conn.transaction():
            contact_id, revision = await _lock_revision(conn, account_id, contact_id, DETAILS)
            fields = await _resolve(conn, types, DETAILS, contact_id, revision, based_on, details)
            await conn.execute(
                sql.SQL(
                    "UPDATE contact_keys SET name = %s, {0} = {0} + 1 WHERE contact_id = %s"
                ).format(sql.Identifier(DETAILS.column)),
                (fields["name"], contact_id),
            )
            payload = {"contact_id": contact_id, "account_id": account_id, **fields}
            appended = await append(conn, types, "contact-edited", payload, account_id)
    except errors.UniqueViolation:
        raise _name_taken() from None
    return Done(appended, contact_id, revision + 1, fields)


async def write_notes(
    conn: AsyncConnection[Any],
    types: EventTypes,
    account_id: str,
    contact_id: str,
    notes: Mapping[str, str],
    based_on: int | None = None,
) -> Done:
    """Write the notes for the next meeting (`notes`: meeting_on, notes; absent ones keep their
    current values), based on the notes revision `based_on`, like edit_contact."""
    async with conn.transaction():
        contact_id, revision = await _lock_revision(conn, account_id, contact_id, NOTES)
        fields = await _resolve(conn, types, NOTES, contact_id, revision, based_on, notes)
        await conn.execute(
            sql.SQL("UPDATE contact_keys SET {0} = {0} + 1 WHERE contact_id = %s").format(
                sql.Identifier(NOTES.column)
            ),
            (contact_id,),
        )
        payload = {"contact_id": contact_id, "account_id": account_id, **fields}
        appended = await append(conn, types, "next-meeting-notes-written", payload, account_id)
    return Done(appended, contact_id, revision + 1, fields)


@dataclass(frozen=True)
class Revised:
    """A part of a contact written as a whole and counted in contact_keys: each of its events
    carries all of `fields`, so the version at revision n is the n-th event's payload."""

    what: str  # how messages name it
    column: str  # its revision in contact_keys
    event_types: tuple[str, ...]  # the events that write it, each one revision
    fields: tuple[str, ...]
    first: int  # the lowest revision a form can be based on

    def blank(self) -> dict[str, Any]:
        """The version at revision 0, before any event: as a blank form shows it."""
        return {name: "" for name in self.fields}


DETAILS = Revised(
    "details",
    "details_revision",
    ("contact-created", "contact-edited"),
    ("name", "description", "contact_method"),
    1,
)
NOTES = Revised(
    "next-meeting notes",
    "notes_revision",
    ("next-meeting-notes-written",),
    ("meeting_on", "notes"),
    0,
)


async def _lock_revision(
    conn: AsyncConnection[Any], account_id: str, contact_id: str, part: Revised
) -> tuple[str, int]:
    """The contact's canonical id and the part's current revision, its key row locked until the
    transaction ends; refuses a contact that does not exist or is another account's."""
    contact_id = _canonical_contact_id(contact_id)
    query = sql.SQL(
        "SELECT {} FROM contact_keys WHERE contact_id = %s AND account_id = %s FOR UPDATE"
    ).format(sql.Identifier(part.column))
    row = await (await conn.execute(query, (contact_id, account_id))).fetchone()
    if row is None:
        raise ContactNotFound()
    return contact_id, int(row[0])


async def _resolve(
    conn: AsyncConnection[Any],
    types: EventTypes,
    part: Revised,
    contact_id: str,
    revision: int,
    based_on: int | None,
    mine: Mapping[str, str],
) -> dict[str, Any]:
    """What to write: `mine` as sent when it is complete and based on the current revision (or
    on none); absent fields filled in from the current version; a write based on an older
    revision merged onto the current version field by field, or refused (WriteConflict)."""
    if based_on is not None and not part.first <= based_on <= revision:
        raise UnknownRevision(part.what, based_on, part.first, revision)
    if based_on in (None, revision) and set(part.fields) <= set(mine):
        return dict(mine)
    current = await _version(conn, types, part, contact_id, revision, latest=True)
    if based_on in (None, revision):
        return {**current, **mine}
    assert based_on is not None
    merged = merge(await _version(conn, types, part, contact_id, based_on), current, mine)
    if merged.clashes:
        raise WriteConflict(merged, revision)
    return merged.fields


async def _version(
    conn: AsyncConnection[Any],
    types: EventTypes,
    part: Revised,
    contact_id: str,
    revision: int,
    latest: bool = False,
) -> dict[str, Any]:
    """The part's fields at a revision, from the contact's own events (the n-th event of the
    part's types is revision n): found through events_contact_id (sql/017), in the contact's
    order, reading no other contact's events; `latest` reads the last one from the end."""
    if revision == 0:
        return part.blank()
    type_ids = [id_ for (name, _), id_ in types.ids.items() if name in part.event_types]
    order, skip = ("DESC", 0) if latest else ("", revision - 1)
    cursor = await conn.execute(
        sql.SQL(
            "SELECT payload::text FROM events"
            " WHERE payload ->> 'contact_id' = %s AND event_type_id = ANY(%s)"
            " ORDER BY id {} OFFSET %s LIMIT 1"
        ).format(sql.SQL(order)),
        (contact_id, type_ids, skip),
    )
    row = await cursor.fetchone()
    assert row is not None, f"{part.what} revision {revision} of {contact_id} has no event"
    payload = orjson.loads(row[0])
    return {name: payload[name] for name in part.fields}


_OWN_CONTACT = "SELECT 1 FROM contact_keys WHERE contact_id = %s AND account_id = %s"


async def owns_contact(conn: AsyncConnection[Any], account_id: str, contact_id: str) -> bool:
    """Whether the account has this contact now: the write side's answer, never behind.

    For a form about a contact that runs no command (it was invalid); a command checks the
    contact itself, in its own transaction.
    """
    canonical = canonical_uuid(contact_id)
    if canonical is None:
        return False
    cursor = await conn.execute(_OWN_CONTACT, (canonical, account_id))
    return await cursor.fetchone() is not None


async def _lock_own_contact(conn: AsyncConnection[Any], account_id: str, contact_id: str) -> str:
    """The contact's canonical id, row-locked; refuses a contact that does not exist or is
    another account's (both look the same)."""
    contact_id = _canonical_contact_id(contact_id)
    cursor = await conn.execute(_OWN_CONTACT + " FOR UPDATE", (contact_id, account_id))
    if await cursor.fetchone() is None:
        raise ContactNotFound()
    return contact_id


async def delete_contact(
    conn: AsyncConnection[Any], types: EventTypes, account_id: str, contact_id: str
) -> Done:
    async with conn.transaction():
        contact_id = await _lock_own_contact(conn, account_id, contact_id)
        await conn.execute("DELETE FROM contact_keys WHERE contact_id = %s", (contact_id,))
        payload = {"contact_id": contact_id, "account_id": account_id}
        appended = await append(conn, types, "contact-deleted", payload, account_id)
    return Done(appended, contact_id)


_KEPT_BY_THEIR_OWN_COMMAND = frozenset(
    {
        "account-created",
        "contact-created",
        "contact-edited",
        "contact-deleted",
        "interaction-recorded",
        "next-meeting-notes-written",
    }
)


async def append_about_contact(
    conn: AsyncConnection[Any],
    types: EventTypes,
    event_type: str,
    account_id: str,
    contact_id: str,
    fields: Mapping[str, Any],
) -> Done:
    """Append an event about one of the account's contacts (a tag): the payload is
    the contact, the account and `fields`; the write side decides the contact is the account's.

    Not for an event whose own command keeps write-side state with it (a contact's name key,
    an interaction's day, a revision): that command is the only way to append it.
    """
    if event_type in _KEPT_BY_THEIR_OWN_COMMAND:
        raise ValueError(f"{event_type} is appended by its own command, which keeps its keys")
    async with conn.transaction():
        contact_id = await _lock_own_contact(conn, account_id, contact_id)
        payload = {"contact_id": contact_id, "account_id": account_id, **fields}
        appended = await append(conn, types, event_type, payload, account_id)
    return Done(appended, contact_id)


async def record_interaction(
    conn: AsyncConnection[Any],
    types: EventTypes,
    account_id: str,
    contact_id: str,
    fields: Mapping[str, str],
    replace: bool = False,
) -> Done:
    """Record what happened on a day (`fields`: interacted_on, notes). The key is contact + day:
    a day that already has one is refused unless `replace` says to replace that day's notes.

    interaction_keys answers, in this transaction: exact at once, however far the interactions
    projection lags. The contact's row lock serializes two records for the same contact.
    """
    payload = {
        "contact_id": _canonical_contact_id(contact_id),
        "account_id": account_id,
        **fields,
    }
    # before the day is claimed: a bad date is a field error, not a database error
    validate_payload(types.get("interaction-recorded"), payload)
    async with conn.transaction():
        contact_id = await _lock_own_contact(conn, account_id, contact_id)
        if not await _claim_day(conn, contact_id, payload["interacted_on"]) and not replace:
            raise CommandRefused(
                "already has an interaction with this contact; tick "
                "'Replace that day's notes' to update it",
                "interacted_on",
            )
        appended = await append(conn, types, "interaction-recorded", payload, account_id)
    return Done(appended, contact_id)


async def _claim_day(conn: AsyncConnection[Any], contact_id: str, day: str) -> bool:
    """Add the contact's key for a day; False when the day already had one."""
    cursor = await conn.execute(
        "INSERT INTO interaction_keys (contact_id, interacted_on) VALUES (%s, %s)"
        " ON CONFLICT DO NOTHING",
        (contact_id, day),
    )
    return cursor.rowcount == 1
