"""The live driver: apply a batch of events to a projection's table, touching only its keys."""

from typing import Any

from psycopg import AsyncConnection

from crm.projections.base import Projection
from crm.projections.tables import copy_rows, delete_keys, load_states, render_rows, rows_of
from crm.rendering import Renderer
from crm.store.events import Event


async def apply_events(
    conn: AsyncConnection[Any],
    projection: Projection[Any],
    events: list[Event],
    renderer: Renderer,
    table: str | None = None,
) -> set[str]:
    """Fold the events into the rows they touch; return the accounts whose rows changed.

    Runs in the caller's transaction, which also records the projection's new position. Any
    exception leaves the table as it was (the caller's transaction rolls back).
    """
    relevant = [event for event in events if projection.handles(event)]
    if not relevant:
        return set()
    table = table or projection.table
    keys = list(dict.fromkeys(projection.key_of(event) for event in relevant))
    loaded = await load_states(conn, projection, table, keys)
    states = loaded.states
    for event in relevant:
        key = projection.key_of(event)
        states[key] = projection.fold(states.get(key), event)
    rows = await render_rows(projection, list(rows_of(projection, states)), renderer, loaded.html)
    await delete_keys(conn, projection, table, keys)
    await copy_rows(conn, projection, table, rows)
    return {event.payload["account_id"] for event in relevant}
