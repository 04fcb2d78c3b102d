"""The account page: its time zone, its password, and where it is logged in."""

from typing import Any

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from crm.store import commands
from crm.store.event_types import EventTypes
from crm.web import sessions, throttle
from crm.web.answers import attempt, redirect_after_write
from crm.web.auth import LOG_IN_PER_ACCOUNT, password_problem, remember_device, wait_in_words
from crm.web.forms import Form, FormSpec, posted_form, time_zones
from crm.web.requests import services_of
from crm.web.routing import Routes
from crm.web.security import (
    PasswordsBusy,
    check_csrf,
    current_session,
    flash,
    passwords_of,
)
from crm.web.sessions import Session
from crm.web.templating import templates
from crm.web.throttle import Key, Throttled
from crm.web.zones import account_zone

routes = Routes()
TIME_ZONE = FormSpec.of("account-time-zone-changed", "time_zone")
PASSWORD_FIELDS = ("current_password", "new_password")
PAGE = "/account"


async def _page(
    request: Request,
    session: Session,
    status: int = 200,
    time_zone: Form | None = None,
    password: Form | None = None,
    problem: str | None = None,
    retry_after: int | None = None,
) -> Response:
    async with services_of(request).pool.connection() as conn:
        zone = await account_zone(conn, session.account_id)
        listed = await sessions.listed(conn, session.account_id)
    context: dict[str, Any] = {
        "time_zone_form": time_zone
        or TIME_ZONE.blank(services_of(request).types, time_zone=zone.key),
        "password_form": password or Form({name: "" for name in PASSWORD_FIELDS}),
        "time_zones": time_zones(),
        # this browser first, then the most recently used
        "sessions": sorted(listed, key=lambda one: one.id_hash != session.id_hash),
        "agent_in_words": sessions.agent_in_words,
        "local": lambda moment: moment.astimezone(zone),
        "zone": zone.key,
        "this_session": session.id_hash,
        "problem": problem,
    }
    response = templates.TemplateResponse(request, "account.html", context, status_code=status)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@routes.get(PAGE)
async def account_page(request: Request) -> Response:
    return await _page(request, await current_session(request))


@routes.post(PAGE + "/time-zone")
async def change_time_zone(request: Request) -> Response:
    session = await current_session(request)
    data = await posted_form(request)
    check_csrf(request, data)
    form = TIME_ZONE.read(data, services_of(request).types)
    form.a_time_zone("time_zone")
    done = await attempt(
        request,
        form,
        lambda conn, types: commands.change_account(
            conn, types, TIME_ZONE.event_type, session.account_id, TIME_ZONE.payload(form)
        ),
        TIME_ZONE.form_fields,
    )
    if done is None:
        return await _page(request, session, 422, time_zone=form)
    message = f"Time zone saved: your morning e-mails follow {form['time_zone']} from now on."
    return await redirect_after_write(request, ["accounts"], done.appended.position, PAGE, message)


@routes.post(PAGE + "/password")
async def change_password(request: Request) -> Response:
    """A new password, once the current one is given; every other session ends with it."""
    session = await current_session(request)
    data = await posted_form(request)
    check_csrf(request, data)
    form = Form({name: "" for name in PASSWORD_FIELDS})
    current = form.secret(data, "current_password")
    new = form.secret(data, "new_password")
    if not current:
        form.fail("current_password", "is required")
    problem = password_problem(new)
    if problem:
        form.fail("new_password", problem)
    if not form.ok:
        return await _page(request, session, 422, password=form)
    try:
        password_hash = await _new_hash(request, session, current, new)
    except Throttled as throttled:
        wait = f"Too many wrong passwords. Try again in {wait_in_words(throttled.seconds)}."
        return await _page(
            request, session, 429, password=form, problem=wait, retry_after=throttled.seconds
        )
    except PasswordsBusy:
        wait = "Too many passwords are being checked right now. Try again in a second."
        return await _page(request, session, 429, password=form, problem=wait, retry_after=1)
    if password_hash is None:
        form.fail("current_password", "is not this account's password")
        return await _page(request, session, 422, password=form)

    async def change(conn: AsyncConnection[Any], types: EventTypes) -> commands.Done:
        async with conn.transaction():  # the event and the end of the other sessions, or neither
            payload = {"password_hash": password_hash}
            done = await commands.change_account(
                conn, types, "account-password-changed", session.account_id, payload
            )
            await sessions.end_others(conn, session)
        return done

    done = await attempt(request, form, change)
    if done is None:
        return await _page(request, session, 422, password=form)
    sessions.ended(session.account_id)
    message = "Password changed. Every other session of this account is logged out."
    response = await redirect_after_write(
        request, ["accounts"], done.appended.position, PAGE, message
    )
    # the account's device cookies were for the old password; this browser's is renewed
    remember_device(request, response, session.email, password_hash)
    return response


async def _new_hash(request: Request, session: Session, current: str, new: str) -> str | None:
    """The new password's hash, if `current` is the account's password; else None. Guesses
    are throttled like log-ins, under a key of their own: a stranger failing log-ins of the
    account must not stop its owner here."""
    key = Key(f"password-change:{session.account_id}", LOG_IN_PER_ACCOUNT)
    passwords = passwords_of(request)
    passwords.check_room()
    async with services_of(request).pool.connection() as conn:
        await throttle.claim(conn, [key])
        cursor = await conn.execute(
            "SELECT password_hash FROM projected_accounts WHERE account_id = %s",
            (session.account_id,),
        )
        row = await cursor.fetchone()
    if row is None or not await passwords.match(row[0], current):
        return None  # counted by the claim
    async with services_of(request).pool.connection() as conn:
        await throttle.forget(conn, key)
    return await passwords.hash(new)


@routes.post(PAGE + "/sessions/end-others")
async def end_other_sessions(request: Request) -> Response:
    session = await current_session(request)
    check_csrf(request, await posted_form(request))
    async with services_of(request).pool.connection() as conn:
        ended = await sessions.end_others(conn, session)
    sessions.ended(session.account_id)
    flash(request, f"Logged out of {ended} other session{'s' if ended != 1 else ''}.")
    return RedirectResponse(PAGE, status_code=303)
