"""Entities: who causes events. An account, or a named system process such as the e-mail job."""

import uuid
from typing import Any

from psycopg import AsyncConnection

# System processes get fixed ids derived from their names, so every process and every database
# agrees on them without a lookup.
_PROCESS_NAMESPACE = uuid.UUID("6f0c1d43-63a8-4b8c-9a51-6b9d1c2f0e11")


def process_id(name: str) -> uuid.UUID:
    return uuid.uuid5(_PROCESS_NAMESPACE, name)


async def ensure_process(conn: AsyncConnection[Any], name: str) -> uuid.UUID:
    entity_id = process_id(name)
    await conn.execute(
        "INSERT INTO entities (id, kind, name) VALUES (%s, 'process', %s) ON CONFLICT DO NOTHING",
        (entity_id, name),
    )
    return entity_id


async def claim_account(conn: AsyncConnection[Any], email: str) -> uuid.UUID | None:
    """Reserve an e-mail for a new account; None when another account already has it.

    Runs in the caller's transaction, so the reservation and the account-created event commit
    (or vanish) together.
    """
    cursor = await conn.execute(
        "INSERT INTO entities (id, kind, name) VALUES (%s, 'account', %s)"
        " ON CONFLICT (kind, name) DO NOTHING RETURNING id",
        (uuid.uuid4(), email.lower()),
    )
    row = await cursor.fetchone()
    return None if row is None else row[0]
