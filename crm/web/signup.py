"""Sign-up: at once, or, when crm can send e-mail, once the address is confirmed.

With CRM_SMTP_URL set, POST /signup answers the same page whether or not the address has an
account, and e-mails the address: a link that creates the account, or a note that it has one.
Nobody learns which addresses have accounts, and nobody signs up with an address that is not
theirs (the morning e-mail would go to it). Without a way to send mail (a local install, mail
written to an outbox folder), the account is made at once and a taken address is named as such:
there is no one else to reach; sign-ups refused that way are throttled per address and e-mail.
"""

import asyncio
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from psycopg import AsyncConnection
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from crm.jobs.mail import one_mailbox, refuse_injected_headers
from crm.store import commands
from crm.store.event_types import EventTypes
from crm.web import sign_up_requests, throttle
from crm.web.answers import attempt
from crm.web.auth import (
    auth_page,
    password_problem,
    remember_device,
    slow_down,
    wait_in_words,
)
from crm.web.forms import Form, FormSpec, posted_form
from crm.web.requests import services_of
from crm.web.routing import Routes
from crm.web.secret_tokens import digest
from crm.web.security import PasswordsBusy, check_csrf, flash, log_in, passwords_of
from crm.web.sign_up_requests import Waiting
from crm.web.templating import templates
from crm.web.throttle import Key, Throttled

routes = Routes()
SIGN_UP = FormSpec.of("account-created", "email", "time_zone")
# A sign-up refused because the e-mail has an account counts as a failure (it is how one probes
# for accounts), per e-mail and per address; so does every account made or link mailed past a
# day's worth from one address, and every link mailed to one e-mail past a few.
TAKEN_PER_EMAIL, TAKEN_PER_ADDRESS, ACCOUNTS_PER_ADDRESS, MAILS_PER_EMAIL = 3, 10, 20, 3
# wrong passwords on one confirmation link before each further one must wait
CONFIRM_TRIES = 5
WELCOME = "Welcome! Your account is ready."
SENT_TO = "sign_up_sent_to"  # the address the last link went to, for /signup/sent
LINK_HOURS = round(sign_up_requests.EXPIRES.total_seconds() / 3600)
templates.env.globals["link_hours"] = LINK_HOURS


class SignUpKeys(NamedTuple):
    taken: Key  # "this e-mail already has an account" answers, per e-mail
    taken_here: Key  # and per address
    made: Key  # accounts made (or links mailed) from an address
    mailed: Key  # links mailed to an e-mail


def _keys(request: Request, email: str) -> SignUpKeys:
    address = throttle.client_address(request)
    return SignUpKeys(
        Key(f"sign-up:taken:{email}", TAKEN_PER_EMAIL),
        Key(f"sign-up:taken-from:{address}", TAKEN_PER_ADDRESS),
        Key(f"sign-up:made-from:{address}", ACCOUNTS_PER_ADDRESS),
        Key(f"sign-up:mailed:{email}", MAILS_PER_EMAIL),
    )


def _mails(request: Request) -> bool:
    """Whether crm can reach an address: only then is sign-up confirmed by e-mail."""
    return bool(services_of(request).settings.smtp_url)


@routes.get("/signup")
async def signup_page(request: Request) -> Response:
    return auth_page(request, "signup.html", SIGN_UP.blank(services_of(request).types))


@routes.post("/signup")
async def signup(request: Request) -> Response:
    data = await posted_form(request)
    check_csrf(request, data)
    form = SIGN_UP.read(data, services_of(request).types)
    password = form.secret(data, "password")
    form.a_time_zone("time_zone")
    problem = password_problem(password)
    if problem:
        form.fail("password", problem)
    if not form.ok:
        return auth_page(request, "signup.html", form, 422)
    email = form["email"].lower()
    keys = _keys(request, email)
    mails = _mails(request)
    # claimed before the work, given back by what it turns out not to be
    claimed = [keys.made, keys.mailed] if mails else [keys.made, keys.taken, keys.taken_here]
    try:
        passwords_of(request).check_room()
        async with services_of(request).pool.connection() as conn:
            await throttle.claim(conn, claimed)
        password_hash = await passwords_of(request).hash(password)
    except Throttled as throttled:
        return slow_down(request, "signup.html", form, throttled.seconds, "sign-ups")
    except PasswordsBusy:
        return slow_down(request, "signup.html", form, 1, "sign-ups at once")
    waiting = Waiting(email, password_hash, form["time_zone"])
    if mails:
        return await _mail_link(request, form, waiting)
    return await _sign_up_now(request, form, waiting, keys)


async def _sign_up_now(
    request: Request, form: Form, waiting: Waiting, keys: SignUpKeys
) -> Response:
    done = await attempt(request, form, lambda conn, types: _make(conn, types, waiting))
    async with services_of(request).pool.connection() as conn:
        await throttle.refund(conn, [keys.taken, keys.taken_here] if done else [keys.made])
    if done is None:
        return auth_page(request, "signup.html", form, 422)
    return await _welcome(request, done, waiting)


async def _welcome(request: Request, done: commands.Done, made: Waiting) -> Response:
    await log_in(request, done.subject_id, made.email)
    flash(request, WELCOME)
    response = RedirectResponse("/contacts", status_code=303)
    remember_device(request, response, made.email, made.password_hash)
    return response


async def _make(conn: AsyncConnection[Any], types: EventTypes, waiting: Waiting) -> commands.Done:
    return await commands.sign_up(
        conn, types, waiting.email, waiting.password_hash, waiting.time_zone
    )


async def _mail_link(request: Request, form: Form, waiting: Waiting) -> Response:
    """The same answer for any address: a link to finish, or a note that it has an account,
    is sent to the address itself. Then to GET /signup/sent, so that a reload mails nothing."""
    async with services_of(request).pool.connection() as conn:
        taken = await conn.execute(
            "SELECT 1 FROM entities WHERE kind = 'account' AND name = %s", (waiting.email,)
        )
        if await taken.fetchone() is None:
            token = await sign_up_requests.store(conn, waiting)
            message = _confirm_message(request, waiting.email, token)
        else:
            message = _has_account_message(request, waiting.email)
    transport = services_of(request).morning_email.transport
    try:
        await asyncio.to_thread(transport.send, message)
    except (OSError, ValueError) as error:  # smtplib's errors are OSErrors
        form.fail(
            "email", f"could not be sent the link just now ({type(error).__name__}); try again"
        )
        return auth_page(request, "signup.html", form, 503)
    request.session[SENT_TO] = waiting.email
    return RedirectResponse("/signup/sent", status_code=303)


@routes.get("/signup/sent")
async def sent_page(request: Request) -> Response:
    email = request.session.get(SENT_TO)
    if not isinstance(email, str):
        return RedirectResponse("/signup", status_code=303)
    return templates.TemplateResponse(request, "signup_sent.html", {"email": email})


def _message(request: Request, to: str, subject: str, body: str) -> EmailMessage:
    sender = services_of(request).settings.mail_from
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = one_mailbox(to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    message.set_content(body)
    refuse_injected_headers(message)
    return message


def _link(request: Request, route: str, **query: str) -> str:
    """An address for an e-mail: on CRM_PUBLIC_URL if set, else on the request's own host
    (one of CRM_ALLOWED_HOSTS, which has no wildcard unless CRM_PUBLIC_URL is set)."""
    url = request.url_for(route).include_query_params(**query)
    public = services_of(request).settings.public_url
    if public is None:
        return str(url)
    base = urlsplit(public)
    return str(url.replace(scheme=base.scheme, netloc=base.netloc))


def _confirm_message(request: Request, email: str, token: str) -> EmailMessage:
    link = _link(request, "confirm_page", token=token)
    return _message(
        request,
        email,
        "Finish creating your crm account",
        f"To finish creating your crm account for {email}, open this link within"
        f" {LINK_HOURS} hours:\n\n"
        f"{link}\n\nIf you did not sign up, ignore this e-mail: no account is made without it."
        "\n\n-- \ncrm\n",
    )


def _has_account_message(request: Request, email: str) -> EmailMessage:
    login = _link(request, "login_page")
    return _message(
        request,
        email,
        "You already have a crm account",
        f"Someone, perhaps you, asked to create a crm account for {email}, which already has"
        f" one. To use it, log in at:\n\n{login}\n\nIf it was not you, ignore this e-mail:"
        " nothing has changed.\n\n-- \ncrm\n",
    )


@routes.get("/signup/confirm")
async def confirm_page(request: Request) -> Response:
    """A form, not the account at once: mail scanners open links, and the person following it
    must show they chose the password (else anyone could sign up someone else's address and,
    once its owner followed the link, log in to their account)."""
    token = request.query_params.get("token", "")
    async with services_of(request).pool.connection() as conn:
        waiting = await sign_up_requests.peek(conn, token) if token else None
    return _confirm(request, token, waiting, Form({"password": ""}))


def _confirm(
    request: Request, token: str, waiting: Waiting | None, form: Form, status: int = 200
) -> Response:
    context = {"token": token, "waiting": waiting, "form": form}
    status = status if waiting else 410
    return templates.TemplateResponse(request, "signup_confirm.html", context, status_code=status)


@routes.post("/signup/confirm")
async def confirm(request: Request) -> Response:
    data = await posted_form(request)
    check_csrf(request, data)
    sent = data.get("token")
    token = sent if isinstance(sent, str) else ""
    form = Form({"password": ""})
    password = form.secret(data, "password")
    services = services_of(request)
    # guesses at the password through one link: a link that leaked is not an open door
    key = Key(f"sign-up:confirm:{digest(token).hex()}", CONFIRM_TRIES)
    async with services.pool.connection() as conn:
        waiting = await sign_up_requests.peek(conn, token)
    if waiting is None:
        return _confirm(request, token, None, form)
    try:
        passwords_of(request).check_room()
        async with services.pool.connection() as conn:
            await throttle.claim(conn, [key])
        chosen = await passwords_of(request).match(waiting.password_hash, password)
    except Throttled as throttled:
        form.fail(
            "password", f"was tried too often; try again in {wait_in_words(throttled.seconds)}"
        )
        return _confirm(request, token, waiting, form, 429)
    except PasswordsBusy:
        form.fail("password", "could not be checked just now; try again in a second")
        return _confirm(request, token, waiting, form, 429)
    if not chosen:
        form.fail("password", "is not the one chosen when signing up with this link")
        return _confirm(request, token, waiting, form, 422)
    async with services.pool.connection() as conn, conn.transaction():
        taken = await sign_up_requests.take(conn, token)  # once: a second confirm finds none
        if taken is None:
            return _confirm(request, token, None, form)
        try:
            done = await _make(conn, services.types, taken)
        except commands.CommandRefused:  # made meanwhile, by another link to the address
            flash(request, f"{taken.email} already has an account: log in.")
            return RedirectResponse("/login", status_code=303)
    return await _welcome(request, done, taken)
