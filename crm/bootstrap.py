"""The composition root: builds the long-lived things once and hands them to everything else."""

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from crm.broadcaster import Broadcaster
from crm.database import migrate
from crm.projections import positions
from crm.projections.base import Projection
from crm.projections.projector import Projector, ProjectorSettings
from crm.projections.registry import ALL
from crm.settings import Settings
from crm.store.event_types import EventTypes, load_event_types, sync_event_types

log = logging.getLogger(__name__)


async def prepare_database(url: str, projections: Sequence[Projection[Any]] = ALL) -> EventTypes:
    """Apply sql/, load schemas/ into event_types, and register the projections."""
    types = load_event_types()
    async with await AsyncConnection.connect(url, autocommit=True) as conn:
        await migrate(conn)
        async with conn.transaction():
            await sync_event_types(conn, types)
            await positions.register(conn, (p.name for p in projections))
    return types


@dataclass
class Services:
    url: str
    settings: Settings
    types: EventTypes
    pool: AsyncConnectionPool[AsyncConnection[Any]]
    broadcaster: Broadcaster
    projector: Projector


@asynccontextmanager
async def running_services(
    url: str,
    settings: Settings,
    projections: Sequence[Projection[Any]] = ALL,
    projector_settings: ProjectorSettings | None = None,
) -> AsyncIterator[Services]:
    types = await prepare_database(url, projections)
    broadcaster = Broadcaster()
    projector = Projector(url, types, projections, broadcaster, projector_settings)
    pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
        url, min_size=2, max_size=10, open=False
    )
    await pool.open(wait=True)
    projector_task = asyncio.create_task(projector.run(), name="projector")
    try:
        yield Services(url, settings, types, pool, broadcaster, projector)
    finally:
        projector_task.cancel()
        await asyncio.gather(projector_task, return_exceptions=True)
        await pool.close()
