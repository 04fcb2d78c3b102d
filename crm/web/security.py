"""Sessions, log-in, CSRF and password hashing."""

import secrets
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.requests import Request

from crm.settings import Settings

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


class Passwords:
    """Hashing and checking passwords: argon2's defaults, or the cheap hasher a test passes in."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # checked when the e-mail is unknown, so a wrong e-mail takes as long as a wrong password
        self.nobody = self._hasher.hash("not the password of anyone")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def match(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


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


def current_account(request: Request) -> str:
    account_id = request.session.get("account_id")
    if not account_id:
        raise LoginRequired()
    return str(account_id)


def log_in(request: Request, account_id: str, email: str) -> None:
    request.session.clear()  # a fresh session (and CSRF token) at every log-in
    request.session.update({"account_id": account_id, "email": email})
    csrf_token(request)


def flash(request: Request, message: str) -> None:
    request.session.setdefault("flash", []).append(message)


def take_flashes(request: Request) -> list[str]:
    return list(request.session.pop("flash", []))
