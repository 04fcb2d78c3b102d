"""GET /health: is the database reachable, is the projector running, how far behind is it."""

from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse

from crm.bootstrap import Services


async def _projection_rows(services: Services) -> tuple[int, list[tuple[Any, ...]]]:
    async with services.pool.connection(timeout=2) as conn:
        head = await (await conn.execute("SELECT coalesce(max(id), 0) FROM events")).fetchone()
        cursor = await conn.execute(
            "SELECT name, position, last_updated_at FROM projections ORDER BY name"
        )
        assert head is not None
        return int(head[0]), await cursor.fetchall()


async def health(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    projector = services.projector
    try:
        head, rows = await _projection_rows(services)
    except (psycopg.Error, TimeoutError) as error:
        return JSONResponse(
            {"status": "unavailable", "database": f"unreachable: {error}"}, status_code=503
        )
    projections = {
        name: {
            "state": projector.states.get(name, "not run by this process"),
            "position": position,
            "lag": head - position,
            "last_updated_at": updated.isoformat(),
        }
        for name, position, updated in rows
    }
    return JSONResponse(
        {
            "status": "ok",
            "database": "ok",
            "head_position": head,
            "projector": {"listener": projector.listener_state, "projections": projections},
            "morning_email": _last_run(services),
        }
    )


def _last_run(services: Services) -> dict[str, Any] | None:
    if services.morning_email.last_run is None:
        return None
    at, report = services.morning_email.last_run
    return {
        "last_run_at": at.isoformat(),
        "due": len(report.due),
        "sent": len(report.sent),
        "failed": len(report.failed),
    }
