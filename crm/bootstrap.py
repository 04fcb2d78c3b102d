"""The composition root: builds the long-lived things once and hands them to everything else."""

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from crm.broadcaster import Broadcaster
from crm.jobs.mail import transport_for
from crm.jobs.morning_email import MorningEmail
from crm.jobs.scheduler import start_scheduler
from crm.migrations import migrate
from crm.names import MIGRATION_LOCK
from crm.projections import tables
from crm.projections.base import Projection
from crm.projections.projector import Projector, ProjectorSettings
from crm.projections.registry import ALL
from crm.rendering import Renderer
from crm.roles import runtime_url
from crm.settings import Settings
from crm.store.event_types import EventTypes, load_event_types, sync_event_types
from crm.store.events import head_position
from crm.store.upcasters import UPCASTERS
from crm.store.upcasting import UpcasterMissing, missing

log = logging.getLogger(__name__)
JOB_WAITS_FOR_PROJECTIONS = 30.0  # seconds
# how long a request waits for a connection; then a 503 says to try again (not a 30 s hang)
POOL_TIMEOUT = 2.0  # seconds


class Prepared(NamedTuple):
    url: str  # what everything connects with from now on: the runtime role's (crm/roles.py)
    types: EventTypes


async def prepare(url: str, projections: Sequence[Projection[Any]] = ALL) -> Prepared:
    """Make the runtime role ready through `url`, then, as that role (so that it owns them),
    apply sql/, load schemas/ into event_types, and create and register the projections."""
    types = load_event_types()
    problems = missing(types, UPCASTERS)
    if problems:  # an older stored version handlers could never read
        raise UpcasterMissing("; ".join(problems))
    runtime = await runtime_url(url)
    async with await AsyncConnection.connect(runtime, autocommit=True) as conn:
        await migrate(conn)
        async with conn.transaction():
            types = await sync_event_types(conn, types)
            # two processes starting together: one creates the tables, the other finds them
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            stream_empty = await head_position(conn) == 0
            for projection in projections:
                await tables.install(conn, projection, stream_empty)
    return Prepared(runtime, types)


async def prepare_database(url: str, projections: Sequence[Projection[Any]] = ALL) -> EventTypes:
    """prepare(), for a caller that needs only the event types."""
    return (await prepare(url, projections)).types


@dataclass
class Services:
    types: EventTypes
    pool: AsyncConnectionPool[AsyncConnection[Any]]
    broadcaster: Broadcaster
    projector: Projector
    morning_email: MorningEmail
    note_checker: Renderer  # for the write side's rendering budget; the projector has its own
    settings: Settings  # what the web side derives its keys from (crm/web/tokens.py)


def morning_email_job(
    settings: Settings,
    pool: AsyncConnectionPool[AsyncConnection[Any]],
    types: EventTypes,
    broadcaster: Broadcaster | None = None,
) -> MorningEmail:
    transport = transport_for(settings.smtp_url, settings.data_dir)

    async def projections_current() -> None:
        assert broadcaster is not None
        async with pool.connection() as conn:
            head = await head_position(conn)
        names = ("accounts", "meeting_notes_emails")
        waits = [broadcaster.wait_for(name, head, JOB_WAITS_FOR_PROJECTIONS) for name in names]
        if not all(await asyncio.gather(*waits)):
            log.warning("the morning e-mail job runs on projections behind position %s", head)

    return MorningEmail(
        pool,
        types,
        transport,
        settings.mail_from,
        settings.email_hour,
        before_run=projections_current if broadcaster is not None else None,
    )


@asynccontextmanager
async def running_services(
    url: str,
    settings: Settings,
    projections: Sequence[Projection[Any]] = ALL,
    projector_settings: ProjectorSettings | None = None,
    run_jobs: bool = True,
    renderer: Renderer | None = None,  # the projector's: a test's, or one made and closed here
) -> AsyncIterator[Services]:
    url, types = await prepare(url, projections)
    broadcaster = Broadcaster()
    # two workers: a flood of notes checked at the write never queues ahead of the projections
    own_renderer = renderer is None
    renderer = renderer or Renderer()
    checker = Renderer()
    projector = Projector(url, types, projections, broadcaster, renderer, projector_settings)
    pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
        url, min_size=2, max_size=10, timeout=POOL_TIMEOUT, open=False
    )
    await pool.open(wait=True)
    projector_task = asyncio.create_task(projector.run(), name="projector")
    morning_email = morning_email_job(settings, pool, types, broadcaster)
    scheduler = start_scheduler(morning_email) if run_jobs else None
    try:
        yield Services(types, pool, broadcaster, projector, morning_email, checker, settings)
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        projector_task.cancel()
        await asyncio.gather(projector_task, return_exceptions=True)
        await pool.close()
        checker.close()
        if own_renderer:
            renderer.close()
