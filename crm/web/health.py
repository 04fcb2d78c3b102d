"""GET /health: is the database reachable, is the projector running, how far behind is it.

"ok"; or "degraded" while a projection retries a failing event or has parked events (listed,
without payloads), or the morning e-mail's last run stopped or left e-mails failing; or
"unavailable" (503) without a database.
"""

from typing import Any

import psycopg
from starlette.requests import Request
from starlette.responses import JSONResponse

from crm.bootstrap import Services
from crm.projections import poison


async def _projection_rows(
    services: Services,
) -> tuple[int, list[tuple[Any, ...]], list[dict[str, Any]]]:
    async with services.pool.connection(timeout=2) as conn:
        head = await (await conn.execute("SELECT coalesce(max(id), 0) FROM events")).fetchone()
        cursor = await conn.execute(
            "SELECT name, position, last_updated_at FROM projections ORDER BY name"
        )
        assert head is not None
        return int(head[0]), await cursor.fetchall(), await poison.listing(conn)


async def health(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    projector = services.projector
    try:
        head, rows, parked = await _projection_rows(services)
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
    retrying = any(p["state"].startswith("retrying") for p in projections.values())
    for item in parked:
        item["parked_at"] = item["parked_at"].isoformat()
    morning_email = _last_run(services)
    mail_failing = morning_email is not None and bool(
        morning_email["failing_count"] or morning_email["error"]
    )
    return JSONResponse(
        {
            "status": "degraded" if parked or retrying or mail_failing else "ok",
            "database": "ok",
            "head_position": head,
            "projector": {"listener": projector.listener_state, "projections": projections},
            "parked_events": parked,
            "morning_email": morning_email,
        }
    )


def _last_run(services: Services) -> dict[str, Any] | None:
    if services.morning_email.last_run is None:
        return None
    at, report = services.morning_email.last_run
    # ids, day and reason only, never a name or a body; /health needs no login, so the address
    # an SMTP refusal quotes is masked
    failing = [
        {
            "contact_id": email.contact_id,
            "meeting_on": email.meeting_on,
            "reason": reason.replace(email.to, "<recipient>")[:300],
        }
        for email, reason in report.failing
    ]
    return {
        "last_run_at": at.isoformat(),
        "due": len(report.due),
        "sent": len(report.sent),
        "failed": len(report.failed),
        "error": report.error,
        "failing_count": len(failing),
        "failing": failing[:20],  # python -m crm.emails --dry-run lists them all
    }
