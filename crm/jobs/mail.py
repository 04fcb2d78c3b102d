"""Sending a message: over SMTP (CRM_SMTP_URL), or into an outbox folder for development."""

import logging
import os
import re
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from crm.text import cut, flattened

log = logging.getLogger(__name__)
_LINE_END = re.compile(r"\r\n|\r|\n")


def header_text(text: str, limit: int) -> str:
    """crm.text.one_line() for text that goes into a header: "=?" is spaced out to "= ?".

    The email package (before Python 3.11.10) decodes an RFC 2047 encoded word found in a value
    it is given, then writes the decoded text when it folds the header: a name like
    "=?utf-8?q?Al=0D=0AReply-To:_x@evil.example?=" becomes a header of its own
    (CVE-2024-6923). Spaced out, no encoded word is left to decode, and the name still reads.
    """
    # after flattening, which drops characters that could sit between "=" and "?"
    return cut(flattened(text).replace("=?", "= ?"), limit)


def refuse_injected_headers(message: EmailMessage) -> None:
    """Raise ValueError if a header of message would be written as more than one header.

    What Python 3.11.10 checks when it writes a message (verify_generated_headers): every line
    a header folds into, after its first, must start with white space. A guard for any value
    header_text() did not clean, such as an address stored before sign-up refused "=?".
    """
    for name, value in message.items():
        folded = message.policy.fold(name, value).removesuffix(message.policy.linesep)
        if any(not line[:1].isspace() for line in _LINE_END.split(folded)[1:]):
            raise ValueError(f"the {name} header would be written as more than one header")


def one_mailbox(address: str) -> str:
    """The address, if it names exactly one mailbox as written; else ValueError.

    Sign-up refuses lists, display names and comments; an account stored before it did could
    hold "me@x.example,root" or "x<victim@corp.example>", which SMTP would send to someone else.
    """
    parsed = getaddresses([address])
    if len(parsed) != 1 or parsed[0][0] or parsed[0][1] != address or address.count("@") != 1:
        raise ValueError("the account's e-mail address is not a single mailbox")
    return address


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
    """Development default: each message becomes an .eml file that any mail client opens.

    The messages quote meeting notes: the folder is the owner's alone (0700, an existing one's
    mode is corrected) and so is every file (0600), whatever the umask.
    """

    directory: Path

    def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        name = str(message["Message-ID"]).strip("<>").replace("/", "_").replace("@", "_at_")
        path = self.directory / f"{name}.eml"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        with os.fdopen(os.open(path, flags, 0o600), "wb") as file:
            os.fchmod(file.fileno(), 0o600)  # a file written before, under another mode
            file.write(bytes(message))
        log.info("wrote %s", path)


def transport_for(smtp_url: str | None, data_dir: Path) -> Transport:
    if smtp_url:
        return SmtpTransport(smtp_url)
    outbox = data_dir / "outbox"
    log.info("CRM_SMTP_URL is not set: morning e-mails are written to %s", outbox)
    return OutboxTransport(outbox)
