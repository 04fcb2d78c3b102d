"""A real SMTP server for tests (aiosmtpd), whose inbox a test reads."""

import email
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from harness.processes import free_port


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.refused: set[str] = set()  # recipients answered "550", as for an unknown mailbox

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refused:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


class SmtpServer:
    """aiosmtpd on a free port of 127.0.0.1; `with SmtpServer() as smtp:` runs it for a block."""

    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def __enter__(self) -> "SmtpServer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
