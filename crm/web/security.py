"""Log-in, log-out, CSRF and password hashing."""

import asyncio
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.requests import Request

from crm.settings import Settings
from crm.web import sessions
from crm.web.requests import services_of
from crm.web.sessions import Session

T = TypeVar("T")

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"


class LoginRequired(Exception):
    """Raised by pages that need an account; answered with a redirect to /login."""


class CsrfRefused(Exception):
    """A state-changing request without the session's CSRF token; answered with 403."""


def secret_key(settings: Settings) -> str:
    """CRM_SECRET_KEY, or a key generated once and kept in the data directory."""
    if settings.secret_key:
        return settings.secret_key
    path: Path = settings.data_dir / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48))
    return path.read_text().strip()


class PasswordsBusy(Exception):
    """More log-ins and sign-ups want argon2 than Passwords.admitted; answered 429."""


class Passwords:
    """Hashing and checking passwords: argon2's defaults, or the cheap hasher a test passes in.

    Each argon2 call holds 64 MiB for ~50 ms of a core. At most `admitted` calls are in at once,
    `at_once` of them running and the rest waiting for a turn; any further one is refused at once
    (PasswordsBusy). A flood of log-ins then costs the others a bounded share of memory and CPU.
    """

    def __init__(
        self, hasher: PasswordHasher | None = None, at_once: int = 2, admitted: int = 16
    ) -> None:
        self._hasher = hasher or PasswordHasher()
        self._slots = asyncio.Semaphore(at_once)
        self.admitted = admitted
        self._admitted_now = 0
        # checked when the e-mail is unknown, so a wrong e-mail takes as long as a wrong password
        self.nobody = self._hasher.hash("not the password of anyone")

    def check_room(self) -> None:
        """PasswordsBusy now if no more are admitted: a flood is turned away before it asks the
        database anything (the pool has 10 connections for everyone)."""
        if self._admitted_now >= self.admitted:
            raise PasswordsBusy()

    async def hash(self, password: str) -> str:
        return await self._bounded(self._hasher.hash, password)

    async def match(self, password_hash: str, password: str) -> bool:
        return await self._bounded(self._verify, password_hash, password)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _bounded(self, work: Callable[..., T], *args: str) -> T:
        self.check_room()
        self._admitted_now += 1
        try:
            async with self._slots:
                return await asyncio.to_thread(work, *args)
        finally:
            self._admitted_now -= 1


def passwords_of(request: Request) -> Passwords:
    passwords: Passwords = request.app.state.passwords
    return passwords


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if token is None:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return str(token)


def check_csrf(request: Request, form: Any) -> None:
    field = form.get(CSRF_FIELD)
    sent = field if isinstance(field, str) and field else request.headers.get(CSRF_HEADER, "")
    expected = request.session.get("csrf")
    if not expected or not secrets.compare_digest(_bytes(sent), _bytes(str(expected))):
        raise CsrfRefused()


def _bytes(token: str) -> bytes:
    # compare_digest refuses str that is not ASCII (TypeError, a 500); bytes compare any token.
    # surrogatepass: a lone surrogate must still become bytes, just never the expected ones.
    return token.encode("utf-8", "surrogatepass")


async def signed_in(request: Request) -> Session | None:
    """The request's live session, looked up once per request; None for nobody."""
    if not hasattr(request.state, "session"):
        token = request.session.get("sid")
        found = None
        if isinstance(token, str):
            async with services_of(request).pool.connection() as conn:
                # every page asks this first: one round trip, no transaction to begin or end
                await conn.set_autocommit(True)
                try:
                    found = await sessions.find(conn, token)
                finally:
                    await conn.set_autocommit(False)
        request.state.session = found
    session: Session | None = request.state.session
    return session


async def current_session(request: Request) -> Session:
    """The logged-in session; LoginRequired (a redirect to /login) for nobody."""
    session = await signed_in(request)
    if session is None:
        raise LoginRequired()
    return session


async def current_account(request: Request) -> str:
    """The logged-in account's id; LoginRequired (a redirect to /login) for nobody."""
    return (await current_session(request)).account_id


async def log_in(request: Request, account_id: str, email: str) -> None:
    """A new server-side session; the cookie starts afresh (a new CSRF token too)."""
    user_agent = request.headers.get("user-agent", "")
    async with services_of(request).pool.connection() as conn:
        token = await sessions.start(conn, account_id, email, user_agent)
        request.state.session = await sessions.find(conn, token)
    request.session.clear()
    request.session["sid"] = token
    csrf_token(request)


async def log_out(request: Request) -> None:
    session = await signed_in(request)
    token = request.session.get("sid")
    if isinstance(token, str):
        async with services_of(request).pool.connection() as conn:
            await sessions.end(conn, token)
    if session is not None:
        sessions.ended(session.account_id)  # this session's other tabs stop hearing news
    request.session.clear()
    request.state.session = None


def flash(request: Request, message: str) -> None:
    request.session.setdefault("flash", []).append(message)


def take_flashes(request: Request) -> list[str]:
    return list(request.session.pop("flash", []))
