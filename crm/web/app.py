"""The Starlette application: routes and the lifespan that owns the running services."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from crm.bootstrap import running_services
from crm.database import open_database
from crm.projections.projector import ProjectorSettings
from crm.settings import Settings
from crm.web.health import health


def create_app(
    settings: Settings, projector_settings: ProjectorSettings | None = None
) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The lifespan, not main(), owns the database: uvicorn re-raises SIGTERM once the
        # lifespan has finished, so code after uvicorn.run() never runs on a normal stop.
        database = await asyncio.to_thread(open_database, settings.database_url, settings.data_dir)
        try:
            async with running_services(
                database.url, settings, projector_settings=projector_settings
            ) as services:
                app.state.services = services
                yield
        finally:
            await asyncio.to_thread(database.stop)

    routes = [Route("/health", health)]
    return Starlette(routes=routes, lifespan=lifespan)
