"""GET /health: is the database reachable, is the projector running, how far behind is it.

"ok"; or "degraded" while a projection retries a failing event or has parked events, or the
morning e-mail's last run stopped or left e-mails failing; or "unavailable" (503) without a
database.

Anyone may ask, and is told the status alone. The details (positions, parked events, the
morning e-mail's counts) are for an operator: a request with `Authorization: Bearer
<CRM_OPERATOR_TOKEN>`, or one from a loopback address that no proxy forwarded. A proxy on the
same machine connects from 127.0.0.1 too, so any forwarding header counts as "from elsewhere".
uvicorn, trusting X-Forwarded-For from 127.0.0.1 by default, rewrites the client address from
it; that grants nothing here, since the header itself is what is checked.

Even an operator's details name no one: a parked event is listed by its projection, position,
event type and the class of its error, never the contact it is about or the error's message (a
unique violation's quotes the values it found). `python -m crm.parked` lists those.
"""

import hmac
import ipaddress
from typing import Any

import psycopg
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import JSONResponse

from crm.bootstrap import Services
from crm.web.routing import Routes

routes = Routes()

PARKED_LISTED = 20
# headers a reverse proxy adds (nginx's X-Real-IP, Apache's Via...): a request carrying any of
# them came through one, whatever address it arrived from
FORWARDING_HEADERS = (
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "via",
)


def may_see_details(request: Request) -> bool:
    """An operator's request: the operator token, or a local client that no proxy forwarded."""
    return _has_operator_token(request) or _is_local(request)


def _has_operator_token(request: Request) -> bool:
    token: str | None = request.app.state.operator_token
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if token is None or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def _is_local(request: Request) -> bool:
    if request.client is None or any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:  # a name, not an address: nothing says where it is
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


async def _projection_rows(
    services: Services,
) -> tuple[int, list[tuple[Any, ...]], dict[str, Any]]:
    async with services.pool.connection(timeout=2) as conn:
        head = await (await conn.execute("SELECT coalesce(max(id), 0) FROM events")).fetchone()
        cursor = await conn.execute(
            "SELECT name, position, last_updated_at FROM projections ORDER BY name"
        )
        assert head is not None
        return int(head[0]), await cursor.fetchall(), await _parked(conn)


async def _parked(conn: AsyncConnection[Any]) -> dict[str, Any]:
    """How many events are parked, and the first PARKED_LISTED of them, without what they are
    about or the error's message."""
    count = await (await conn.execute("SELECT count(*) FROM parked_events")).fetchone()
    cursor = await conn.execute(
        "SELECT p.projection, p.position, t.name, p.parked_at, split_part(p.error, ':', 1)"
        " FROM parked_events p JOIN events e ON e.id = p.position"
        " JOIN event_types t ON t.id = e.event_type_id"
        " ORDER BY p.position, p.projection LIMIT %s",
        (PARKED_LISTED,),
    )
    listed = [
        {
            "projection": projection,
            "position": position,
            "event_type": event_type,
            "parked_at": parked_at.isoformat(),
            "error": _class_name(error_class),
        }
        for projection, position, event_type, parked_at, error_class in await cursor.fetchall()
    ]
    return {"count": int(count[0]) if count else 0, "listed": listed}


def _class_name(text: str) -> str:
    # crm/projections/poison.py records "RenderFailed: <message>"; an error written otherwise
    # has no class to show, and its text may be anything
    return text if text.isidentifier() else "unknown"


@routes.get("/health")
async def health(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    try:
        head, rows, parked = await _projection_rows(services)
    except (psycopg.Error, TimeoutError) as error:
        unavailable = {"status": "unavailable", "database": f"unreachable: {error}"}
        return _answer(request, unavailable, 503)
    return _answer(request, _details(services, head, rows, parked))


def _answer(request: Request, details: dict[str, Any], status_code: int = 200) -> JSONResponse:
    shown = details if may_see_details(request) else {"status": details["status"]}
    return JSONResponse(shown, status_code=status_code)


def _details(
    services: Services, head: int, rows: list[tuple[Any, ...]], parked: dict[str, Any]
) -> dict[str, Any]:
    projector = services.projector
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
    rebuilding = {name: f"{percent}%" for name, percent in projector.rebuilding.items()}
    morning_email = _last_run(services)
    mail_failing = morning_email is not None and bool(
        morning_email["failing_count"] or morning_email["error"]
    )
    return {
        "status": "degraded" if parked["count"] or retrying or mail_failing else "ok",
        "database": "ok",
        "head_position": head,
        "projector": {"listener": projector.listener_state, "projections": projections},
        # projections rebuilt from the stream after their declaration changed: "42%"
        "rebuilding": rebuilding,
        "parked_count": parked["count"],
        "parked_events": parked["listed"],  # python -m crm.parked lists them all
        "morning_email": morning_email,
    }


def _last_run(services: Services) -> dict[str, Any] | None:
    """Counts only: /health needs no login, so which contacts' e-mails fail, and why, is for
    `python -m crm.emails --dry-run`."""
    if services.morning_email.last_run is None:
        return None
    at, report = services.morning_email.last_run
    return {
        "last_run_at": at.isoformat(),
        "due": len(report.due),
        "sent": len(report.sent),
        "failed": len(report.failed),
        "error": report.error,
        "failing_count": len(report.failing),
    }
