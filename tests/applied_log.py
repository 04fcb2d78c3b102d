"""A projection for tests that records every position it is given, to count applications."""

from typing import Any, NamedTuple

from psycopg import AsyncConnection

from crm.projections import tables
from crm.projections.base import Projection, Uuid
from crm.store.event_types import load_event_types
from crm.store.events import Event


class Applied(NamedTuple):
    account_id: Uuid
    position: int


# the primary key (account_id, position) turns a second application of an event into an error
Positions = dict[int, Applied]


def _seen(state: Positions | None, event: Event) -> Positions:
    return {**(state or {}), event.position: Applied(event.payload["account_id"], event.position)}


APPLIED_LOG: Projection[Positions] = Projection(
    name="applied_log",
    table="test_applied_log",
    row=Applied,
    row_key="position",
    handlers={name: _seen for name, _ in load_event_types().by_key},
)


async def create_applied_log(conn: AsyncConnection[Any]) -> None:
    await tables.install(conn, APPLIED_LOG, stream_empty=True)


async def assert_each_event_applied_once(conn: AsyncConnection[Any]) -> int:
    cursor = await conn.execute(
        "SELECT (SELECT count(*) FROM events),"
        " (SELECT count(*) FROM test_applied_log),"
        " (SELECT count(*) FROM events e FULL JOIN test_applied_log l ON l.position = e.id"
        "  WHERE l.position IS NULL OR e.id IS NULL)"
    )
    events, applied, unmatched = await cursor.fetchone() or (0, 0, 0)
    assert (applied, unmatched) == (events, 0), f"{events} events, {applied} applied"
    # a second application fails on the primary key; the projector would park that event
    parked = await (await conn.execute("SELECT count(*) FROM parked_events")).fetchone()
    assert parked == (0,), f"{parked} events parked"
    return int(events)
