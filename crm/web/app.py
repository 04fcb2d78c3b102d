"""The Starlette application: routes and the lifespan that owns the running services."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from crm.bootstrap import running_services
from crm.projections.projector import ProjectorSettings
from crm.settings import Settings
from crm.web.health import health


def create_app(
    url: str, settings: Settings, projector_settings: ProjectorSettings | None = None
) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with running_services(url, settings, projector_settings=projector_settings) as s:
            app.state.services = s
            yield

    routes = [Route("/health", health)]
    return Starlette(routes=routes, lifespan=lifespan)
