"""Each projection's position, and the news that it advanced."""

from typing import Any

import orjson
from psycopg import AsyncConnection

from crm.names import PROJECTIONS_CHANNEL as CHANNEL

# NOTIFY payloads stop at 8000 bytes; past this many accounts say "any account" instead.
_MAX_ACCOUNTS_LISTED = 100


async def register(conn: AsyncConnection[Any], name: str, definition: str | None) -> bool:
    """Add the projection at position 0 if it is new (True). `definition` is what its table is
    built by; None for a table still to be built from the stream (crm/projections/base.py)."""
    cursor = await conn.execute(
        "INSERT INTO projections (name, definition) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (name, definition),
    )
    return cursor.rowcount == 1


async def stored_definition(conn: AsyncConnection[Any], name: str) -> str | None:
    cursor = await conn.execute("SELECT definition FROM projections WHERE name = %s", (name,))
    row = await cursor.fetchone()
    return None if row is None else row[0]


async def record_definition(conn: AsyncConnection[Any], name: str, definition: str | None) -> None:
    """Record what the projection's table is now built by (after a rebuild swapped it in)."""
    await conn.execute("UPDATE projections SET definition = %s WHERE name = %s", (definition, name))


async def lock_position(conn: AsyncConnection[Any], name: str) -> int:
    """The projection's position, row-locked until the caller's transaction ends.

    Whoever applies a batch holds this lock, so two appliers can never apply the same events,
    whatever else goes wrong with leadership.
    """
    cursor = await conn.execute(
        "SELECT position FROM projections WHERE name = %s FOR UPDATE", (name,)
    )
    row = await cursor.fetchone()
    if row is None:
        raise LookupError(f"projection {name!r} is not registered")
    return int(row[0])


async def record_position(
    conn: AsyncConnection[Any], name: str, position: int, accounts: set[str] | None
) -> None:
    """Store the new position and tell every process, at commit, that it advanced."""
    await conn.execute(
        "UPDATE projections SET position = %s, last_updated_at = now() WHERE name = %s",
        (position, name),
    )
    listed = sorted(accounts) if accounts is not None else None
    if listed is not None and len(listed) > _MAX_ACCOUNTS_LISTED:
        listed = None
    payload = orjson.dumps({"projection": name, "position": position, "accounts": listed})
    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload.decode()))


async def current_positions(conn: AsyncConnection[Any]) -> dict[str, int]:
    cursor = await conn.execute("SELECT name, position FROM projections")
    return {name: int(position) for name, position in await cursor.fetchall()}
