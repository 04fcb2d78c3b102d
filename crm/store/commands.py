"""The commands of the CRM: each checks what must hold now and appends one event.

Every command runs in one transaction: the write-side checks (contact_keys, interaction_keys,
entities) and the event commit together or not at all. Only these tables say whether a contact
exists and whose it is; projections may lag and are never asked.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, errors

from crm.ids import canonical_uuid
from crm.store.entities import claim_account
from crm.store.event_types import EventTypes
from crm.store.events import Appended, append
from crm.store.validation import validate_payload


class CommandRefused(ValueError):
    """A command that cannot be carried out; `field` names the form field at fault, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ContactNotFound(CommandRefused):
    def __init__(self) -> None:
        super().__init__("no such contact")


@dataclass(frozen=True)
class Done:
    """What a command did: the event's position, and the id of what it created or changed."""

    appended: Appended
    subject_id: str


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


def _name_taken() -> CommandRefused:
    return CommandRefused("is already the name of one of your contacts", "name")


def _canonical_contact_id(contact_id: str) -> str:
    """The id as events store it (crm.ids): a projection keyed by the event's string would
    take one contact written in two ways for two; an id written otherwise names no contact."""
    canonical = canonical_uuid(contact_id)
    if canonical is None:
        raise ContactNotFound()
    return canonical


async def _save_contact(
    conn: AsyncConnection[Any],
    types: EventTypes,
    event_type: str,
    key_sql: str,
    account_id: str,
    contact_id: str,
    details: Mapping[str, str],
) -> Done:
    """Write the contact's natural key (key_sql) and its event together, or neither."""
    contact_id = _canonical_contact_id(contact_id)
    payload = {"contact_id": contact_id, "account_id": account_id, **details}
    try:
        async with conn.transaction():
            cursor = await conn.execute(key_sql, (details["name"], contact_id, account_id))
            if cursor.rowcount == 0:  # no such contact in this account
                raise ContactNotFound()
            appended = await append(conn, types, event_type, payload, account_id)
    except errors.UniqueViolation:
        raise _name_taken() from None
    return Done(appended, contact_id)
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




async def add_contact(
    conn: AsyncConnection[Any], types: EventTypes, account_id: str, details: Mapping[str, str]
) -> Done:
    """Add a contact; `details`: the contact-created payload's own fields (name, ...)."""
    return await _save_contact(
        conn,
        types,
        "contact-created",
        "INSERT INTO contact_keys (name, contact_id, account_id) VALUES (%s, %s, %s)",
        account_id,
        str(uuid.uuid4()),
        details,
    )


async def edit_contact(
    conn: AsyncConnection[Any],
    types: EventTypes,
    account_id: str,
    contact_id: str,
    details: Mapping[str, str],
) -> Done:
    return await _save_contact(
        conn,
        types,
        "contact-edited",
        "UPDATE contact_keys SET name = %s WHERE contact_id = %s AND account_id = %s",
        account_id,
        contact_id,
        details,
    )


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
    """Append an event about one of the account's contacts (its notes, a tag): the payload is
    the contact, the account and `fields`; the write side decides the contact is the account's.

    Not for an event whose own command keeps write-side state with it (a contact's name key,
    an interaction's day): that command is the only way to append it.
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
