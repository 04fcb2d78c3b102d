"""The live driver: apply a batch of events to a projection's table, touching only its keys."""

from typing import Any

from psycopg import AsyncConnection

from crm.projections.base import Projection
from crm.projections.tables import copy_states, delete_keys, load_states
from crm.store.events import Event


async def apply_events(
    conn: AsyncConnection[Any],
    projection: Projection[Any],
    events: list[Event],
    table: str | None = None,
) -> set[str]:
    """Fold the events into the rows they touch; return the accounts whose rows changed.

    Runs in the caller's transaction, which also records the projection's new position.
    """
    relevant = [event for event in events if projection.handles(event)]
    if not relevant:
        return set()
    table = table or projection.table
    keys = list(dict.fromkeys(projection.key_of(event) for event in relevant))
    states = await load_states(conn, projection, table, keys)
    for event in relevant:
        key = projection.key_of(event)
        states[key] = projection.fold(states.get(key), event)
    await delete_keys(conn, projection, table, keys)
    await copy_states(conn, projection, table, states)
    return {event.payload["account_id"] for event in relevant}
