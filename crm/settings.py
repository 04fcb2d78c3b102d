"""Every setting crm reads, read once from the environment.

A missing or malformed value fails at start-up with the variable's name in the message.
"""

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


class SettingError(ValueError):
    """A setting is present but unusable."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None
    data_dir: Path
    host: str
    port: int
    secret_key: str | None
    smtp_url: str | None
    mail_from: str
    email_hour: int
    log_level: str
    cookie_secure: bool
    # Host header values answered (TrustedHostMiddleware); anything else gets 400
    allowed_hosts: tuple[str, ...]
    # `Authorization: Bearer <it>` shows /health's details to a remote operator; None: no token
    operator_token: str | None
    # the proxies whose X-Forwarded-For is believed (uvicorn's forwarded_allow_ips): the client
    # address that throttles count, and what /health takes for local
    trusted_proxies: tuple[str, ...]
    # where e-mailed links point (scheme, host, port); None: the request's own Host, which
    # CRM_ALLOWED_HOSTS vouches for
    public_url: str | None


# Starlette keeps the brackets of an IP literal in the host it compares ("[::1]:8000" is
# "[::1]"), so IPv6 addresses are kept bracketed
DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]")
DEFAULT_TRUSTED_PROXIES = ("127.0.0.1", "::1")
MIN_OPERATOR_TOKEN = 32
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_HOST_NAME = re.compile(rf"(?:\*\.)?{_LABEL}(?:\.{_LABEL})*")


def _default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "crm"


def _int(environ: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _smtp_url(environ: dict[str, str]) -> str | None:
    raw = environ.get("CRM_SMTP_URL") or None
    if raw is not None and urlsplit(raw).scheme not in ("smtp", "smtp+starttls", "smtps"):
        raise SettingError(
            f"CRM_SMTP_URL must start with smtp://, smtp+starttls:// or smtps://, got {raw!r}"
        )
    return raw


def _flag(environ: dict[str, str], name: str) -> bool:
    raw = (environ.get(name) or "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise SettingError(f"{name} must be true or false, got {raw!r}")


def _allowed_hosts(environ: dict[str, str]) -> tuple[str, ...]:
    raw = environ.get("CRM_ALLOWED_HOSTS") or ""
    if not raw.strip():
        return DEFAULT_ALLOWED_HOSTS
    return tuple(_host_pattern(entry.strip().lower(), raw) for entry in raw.split(","))


def _host_pattern(entry: str, raw: str) -> str:
    """A host name or IPv4 address, "*.example.com", "*" (any host), or an IPv6 address."""
    try:
        return f"[{ipaddress.IPv6Address(entry.removeprefix('[').removesuffix(']')).compressed}]"
    except ValueError:
        pass
    if entry == "*" or _HOST_NAME.fullmatch(entry):
        return entry
    raise SettingError(
        "CRM_ALLOWED_HOSTS must be host names without scheme or port, separated by commas"
        f" (like localhost,crm.example.com,*.example.org,::1), got {raw!r}"
    )


def _trusted_proxies(environ: dict[str, str]) -> tuple[str, ...]:
    raw = environ.get("CRM_TRUSTED_PROXIES") or ""
    if not raw.strip():
        return DEFAULT_TRUSTED_PROXIES
    entries = tuple(entry.strip() for entry in raw.split(","))
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if entry != "*":
                raise SettingError(
                    "CRM_TRUSTED_PROXIES must be IP addresses or networks separated by commas"
                    f" (like 10.0.0.5,172.16.0.0/12), or *, got {raw!r}"
                ) from None
    return entries


def _public_url(environ: dict[str, str], hosts: tuple[str, ...], mails: bool) -> str | None:
    raw = (environ.get("CRM_PUBLIC_URL") or "").strip()
    if not raw:
        if mails and any("*" in host for host in hosts):
            raise SettingError(
                "CRM_PUBLIC_URL must be set when CRM_ALLOWED_HOSTS has a wildcard and"
                " CRM_SMTP_URL is set: e-mailed links would otherwise point wherever a"
                " request's Host header says"
            )
        return None
    parts = urlsplit(raw)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.username is not None
        or parts.query
        or parts.fragment
    ):
        raise SettingError(
            "CRM_PUBLIC_URL must be like https://crm.example.com (a scheme, a host, a port if"
            f" need be; no user, path or query), got {raw!r}"
        )
    return f"{parts.scheme}://{parts.netloc}"


def _operator_token(environ: dict[str, str]) -> str | None:
    raw = environ.get("CRM_OPERATOR_TOKEN") or None
    if raw is not None and (len(raw) < MIN_OPERATOR_TOKEN or not raw.isprintable() or " " in raw):
        raise SettingError(
            f"CRM_OPERATOR_TOKEN must be at least {MIN_OPERATOR_TOKEN} characters without spaces"
            f" (python -c 'import secrets; print(secrets.token_urlsafe(32))'), got"
            f" {len(raw)} characters"
        )
    return raw


def load(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    smtp_url, allowed_hosts = _smtp_url(env), _allowed_hosts(env)
    return Settings(
        database_url=env.get("DATABASE_URL") or None,
        data_dir=Path(env["CRM_DATA_DIR"]) if env.get("CRM_DATA_DIR") else _default_data_dir(),
        host=env.get("CRM_HOST") or "127.0.0.1",
        port=_int(env, "PORT", 8000, 1, 65535),
        secret_key=env.get("CRM_SECRET_KEY") or None,
        smtp_url=smtp_url,
        mail_from=env.get("CRM_MAIL_FROM") or "crm@localhost",
        email_hour=_int(env, "CRM_EMAIL_HOUR", 7, 0, 23),
        log_level=(env.get("CRM_LOG_LEVEL") or "INFO").upper(),
        cookie_secure=_flag(env, "CRM_COOKIE_SECURE"),
        allowed_hosts=allowed_hosts,
        operator_token=_operator_token(env),
        trusted_proxies=_trusted_proxies(env),
        public_url=_public_url(env, allowed_hosts, bool(smtp_url)),
    )
