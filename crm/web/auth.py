"""Log-in and log-out, and what the sign-up and account pages share with them."""

import hmac
import secrets
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from crm.web import throttle
from crm.web.forms import Form, posted_form, time_zones
from crm.web.params import a_local_path
from crm.web.requests import services_of
from crm.web.routing import Routes
from crm.web.security import (
    PasswordsBusy,
    check_csrf,
    flash,
    log_in,
    log_out,
    passwords_of,
    secret_key,
)
from crm.web.templating import templates
from crm.web.throttle import Key, Throttled

routes = Routes()
LOGIN_FIELDS = ("email", "password")
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
templates.env.globals["min_password"] = MIN_PASSWORD  # the forms' hints and minlength
# Failures allowed before each further one doubles the wait: few for one account (a guesser
# has 5 free tries, then 1 s, 2 s, 4 s... up to 15 min), more for an address (a household or an
# office behind one address).
LOG_IN_PER_ACCOUNT, LOG_IN_PER_ADDRESS = 5, 20
DEVICE_COOKIE, DEVICE_COOKIE_DAYS = "crm_device", 365


def auth_page(request: Request, name: str, form: Form, status: int = 200, **extra: Any) -> Response:
    context = {"form": form, "time_zones": time_zones(), "next": _next(request), **extra}
    return templates.TemplateResponse(request, name, context, status_code=status)


def _next(request: Request) -> str:
    return a_local_path(request.query_params.get("next"), "/contacts")


def wait_in_words(seconds: int) -> str:
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{round(seconds / 60)} minutes"


def slow_down(request: Request, name: str, form: Form, seconds: int, what: str) -> Response:
    """429 with the form and a message saying how long to wait; nothing was checked."""
    problem = f"Too many {what}. Try again in {wait_in_words(seconds)}."
    response = auth_page(request, name, form, 429, problem=problem)
    response.headers["Retry-After"] = str(seconds)
    return response


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"must be at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"must be at most {MAX_PASSWORD:,} characters"
    return None


@routes.get("/login")
async def login_page(request: Request) -> Response:
    return auth_page(request, "login.html", Form({n: "" for n in LOGIN_FIELDS}))


async def _account_by_email(conn: AsyncConnection[Any], email: str) -> tuple[str, str] | None:
    cursor = await conn.execute(
        "SELECT account_id::text, password_hash FROM projected_accounts WHERE email = %s",
        (email,),
    )
    row = await cursor.fetchone()
    return None if row is None else (row[0], row[1])


def account_key(email: str) -> Key:
    """Failed log-ins of one account from browsers it has not logged in from before."""
    return Key(f"log-in:account:{email}", LOG_IN_PER_ACCOUNT)


def _log_in_keys(request: Request, email: str, password_hash: str | None) -> list[Key]:
    """What an attempt counts against: this browser's own key if it logged in to the account
    before (with its password as it is now); else the account's and the address's.

    A device has its own allowance, and the failures of the account or of the address are not
    its: a stranger guessing an account's password, or many at a shared address, make other
    browsers wait, never the owner's own (OWASP's "device cookies").
    """
    device = known_device(request, email, password_hash)
    if device is not None:
        return [Key(f"log-in:device:{device}", LOG_IN_PER_ACCOUNT)]
    address = Key(f"log-in:address:{throttle.client_address(request)}", LOG_IN_PER_ADDRESS)
    return [account_key(email), address]


def _devices(request: Request) -> URLSafeSerializer:
    key = secret_key(services_of(request).settings)
    return URLSafeSerializer(key, salt="crm device cookie")


def _generation(request: Request, password_hash: str) -> str:
    """What a device cookie is bound to: a new password makes every earlier cookie none (one
    minted while the old password was known buys no guesses at the new one)."""
    key = secret_key(services_of(request).settings).encode()
    return hmac.new(key, password_hash.encode(), "sha256").hexdigest()[:32]


def known_device(request: Request, email: str, password_hash: str | None) -> str | None:
    """The id of this browser's device cookie, if it is one of ours for this e-mail and this
    password."""
    if password_hash is None:
        return None
    try:
        signed_for, generation, device = _devices(request).loads(
            request.cookies.get(DEVICE_COOKIE, "")
        )
    except (BadSignature, ValueError, TypeError):
        return None
    if signed_for != email or generation != _generation(request, password_hash):
        return None
    return str(device)


def remember_device(request: Request, response: Response, email: str, password_hash: str) -> None:
    """Mark this browser as one the account logs in from (a year; only /login reads it)."""
    value = _devices(request).dumps(
        [email, _generation(request, password_hash), secrets.token_urlsafe(16)]
    )
    response.set_cookie(
        DEVICE_COOKIE,
        value,
        max_age=DEVICE_COOKIE_DAYS * 24 * 3600,
        path="/login",
        httponly=True,
        samesite="lax",
        secure=services_of(request).settings.cookie_secure,
    )


async def _account_with_password(
    request: Request, email: str, password: str
) -> tuple[str, str] | None:
    """(id, password hash) of the account whose e-mail and password these are; None if there
    is none. The attempt is claimed against its keys first (Throttled when one must wait)."""
    passwords = passwords_of(request)
    passwords.check_room()
    async with services_of(request).pool.connection() as conn:
        account = await _account_by_email(conn, email)
        keys = _log_in_keys(request, email, account[1] if account else None)
        await throttle.claim(conn, keys)
    known_hash = account[1] if account else passwords.nobody
    matches = await passwords.match(known_hash, password)
    if account is None or not matches:
        return None  # counted by the claim
    async with services_of(request).pool.connection() as conn:
        await throttle.forget(conn, keys[0])
        await throttle.refund(conn, keys[1:])
    return account


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
        return auth_page(request, "login.html", form, 422)
    email = form["email"].lower()
    try:
        account = await _account_with_password(request, email, password)
    except Throttled as throttled:
        what = "failed log-ins for this e-mail or from your address"
        return slow_down(request, "login.html", form, throttled.seconds, what)
    except PasswordsBusy:
        return slow_down(request, "login.html", form, 1, "log-ins at once")
    if account is None:
        form.fail("password", "does not match this e-mail; check both and try again")
        return auth_page(request, "login.html", form, 422)
    account_id, password_hash = account
    await log_in(request, account_id, email)
    response = RedirectResponse(_next(request), status_code=303)
    remember_device(request, response, email, password_hash)
    return response


@routes.post("/logout")
async def logout(request: Request) -> Response:
    check_csrf(request, await posted_form(request))
    await log_out(request)
    flash(request, "You are logged out.")
    return RedirectResponse("/login", status_code=303)
