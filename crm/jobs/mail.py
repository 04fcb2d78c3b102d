"""Sending a message: over SMTP (CRM_SMTP_URL), or into an outbox folder for development."""

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

log = logging.getLogger(__name__)


class Transport(Protocol):
    def send(self, message: EmailMessage) -> None:
        """Hand the message over; raise if it was not accepted."""


@dataclass(frozen=True)
class SmtpTransport:
    """smtp://user:pass@host:port, smtp+starttls://... or smtps://... (credentials optional)."""

    url: str
    timeout: float = 30.0

    def send(self, message: EmailMessage) -> None:
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host,
                parts.port or 465,
                timeout=self.timeout,
                context=ssl.create_default_context(),
            )
        else:
            client = smtplib.SMTP(host, parts.port or 25, timeout=self.timeout)
        with client:
            if parts.scheme == "smtp+starttls":
                client.starttls(context=ssl.create_default_context())
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)


@dataclass(frozen=True)
class OutboxTransport:
    """Development default: each message becomes an .eml file that any mail client opens."""

    directory: Path

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = str(message["Message-ID"]).strip("<>").replace("/", "_").replace("@", "_at_")
        path = self.directory / f"{name}.eml"
        path.write_bytes(bytes(message))
        log.info("wrote %s", path)


def transport_for(smtp_url: str | None, data_dir: Path) -> Transport:
    if smtp_url:
        return SmtpTransport(smtp_url)
    outbox = data_dir / "outbox"
    log.info("CRM_SMTP_URL is not set: morning e-mails are written to %s", outbox)
    return OutboxTransport(outbox)
