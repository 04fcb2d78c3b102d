"""Who caused events, in words: "you" for the account, a system process by its name."""

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection

from crm.store.events import Event


async def actors_of(
    conn: AsyncConnection[Any], events: Sequence[Event], account_id: str
) -> dict[str, str]:
    """Each causing entity's name, by entity id."""
    cursor = await conn.execute(
        "SELECT id::text, kind, name FROM entities WHERE id = ANY(%s::uuid[])",
        (sorted({event.entity_id for event in events}),),
    )
    return {
        entity: "you" if entity == account_id else f"{name} ({kind})"
        for entity, kind, name in await cursor.fetchall()
    }
