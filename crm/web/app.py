"""The Starlette application: routes, middleware, error pages and the lifespan."""

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import psycopg
from argon2 import PasswordHasher
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from crm import ROOT
from crm.bootstrap import running_services
from crm.database import Database, open_database
from crm.embedded import supervised
from crm.projections.base import Projection
from crm.projections.projector import ProjectorSettings
from crm.projections.registry import ALL
from crm.rendering import Renderer
from crm.settings import Settings
from crm.web import (
    account,
    auth,
    contacts,
    event_log,
    exports,
    health,
    history,
    interactions,
    meeting_notes,
    signup,
    stream,
)
from crm.web.headers import SecurityHeaders, headers_for
from crm.web.limits import BodyLimit
from crm.web.params import a_local_path
from crm.web.requests import NotFound, is_htmx
from crm.web.security import CsrfRefused, LoginRequired, Passwords, secret_key
from crm.web.templating import templates

log = logging.getLogger(__name__)
DATABASE_RESTARTING = "The database is restarting; try again in a few seconds."
DATABASE_UNAVAILABLE = "The database is not answering; try again in a few seconds."
RETRY_AFTER = {"Retry-After": "2"}


def _routes() -> list[BaseRoute]:
    """Each resource module declares its own routes, beside their handlers."""
    return [
        Route("/", lambda request: RedirectResponse("/contacts", status_code=303)),
        *health.routes,
        *stream.routes,
        *auth.routes,
        *signup.routes,
        *account.routes,
        *contacts.routes,
        *history.routes,
        *event_log.routes,
        *exports.routes,
        *interactions.routes,
        *meeting_notes.routes,
        Mount("/static", StaticFiles(directory=ROOT / "static"), name="static"),
    ]


async def _login_required(request: Request, exc: Exception) -> Response:
    # back to the page asked for; after a form posted from an expired session, to the page the
    # form was on (the form's own URL answers only POST)
    back = request.url.path
    if request.method != "GET":
        back = a_local_path(urlsplit(request.headers.get("referer", "")).path, "/contacts")
    target = f"/login?next={quote(back)}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _csrf_refused(request: Request, exc: Exception) -> Response:
    return _error_page(
        request,
        403,
        "This form has expired or did not come from crm. Reload the page and try again.",
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error_page(request, 404, "There is no such page, or it is not yours.")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error_page(request, exc.status_code, str(exc.detail))


def _error_page(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    return templates.TemplateResponse(
        request,
        "error.html",
        {"status": status, "message": message},
        status_code=status,
        headers=headers,
    )


def _database_is_restarting(request: Request) -> bool:
    database: Database = request.app.state.database
    embedded = database.embedded
    return embedded is not None and (embedded.state == "restarting" or not embedded.is_running())


def _unavailable(request: Request, message: str) -> Response:
    """503: HTML for a page, JSON for /health, plain text for htmx and everything else."""
    if request.url.path == "/health":
        body = {"status": "unavailable"}
        if health.may_see_details(request):
            body["database"] = message
        return JSONResponse(body, status_code=503, headers=RETRY_AFTER)
    if is_htmx(request) or "text/html" not in request.headers.get("accept", ""):
        return PlainTextResponse(message, status_code=503, headers=RETRY_AFTER)
    return _error_page(request, 503, message, RETRY_AFTER)


async def _server_error(request: Request, exc: Exception) -> Response:
    # answered by Starlette's outermost middleware, which SecurityHeaders does not wrap
    message = "crm could not answer that; try again, or tell whoever runs it."
    return PlainTextResponse(message, status_code=500, headers=headers_for(request.url.path))


async def _database_error(request: Request, exc: Exception) -> Response:
    # psycopg_pool.PoolTimeout is an OperationalError too: no connection within the pool's timeout
    log.warning("503 for %s %s: %s", request.method, request.url.path, exc)
    restarting = _database_is_restarting(request)
    return _unavailable(request, DATABASE_RESTARTING if restarting else DATABASE_UNAVAILABLE)


class DatabaseGate:
    """While the embedded PostgreSQL restarts, answer 503 at once instead of queueing for it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/static/"):
            database: Database = scope["app"].state.database
            if database.embedded is not None and database.embedded.state == "restarting":
                response = _unavailable(Request(scope, receive), DATABASE_RESTARTING)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    settings: Settings,
    projector_settings: ProjectorSettings | None = None,
    renderer: Renderer | None = None,
    password_hasher: PasswordHasher | None = None,  # tests pass a cheap one; argon2's otherwise
    projections: Sequence[Projection[Any]] = ALL,
) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The lifespan, not main(), owns the database: uvicorn re-raises SIGTERM once the
        # lifespan has finished, so code after uvicorn.run() never runs on a normal stop.
        database = await asyncio.to_thread(open_database, settings.database_url, settings.data_dir)
        app.state.database = database
        try:
            async with running_services(
                database.url,
                settings,
                projections,
                projector_settings=projector_settings,
                renderer=renderer,
            ) as services:
                app.state.services = services
                # after a restart, the pool's idle connections all lead to the dead server
                async with supervised(database.embedded, services.pool.drain):
                    yield
        finally:
            await asyncio.to_thread(database.stop)

    middleware = [
        Middleware(SecurityHeaders),  # outermost: on every answer, a refused Host's included
        Middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts, www_redirect=False),
        Middleware(
            SessionMiddleware,
            secret_key=secret_key(settings),
            session_cookie="crm_session",
            same_site="lax",
            https_only=settings.cookie_secure,
            max_age=14 * 24 * 3600,
        ),
        Middleware(DatabaseGate),  # inside the session: the 503 page reads it
        Middleware(BodyLimit),  # before anything reads a body
    ]
    handlers = {
        LoginRequired: _login_required,
        CsrfRefused: _csrf_refused,
        NotFound: _not_found,
        HTTPException: _http_error,
        psycopg.OperationalError: _database_error,
        Exception: _server_error,
    }
    app = Starlette(
        routes=_routes(), middleware=middleware, exception_handlers=handlers, lifespan=lifespan
    )
    app.state.passwords = Passwords(password_hasher)
    app.state.operator_token = settings.operator_token  # for /health's details
    return app
