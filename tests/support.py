"""Helpers shared by the tests: accounts, workloads, and comparing a table with a fresh replay."""

import asyncio
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection, conninfo, sql

from crm.broadcaster import Broadcaster
from crm.projections.base import Projection
from crm.projections.projector import Projector, ProjectorSettings
from crm.projections.rebuild import build_table
from crm.rendering import Rendered, Renderer, render_each
from crm.store import commands
from crm.store.event_types import EventTypes
from crm.store.events import append, head_position
from harness.workload import Workload

# one Markdown worker for the whole test run (closed by conftest at the end)
renderer = Renderer()
SLOW = "(slow to render)"  # notes with this in them take longer than any test waits


def render_slowly_when_asked(texts: list[str]) -> list[Rendered]:
    """A worker function for tests of a worker that hangs (module-level: the worker imports it)."""
    if any(SLOW in text for text in texts):
        time.sleep(60)  # the hang under test: the worker is given up on long before this
    return render_each(texts)


def render_nothing(texts: list[str]) -> list[Rendered]:
    """A worker function that fails every note: shows which notes a driver renders at all."""
    return [Rendered(None, 0.0, "refused by the test") for _ in texts]


def impatient_renderer() -> Renderer:
    """A renderer that gives up on its worker after 0.5 s, which a SLOW note always runs past."""
    return Renderer(render_all=render_slowly_when_asked, wall_timeout=0.5)


@asynccontextmanager
async def running(
    url: str,
    types: EventTypes,
    projections: list[Projection[Any]],
    settings: ProjectorSettings,
    with_renderer: Renderer = renderer,
) -> AsyncIterator[Projector]:
    """A live projector running in this event loop while the block runs, cancelled after it."""
    projector = Projector(url, types, projections, Broadcaster(), with_renderer, settings)
    task = asyncio.create_task(projector.run())
    try:
        yield projector
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


FAKE_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


async def sign_up(
    conn: AsyncConnection[Any],
    types: EventTypes,
    email: str | None = None,
    time_zone: str = "Europe/Paris",
) -> str:
    """A new account, written straight to the store (no app, no argon2); its id."""
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    done = await commands.sign_up(conn, types, email, FAKE_HASH, time_zone)
    return done.subject_id


async def accounts_and_workload(
    conn: AsyncConnection[Any], types: EventTypes, accounts: int, seed: int = 0
) -> Workload:
    ids = [await sign_up(conn, types) for _ in range(accounts)]
    return Workload(ids, seed)


async def append_workload(
    conn: AsyncConnection[Any], types: EventTypes, workload: Workload, count: int
) -> None:
    for _ in range(count):
        event_type, account, payload = workload.next()
        await append(conn, types, event_type, payload, account)


async def differences(
    conn: AsyncConnection[Any], types: EventTypes, projection: Projection[Any]
) -> int:
    """Rows that differ between the live table and a from-scratch replay (0: identical).

    The replay covers the events up to the live projection's own position.
    """
    cursor = await conn.execute(
        "SELECT position FROM projections WHERE name = %s", (projection.name,)
    )
    row = await cursor.fetchone()
    assert row is not None
    expected = f"{projection.table}__expected"
    url = conninfo.make_conninfo(conn.info.dsn, password=conn.info.password or "")
    await build_table(url, types, projection, expected, int(row[0]), renderer)
    query = sql.SQL(
        "SELECT count(*) FROM ((TABLE {a} EXCEPT ALL TABLE {b}) UNION ALL"
        " (TABLE {b} EXCEPT ALL TABLE {a})) AS d"
    ).format(a=sql.Identifier(projection.table), b=sql.Identifier(expected))
    result = await (await conn.execute(query)).fetchone()
    await conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(expected)))
    assert result is not None
    return int(result[0])


async def eventually(
    condition: Callable[[], object | Awaitable[object]], timeout: float, what: str
) -> float:
    """Poll condition (it may be async) until it is true; return the seconds it took.

    harness.processes.wait_until for async tests: it waits without blocking the event loop, where
    the projector or app under test runs.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return loop.time() - started
        assert loop.time() - started < timeout, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.02)


async def wait_until_caught_up(
    conn: AsyncConnection[Any], names: list[str], timeout: float = 30.0
) -> None:
    head = await head_position(conn)

    async def reached() -> bool:
        cursor = await conn.execute(
            "SELECT count(*) FROM projections WHERE name = ANY(%s) AND position >= %s",
            (names, head),
        )
        row = await cursor.fetchone()
        return row is not None and row[0] == len(names)

    await eventually(reached, timeout, f"projections {names} reach position {head}")


def contact_details(name: str, description: str = "", contact_method: str = "") -> dict[str, str]:
    """A contact's details, as commands.add_contact and edit_contact take them."""
    return {"name": name, "description": description, "contact_method": contact_method}
