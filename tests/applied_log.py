"""A projection for tests that records every position it is given, to count applications."""

from typing import Any

from psycopg import AsyncConnection

from crm.projections.base import Projection, Row
from crm.store.event_types import load_event_types
from crm.store.events import Event

Positions = tuple[int, ...]


def _seen(state: Positions | None, event: Event) -> Positions:
    return (*(state or ()), event.position)


def _to_rows(state: Positions) -> list[Row]:
    return [(position,) for position in state]


def _from_rows(account_id: str, rows: list[Row]) -> Positions:
    return tuple(row[0] for row in rows)


APPLIED_LOG: Projection[Positions] = Projection(
    name="applied_log",
    table="test_applied_log",
    key_column="account_id",
    columns=("position",),
    handlers={name: _seen for name, _ in load_event_types().by_key},
    to_rows=_to_rows,
    from_rows=_from_rows,
)


async def create_applied_log(conn: AsyncConnection[Any]) -> None:
    # the primary key turns a second application of an event into an error
    await conn.execute(
        "CREATE TABLE test_applied_log (account_id uuid, position bigint,"
        " PRIMARY KEY (account_id, position))"
    )
    await conn.execute("INSERT INTO projections (name) VALUES ('applied_log')")


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
