"""Sign-up, log-in and log-out."""

import asyncio

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from crm.store import commands
from crm.web.answers import attempt
from crm.web.forms import Form, FormSpec, posted_form, time_zones
from crm.web.params import a_local_path
from crm.web.requests import services_of
from crm.web.routing import Routes
from crm.web.security import check_csrf, flash, log_in, passwords_of
from crm.web.templating import templates

routes = Routes()
SIGN_UP = FormSpec.of("account-created", "email", "time_zone")
LOGIN_FIELDS = ("email", "password")


def _page(request: Request, name: str, form: Form, status: int = 200) -> Response:
    context = {"form": form, "time_zones": time_zones(), "next": _next(request)}
    return templates.TemplateResponse(request, name, context, status_code=status)


def _next(request: Request) -> str:
    return a_local_path(request.query_params.get("next"), "/contacts")


@routes.get("/signup")
async def signup_page(request: Request) -> Response:
    return _page(request, "signup.html", SIGN_UP.blank(services_of(request).types))


@routes.post("/signup")
async def signup(request: Request) -> Response:
    data = await posted_form(request)
    check_csrf(request, data)
    form = SIGN_UP.read(data, services_of(request).types)
    password = form.secret(data, "password")
    form.a_time_zone("time_zone")
    if len(password) < 8:
        form.fail("password", "must be at least 8 characters")
    if len(password) > 1024:
        form.fail("password", "must be at most 1,024 characters")
    if not form.ok:
        return _page(request, "signup.html", form, 422)
    password_hash = await asyncio.to_thread(passwords_of(request).hash, password)
    done = await attempt(
        request,
        form,
        lambda conn, types: commands.sign_up(
            conn, types, form["email"], password_hash, form["time_zone"]
        ),
    )
    if done is None:
        return _page(request, "signup.html", form, 422)
    log_in(request, done.subject_id, form["email"].lower())
    flash(request, "Welcome! Your account is ready.")
    return RedirectResponse("/contacts", status_code=303)


@routes.get("/login")
async def login_page(request: Request) -> Response:
    return _page(request, "login.html", Form({n: "" for n in LOGIN_FIELDS}))


async def _account_by_email(request: Request, email: str) -> tuple[str, str] | None:
    async with services_of(request).pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT account_id::text, password_hash FROM projected_accounts WHERE email = %s",
            (email.lower(),),
        )
        row = await cursor.fetchone()
    return None if row is None else (row[0], row[1])


@routes.post("/login")
async def login(request: Request) -> Response:
    data = await posted_form(request)
    check_csrf(request, data)
    form = Form.read(data, ("email",))
    password = form.secret(data, "password")
    form.required("email")
    form.single_line("email")
    if not password:
        form.fail("password", "is required")
    if not form.ok:
        return _page(request, "login.html", form, 422)
    account = await _account_by_email(request, form["email"])
    passwords = passwords_of(request)
    known_hash = account[1] if account else passwords.nobody
    matches = await asyncio.to_thread(passwords.match, known_hash, password)
    if account is None or not matches:
        form.fail("password", "does not match this e-mail; check both and try again")
        return _page(request, "login.html", form, 422)
    log_in(request, account[0], form["email"].lower())
    return RedirectResponse(_next(request), status_code=303)


@routes.post("/logout")
async def logout(request: Request) -> Response:
    check_csrf(request, await posted_form(request))
    request.session.clear()
    flash(request, "You are logged out.")
    return RedirectResponse("/login", status_code=303)
